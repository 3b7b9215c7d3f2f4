"""Text-to-image evaluation: generate images per concept, judge them, score them like HEIM.

Python API::

    from letitwag.harness import EvaluationOptions, evaluate
    evaluate(EvaluationOptions(model="diffusers:ORG/NAME", task="t2i", prompts="simple", out="runs/sd",
                               extra={"judge": "open_clip:ViT-L-14/openai", "images_per_prompt": 4}))

Recompute the metrics of a run from its ``predictions.parquet`` (what the leaderboard does)::

    from letitwag.harness.t2i import read_t2i_predictions, t2i_metrics
    columns = read_t2i_predictions("runs/sd/predictions.parquet")
    metrics = t2i_metrics(**columns, class_names=results["dataset"]["class_names"], seed=0)

Modules, one job each: ``settings`` (task options), ``prompts`` (prompts per concept),
``generation`` (seeded, resumable image generation), ``scoring`` (judge features, CLIPScore,
retrieval ranks), ``metrics`` (metrics from per-image predictions), ``predictions`` (the
parquet schema), ``task`` (the harness entry point ``run(options, generator)``).
"""

from letitwag.harness.t2i.metrics import RETRIEVAL_KS, t2i_metrics
from letitwag.harness.t2i.predictions import read_t2i_predictions, t2i_table

__all__ = ["RETRIEVAL_KS", "read_t2i_predictions", "t2i_metrics", "t2i_table"]
