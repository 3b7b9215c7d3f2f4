"""Image-side concept frequency: tag pretraining images against a concept list.

Usage from Python::

    from letitwag.frequency.images import build_tagger, tag_images
    from letitwag.concepts import load_concepts
    tagger = build_tagger("zero-shot", "open_clip:ViT-B-32/laion2b_s34b_b79k", device="cuda")
    table = tag_images(["shards/00000.tar"], load_concepts("let-it-wag"), tagger, "tags/")

Any object implementing ``Tagger`` (``protocol.py``) can be passed instead of a built one.
"""

from __future__ import annotations

from pathlib import Path

from letitwag.errors import UserInputError
from letitwag.frequency.images.protocol import Tagger
from letitwag.frequency.images.run import tag_images

TAGGERS = ("zero-shot", "ram-plus")

__all__ = ["TAGGERS", "Tagger", "build_tagger", "tag_images"]


def build_tagger(
    kind: str,
    model: str,
    prompts: str = "ensemble",
    device: str = "cpu",
    precision: str = "fp32",
    background: str = "object",
    cache_dir: str | Path | None = None,
    decode: str = "auto",
) -> Tagger:
    """A tagger by name: ``zero-shot`` (any ``letitwag.models`` encoder spec) or ``ram-plus`` (checkpoint path).

    ``decode`` (zero-shot): where images are decoded, as the harness's ``--decode``; RAM++ decodes on the CPU."""
    if kind == "zero-shot":
        from letitwag.frequency.images.zero_shot import ZeroShotTagger

        return ZeroShotTagger(model, prompts, background=background, device=device, precision=precision,
                              cache_dir=cache_dir, decode=decode)
    if kind == "ram-plus":
        from letitwag.frequency.images.prompts import load_prompts
        from letitwag.frequency.images.ram_plus import RamPlusTagger

        return RamPlusTagger(model, load_prompts(prompts) if Path(prompts).exists() else None, device=device)
    raise UserInputError(f"unknown tagger {kind!r}: use {' or '.join(TAGGERS)}")
