"""Demo step 4: ``python -m letitwag.evaluate``'s API on the mini dataset, with tiny models.

PLUMBING RUNS WITH RANDOM WEIGHTS: the models are built on the spot by ``letitwag.models.tiny``
(no weights can be downloaded offline), so every number they produce is meaningless. The runs
prove that loading, prompting, caching, metrics and result files work end to end; their
``results.json`` says ``random_weights: true``, so the leaderboard never ranks them (step 5 lists
the classification run as an unranked plumbing entry).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

PLUMBING_LABEL = "PLUMBING RUN WITH RANDOM WEIGHTS (numbers meaningless)"


@dataclass(frozen=True)
class EvalSizes:
    bootstrap_samples: int = 200
    images_per_prompt: int = 2
    inference_steps: int = 2


def evaluate_classification(hub_dir: Path, model_spec: str, out: Path, sizes: EvalSizes, seed: int) -> dict:
    """Zero-shot classification of the tiny random-weight open_clip on the published mini dataset."""
    from letitwag.harness import EvaluationOptions, evaluate

    options = EvaluationOptions(model=model_spec, dataset=str(hub_dir), out=out, prompts="simple", batch_size=32,
                                workers=0, device="cpu", seed=seed, cache_dir=out.parent / "feature-cache",
                                bootstrap_samples=sizes.bootstrap_samples)
    return evaluate(options)


def build_tiny_generator(folder: Path, seed: int) -> str:
    from letitwag.models.tiny import build_tiny_diffusers

    return build_tiny_diffusers(folder, seed=seed)


def evaluate_t2i(hub_dir: Path, generator_spec: str, judge_spec: str, out: Path, sizes: EvalSizes, seed: int) -> dict:
    """Text-to-image: the tiny diffusers pipeline draws each concept, the tiny CLIP judges the images."""
    from letitwag.harness import EvaluationOptions, evaluate

    extra = {"judge": judge_spec, "judge_prompts": "simple", "retrieval_judge": judge_spec,
             "images_per_prompt": sizes.images_per_prompt, "generation_batch_size": 4,
             "generation_options": {"num_inference_steps": sizes.inference_steps}}
    options = EvaluationOptions(model=generator_spec, task="t2i", dataset=str(hub_dir), out=out, prompts="simple",
                                batch_size=32, workers=0, device="cpu", seed=seed,
                                cache_dir=out.parent / "feature-cache", bootstrap_samples=sizes.bootstrap_samples,
                                extra=extra)
    return evaluate(options)
