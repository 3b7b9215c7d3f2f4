"""Retrieval submissions: checked and recomputed from their ranks like every other run (not ranked yet).

A retrieval run (docs/FORMATS.md, "Retrieval results") has no labels for the board to hold: its
evidence is one row per caption with the rank of its image for it and its rank for its image. The
board checks that the rows are whole and consistent (every caption once, ranks between 1 and the
number of candidates, as many captions and images as the run claims) and recomputes every metric
with the harness's own ``retrieval_metrics_from_predictions``, so a tampered rank that changes any
metric, or a tampered metric, is refused. The site does not rank retrieval results yet, so
``validate`` checks them and ``add`` / ``submit`` refuse to store them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from letitwag.leaderboard.frequencies import frequency_counts_for
from letitwag.leaderboard.predictions import integer_column, read_table
from letitwag.leaderboard.recompute import bootstrap_settings
from letitwag.leaderboard.submission import SubmissionRejected, require, short_repr

NOT_STORED_REASON = "retrieval results are validated but not stored or ranked by this board yet"


def check_retrieval_predictions(data: bytes, path: Path, results: dict[str, Any]) -> None:
    """Every caption once, positions and ranks in range, counts equal to the claim's ``dataset`` ones."""
    from letitwag.harness.results import RETRIEVAL_SCHEMA

    table = read_table(data, path, tuple(RETRIEVAL_SCHEMA.names))
    where = path.parent / "results.json"
    num_images = require(results, "dataset.num_images", int, where)
    num_captions = require(results, "dataset.num_captions", int, where)
    captions = integer_column(table, "caption_index", path)
    images = integer_column(table, "image_index", path)
    unique, counts = np.unique(captions, return_counts=True)
    if counts.size and counts.max() > 1:
        raise SubmissionRejected(f"{path}: caption_index {unique[counts.argmax()]} appears {counts.max()} times; "
                                 "each caption must appear once")
    if len(captions) != num_captions or len(np.unique(images)) != num_images:
        raise SubmissionRejected(f"{path}: {len(captions)} captions of {len(np.unique(images))} images, but "
                                 f"results.json says {num_captions} captions of {num_images} images")
    for column, limit in (("text_to_image_rank", num_images), ("image_to_text_rank", num_captions),
                          ("caption_position", num_captions)):
        values = integer_column(table, column, path)
        low = 0 if column == "caption_position" else 1
        bad = np.flatnonzero((values < low) | (values > limit))
        if bad.size:
            raise SubmissionRejected(f"{path}: {column} of caption_index {captions[bad[0]]} is {values[bad[0]]}, "
                                     f"outside {low}..{limit}")
    concepts = table.column("concepts").type
    if not (pa.types.is_list(concepts) or pa.types.is_large_list(concepts)) or not (
            pa.types.is_string(concepts.value_type) or pa.types.is_large_string(concepts.value_type)):
        raise SubmissionRejected(f"{path}: column 'concepts' has type {concepts}, expected a list of strings")


def _retrieval_frequency_counts(claimed_bins: Any, where: Path) -> dict[str, dict[str, int]]:
    """The bundled tables a claim's ``by_frequency_bin`` (metric -> corpus -> bins) was computed on."""
    if claimed_bins is None:
        return {}
    if not isinstance(claimed_bins, Mapping) or not all(isinstance(v, Mapping) for v in claimed_bins.values()):
        raise SubmissionRejected(f"{where}: metrics.by_frequency_bin must map each recall metric to an object "
                                 "keyed by corpus")
    corpora = {corpus: None for per_metric in claimed_bins.values() for corpus in per_metric}
    return frequency_counts_for(corpora, where)


def recompute_retrieval(predictions_path: Path, claimed: Any, *, max_bootstrap_samples: int,
                        where: Path) -> dict[str, Any]:
    """The harness's retrieval metrics from the ranks alone, with the claim's bootstrap and concept settings."""
    from letitwag.harness.retrieval_metrics import PAPER_MIN_CONCEPT_IMAGES, retrieval_metrics_from_predictions

    samples, seed = bootstrap_settings(claimed, max_bootstrap_samples, "results.json")
    minimum = claimed.get("min_concept_images", PAPER_MIN_CONCEPT_IMAGES)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
        raise SubmissionRejected(f"{where}: metrics.min_concept_images must be a positive integer, "
                                 f"not {short_repr(minimum)}")
    counts = _retrieval_frequency_counts(claimed.get("by_frequency_bin"), where)
    return retrieval_metrics_from_predictions(predictions_path, bootstrap_samples=samples, seed=seed,
                                              min_concept_images=minimum, frequency_counts=counts)
