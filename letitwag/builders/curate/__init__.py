"""Curation: turn a candidate manifest into a clean, balanced, reproducible test set.

Steps, in order, each switchable with its thresholds recorded (see ``config.CurateConfig``):
1 validate (``images``/``validate``), 2 exact duplicates and 3 pHash near-duplicates within a
concept (``dedup``, ``phash``), 4 overlap with reference test sets (``reference``), 5 outliers
and 6 relevance (``embedding_steps``), 7 human review (``review``), 8 seeded balancing
(``balance``). ``pipeline`` runs them with resume records; ``report`` writes the report.

    from letitwag.builders.curate import CurateConfig, curate
    report = curate("candidates/", "curated/", CurateConfig(per_class=450, seed=0))
"""

from letitwag.builders.curate.config import STEP_ORDER, CurateConfig
from letitwag.builders.curate.pipeline import curate

__all__ = ["STEP_ORDER", "CurateConfig", "curate"]
