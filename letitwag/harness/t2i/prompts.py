"""The prompts each concept is generated from: templates filled with its name, or a prompt file.

Why a per-concept file: rare concepts often need context a template cannot give ("an A300B4
airliner on the runway"); the file replaces the templates for the concepts it names, so a run
can mix both. Prompts are listed per concept in a fixed order, which fixes their seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

from letitwag.errors import UserInputError
from letitwag.harness.prompts import PromptSet
from letitwag.io import text_sha256


def read_prompt_file(path: str | Path, class_ids: list[str]) -> dict[str, list[str]]:
    """``{concept_id: [prompt, ...]}`` from a JSON object; every key must be a concept of the dataset."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"--prompt-file {path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserInputError(f"{path}: invalid JSON ({error}); expected {{\"concept_id\": [\"prompt\", ...]}}") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: expected a JSON object {{\"concept_id\": [\"prompt\", ...]}}")
    known = set(class_ids)
    for concept_id, prompts in data.items():
        if concept_id not in known:
            from letitwag.models.spec import close_matches

            raise UserInputError(
                f"{path}: concept {concept_id!r} is not in the dataset's class list{close_matches(concept_id, class_ids)}"
            )
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise UserInputError(f"{path}: concept {concept_id!r} needs a non-empty list of non-empty prompt strings")
    return {concept_id: [p.strip() for p in prompts] for concept_id, prompts in data.items()}


def concept_prompts(class_ids: list[str], prompt_names: list[str], templates: PromptSet,
                    overrides: dict[str, list[str]] | None = None) -> list[list[str]]:
    """For each concept (in class order): its file prompts if given, else the templates with its name."""
    overrides = overrides or {}
    return [overrides.get(cid) or templates.texts(name) for cid, name in zip(class_ids, prompt_names)]


def prompts_hash(prompts: list[list[str]]) -> str:
    """sha256 over every concept's prompts (a concept per line, its prompts tab-separated)."""
    return text_sha256("\n".join("\t".join(p) for p in prompts))
