"""The evaluation harness: zero-shot classification (and later text-to-image) on Let it Wag!.

Python API::

    from letitwag.harness import EvaluationOptions, evaluate
    results = evaluate(EvaluationOptions(model="open_clip:ViT-B-32/laion2b_s34b_b79k", out="runs/b32"))

A task is a module registered in ``harness.tasks``; metrics live in ``harness.metrics`` so the
leaderboard can recompute them from ``predictions.parquet``.
"""

from letitwag.harness.options import DEFAULT_DATASET, EvaluationOptions
from letitwag.harness.runner import evaluate

__all__ = ["DEFAULT_DATASET", "EvaluationOptions", "evaluate"]
