"""Prompt templates: the bundled sets (ensemble = the paper's 80 templates), a user file, or a dataset's own."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from letitwag.errors import UserInputError
from letitwag.io import text_sha256

logger = logging.getLogger(__name__)

PLACEHOLDER = "{c}"


@dataclass(frozen=True)
class PromptSet:
    name: str
    templates: tuple[str, ...]

    @property
    def hash(self) -> str:
        """sha256 of the templates joined by newlines (docs/FORMATS.md)."""
        return text_sha256("\n".join(self.templates))

    def texts(self, class_name: str) -> list[str]:
        return [template.replace(PLACEHOLDER, class_name) for template in self.templates]


def bundled_prompt_sets() -> dict[str, list[str]]:
    from letitwag.data import read_bundled_json

    return read_bundled_json("templates.json")


def _read_template_file(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise UserInputError(f"{path}: invalid JSON ({error}); expected a list of templates") from None
        data = data.get("templates", data) if isinstance(data, dict) else data
        if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
            raise UserInputError(f'{path}: expected a JSON list of templates or {{"templates": [...]}}')
        return data
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def load_prompts(spec: str) -> PromptSet:
    """``ensemble`` | ``simple`` | ``class`` | a file (JSON list or one template per line, with ``{c}``)."""
    bundled = bundled_prompt_sets()
    if spec in bundled:
        return PromptSet(spec, tuple(bundled[spec]))
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UserInputError(f"--prompts {spec!r}: not a bundled set ({', '.join(bundled)}) nor an existing file")
    templates = _read_template_file(path)
    if not templates:
        raise UserInputError(f"{path}: no templates found")
    for line, template in enumerate(templates, 1):
        if PLACEHOLDER not in template:
            raise UserInputError(f"{path}: template {line} ({template!r}) has no {PLACEHOLDER} placeholder for the class name")
    return PromptSet(str(path), tuple(templates))


DEFAULT_PROMPTS = "ensemble"
SHIPPED_TEMPLATES = "zeroshot_classification_templates.txt"


def resolve_prompts(spec: str | None, shipped: list[str] | None, source: str) -> PromptSet:
    """``--prompts`` when given; else the templates the dataset ships (CLIP_benchmark's default for its
    webdataset exports), named ``<dataset folder or repo name>:zeroshot_classification_templates.txt``
    (no ``/``: the name is a leaderboard key); else the paper's 80-template ``ensemble``."""
    if spec:
        return load_prompts(spec)
    if shipped:
        missing = [template for template in shipped if PLACEHOLDER not in template]
        if missing:
            logger.warning("%s: %d shipped template(s) have no %s, e.g. %r; they give the same text for every class",
                           source, len(missing), PLACEHOLDER, missing[0])
        return PromptSet(f"{Path(str(source).rstrip('/')).name}:{SHIPPED_TEMPLATES}", tuple(shipped))
    return load_prompts(DEFAULT_PROMPTS)
