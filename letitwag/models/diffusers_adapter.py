"""diffusers text-to-image pipelines from the Hub or a local ``save_pretrained`` folder."""

from __future__ import annotations

import logging
from typing import Sequence

from letitwag.errors import UserInputError
from letitwag.models.base import Generator, check_generated, weight_dtype
from letitwag.models.provenance import file_identity, hub_revision, plumbing_card
from letitwag.models.spec import ModelSpec, pretrained_source

logger = logging.getLogger(__name__)


def per_prompt_seeds(seed: int | Sequence[int], count: int) -> list[int]:
    """One seed per image, so an image never depends on which batch it was generated in."""
    if isinstance(seed, int):
        return [seed + offset for offset in range(count)]
    seeds = [int(s) for s in seed]
    if len(seeds) != count:
        raise UserInputError(f"got {len(seeds)} seeds for {count} prompts; give one seed per prompt or one int")
    return seeds


class DiffusersGenerator(Generator):
    adapter = "diffusers"

    def __init__(self, spec: ModelSpec, device: str = "cpu", precision: str = "fp32", trust_remote_code: bool = False):
        from diffusers import DiffusionPipeline

        self._bind(spec, device, precision)
        self.local_dir, source, kwargs = pretrained_source(spec, trust_remote_code)
        try:
            pipeline = DiffusionPipeline.from_pretrained(source, dtype=weight_dtype(self.precision), **kwargs)
        except (OSError, ValueError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserInputError(f"model spec {spec.raw!r}: cannot load with diffusers: {message}") from None
        pipeline.set_progress_bar_config(disable=True)
        self.pipeline = pipeline.to(device)

    def generate(self, prompts: Sequence[str], seed: int | Sequence[int] = 0, **options) -> list:
        """One PIL image per prompt; ``options`` go to the pipeline (num_inference_steps, guidance_scale, ...)."""
        import torch

        prompts = list(prompts)
        generator_device = "cuda" if str(self.device).startswith("cuda") else "cpu"
        generators = [torch.Generator(generator_device).manual_seed(s) for s in per_prompt_seeds(seed, len(prompts))]
        with torch.inference_mode():
            images = self.pipeline(prompts, generator=generators, output_type="pil", **options).images
        return check_generated(list(images), prompts, self.spec)

    def metadata(self) -> dict:
        import diffusers

        if self.local_dir:
            weights, card = file_identity(self.local_dir), plumbing_card(self.local_dir)
        else:
            resolved = str(self.pipeline.config.get("_name_or_path", self.parsed.name))
            revision = hub_revision(resolved) or self.parsed.options.get("revision")
            weights, card = {"resolved_checkpoint": resolved, "revision": revision}, {}
        return {
            "spec": self.spec,
            "adapter": self.adapter,
            "name": self.parsed.name,
            "pipeline": type(self.pipeline).__name__,
            **weights,
            "random_weights": bool(card.get("random_weights", False)),
            "plumbing_model": bool(card.get("plumbing_model", False)),
            "library_version": diffusers.__version__,
        }
