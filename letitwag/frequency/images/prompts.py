"""Concept descriptions for zero-shot tagging: template sets or per-concept description files.

``--prompts`` takes a bundled template set (``ensemble``: the 80 templates the paper
evaluates with; ``simple``: ``A photo of a {c}.``), a template file (JSON list or one template
per line, each with ``{c}``), or a per-concept description file (JSON ``{concept_id: [text,
...]}`` or the paper's RAM++ layout ``[{concept_id: [text, ...]}, ...]``, e.g. LLM-written
descriptions). A concept missing from a description file falls back to the ``simple`` template
and is listed in the provenance.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from letitwag.concepts import Concept, ConceptList
from letitwag.errors import UserInputError

PLACEHOLDER = "{c}"


def bundled_templates(name: str) -> list[str]:
    from letitwag.data import read_bundled_json

    sets = read_bundled_json("templates.json")
    if name not in sets:
        raise UserInputError(f"unknown prompt set {name!r}: use {', '.join(sorted(sets))} or a file")
    return list(sets[name])


@dataclass
class PromptSet:
    """Either templates for every concept or descriptions per concept id."""

    source: str
    templates: list[str] = field(default_factory=list)
    descriptions: dict[str, list[str]] = field(default_factory=dict)

    def texts_for(self, concept: Concept) -> list[str]:
        if self.descriptions:
            described = self.descriptions.get(concept.id) or self.descriptions.get(concept.name)
            if described:
                return described
            return [t.replace(PLACEHOLDER, concept.name) for t in bundled_templates("simple")]
        return [t.replace(PLACEHOLDER, concept.name) for t in self.templates]

    def background_texts(self, word: str) -> list[str]:
        """Prompts of the generic negative class, in the same style as the concepts' prompts."""
        templates = self.templates or bundled_templates("simple")
        return [t.replace(PLACEHOLDER, word) for t in templates]

    def missing(self, concepts: ConceptList) -> list[str]:
        if not self.descriptions:
            return []
        return [c.id for c in concepts if not (self.descriptions.get(c.id) or self.descriptions.get(c.name))]

    def digest(self) -> str:
        payload = json.dumps([self.templates, self.descriptions], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def load_prompts(spec: str) -> PromptSet:
    """Resolve ``--prompts``: a bundled set name or a file (see module docstring)."""
    path = Path(spec)
    if not path.exists():
        if "/" in spec or path.suffix:
            raise UserInputError(f"{spec}: no such prompts file (or use ensemble / simple)")
        return PromptSet(spec, templates=bundled_templates(spec))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserInputError(f"{path}: cannot read prompts file ({error}); give a UTF-8 file") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise UserInputError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
        return _from_json(path, data)
    return _templates(path, [line.strip() for line in text.splitlines() if line.strip()])


def _templates(path: Path, templates: list) -> PromptSet:
    for row, template in enumerate(templates, start=1):
        if not isinstance(template, str) or PLACEHOLDER not in template:
            raise UserInputError(f"{path}: template {row} has no {PLACEHOLDER} placeholder for the concept name")
    if not templates:
        raise UserInputError(f"{path}: no templates in this file")
    return PromptSet(str(path), templates=list(templates))


def _from_json(path: Path, data) -> PromptSet:
    if isinstance(data, list) and all(isinstance(item, str) for item in data):
        return _templates(path, data)
    if isinstance(data, list) and all(isinstance(item, dict) and len(item) == 1 for item in data):
        data = {key: value for item in data for key, value in item.items()}
    if not isinstance(data, dict) or not data:
        raise UserInputError(
            f"{path}: expected a list of templates with {PLACEHOLDER}, or {{concept_id: [descriptions]}}"
        )
    for key, value in data.items():
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise UserInputError(f"{path}: descriptions of {key!r} must be a non-empty list of strings")
    return PromptSet(str(path), descriptions={key: list(value) for key, value in data.items()})
