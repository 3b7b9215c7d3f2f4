"""Step 8: seeded class balancing to a fixed number of images per concept.

The paper sampled 450 images per class with Python's unseeded ``random.sample`` over a
directory listing, and kept only classes with more than 450 images. Here each concept draws
from its own generator seeded by ``(seed, crc32(concept id))`` over rows sorted by candidate
id, so a concept's sample does not change when other concepts are added or removed, and the
same seed always gives the same dataset.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from letitwag.builders.curate.steps import StepOutcome


def balance(frame: pd.DataFrame, per_class: int, seed: int, drop_short_classes: bool) -> StepOutcome:
    """Keep ``per_class`` seeded-random rows per concept; concepts with fewer are dropped or kept whole."""
    outcome = StepOutcome()
    for concept, group in frame.groupby("concept_id", sort=True):
        ordered = group.sort_values("candidate_id", kind="stable")
        if len(ordered) < per_class:
            if drop_short_classes:
                for row in ordered.index:
                    outcome.reject(row, f"concept has only {len(ordered)} images after curation < {per_class}")
            continue
        generator = np.random.default_rng([seed, zlib.crc32(str(concept).encode("utf-8"))])
        chosen = np.zeros(len(ordered), dtype=bool)
        chosen[generator.choice(len(ordered), size=per_class, replace=False)] = True
        for row in ordered.index[~chosen]:
            outcome.reject(row, f"not drawn by seeded balancing ({per_class} per class, seed {seed})")
    return outcome


def dropped_every_concept(alive: pd.DataFrame, outcome: StepOutcome, per_class: int) -> str | None:
    """The warning for a balancing step that left nothing: every concept was short of ``per_class``.

    Why a warning and not an error: the run is valid (and resumable) and its report shows what
    each step did, but a dataset of 0 images is almost never what the user meant, and the fix is
    one flag away, so the message names it.
    """
    if alive.empty or len(outcome.rejected) < len(alive):
        return None
    sizes = alive.groupby("concept_id").size()
    return (f"balancing dropped every concept: all {len(sizes)} have fewer than --per-class {per_class} images "
            f"after curation (the largest, {sizes.idxmax()!r}, has {int(sizes.max())}); pass --keep-short-classes "
            "to keep them whole, or lower --per-class")
