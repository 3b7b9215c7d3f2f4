"""The options only the ``t2i`` task has (kept in ``EvaluationOptions.extra``), checked once.

Why a dataclass over the free-form ``extra`` dict: a notebook user fills ``extra`` by hand, so
every value is validated here with a one-line error before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from letitwag.errors import UserInputError

# HEIM computes CLIPScore with OpenAI's CLIP ViT-L/14; the same weights through transformers.
DEFAULT_JUDGE = "transformers:openai/clip-vit-large-patch14"
DEFAULT_IMAGES_PER_PROMPT = 4  # HEIM's default number of images per prompt
DEFAULT_GENERATION_BATCH_SIZE = 4

_KNOWN = {"judge", "judge_prompts", "retrieval_judge", "images_per_prompt", "prompt_file",
          "generation_options", "generation_batch_size"}


@dataclass(frozen=True)
class T2ISettings:
    judge: str = DEFAULT_JUDGE
    judge_prompts: str = "ensemble"
    retrieval_judge: str | None = None
    images_per_prompt: int = DEFAULT_IMAGES_PER_PROMPT
    prompt_file: Path | None = None
    generation_options: dict = field(default_factory=dict)
    generation_batch_size: int = DEFAULT_GENERATION_BATCH_SIZE

    @classmethod
    def from_extra(cls, extra: dict) -> "T2ISettings":
        unknown = set(extra) - _KNOWN
        if unknown:
            raise UserInputError(f"t2i options: unknown {sorted(unknown)}; known: {sorted(_KNOWN)}")
        values = {k: v for k, v in extra.items() if v is not None}
        settings = cls(**values)
        for name in ("images_per_prompt", "generation_batch_size"):
            value = getattr(settings, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserInputError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        if not isinstance(settings.generation_options, dict):
            raise UserInputError(
                f"--generation-options must be a JSON object (e.g. '{{\"num_inference_steps\": 25}}'), "
                f"got {type(settings.generation_options).__name__}"
            )
        reserved = {"prompt", "generator", "output_type", "num_images_per_prompt"} & set(settings.generation_options)
        if reserved:
            raise UserInputError(f"--generation-options: {sorted(reserved)} are set by the harness; remove them")
        return settings
