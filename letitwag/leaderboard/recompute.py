"""Recompute every claimed metric from the predictions and compare it with the claim.

Why: a leaderboard number is only as good as its provenance. The board never reads a metric it
did not recompute. It calls the harness's own metric function
(``letitwag.harness.metrics.classification_metrics``) on the board's labels and the submitted
top-k predictions, with the bootstrap settings the claim states, and walks both ``metrics``
objects leaf by leaf: every claimed number must be within ``tolerance`` (absolute) of the
recomputed one, nothing may be missing, and nothing may be claimed that the function does not
produce. Same code, same seed, so honest claims agree to rounding.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping

import numpy as np

from letitwag.leaderboard.submission import SubmissionRejected, short_repr


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(dotted path, value) for every non-container value; list positions are ``[i]``."""
    if isinstance(value, Mapping):
        for key in value:
            yield from _leaves(value[key], f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for position, item in enumerate(value):
            yield from _leaves(item, f"{path}[{position}]")
    else:
        yield path, value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    return float(value)


def compare_metrics(claimed: Any, recomputed: Mapping[str, Any], tolerance: float, where: str) -> None:
    """Reject on the first claimed value that differs, is missing, or cannot be recomputed."""
    if not isinstance(claimed, Mapping):
        raise SubmissionRejected(f"{where}: 'metrics' must be an object")
    claimed_leaves = dict(_leaves(claimed, "metrics"))
    for path, truth in _leaves(recomputed, "metrics"):
        if path not in claimed_leaves:
            raise SubmissionRejected(f"{where}: metric {path} is missing (recomputed value: {short_repr(truth)})")
        claim = claimed_leaves.pop(path)
        true_number, claim_number = _number(truth), _number(claim)
        if true_number is None or claim_number is None:
            if claim != truth:
                raise SubmissionRejected(f"{where}: metric {path} claims {short_repr(claim)} but the predictions give "
                                         f"{short_repr(truth)}")
            continue
        if not math.isfinite(claim_number) or abs(claim_number - true_number) > tolerance:
            raise SubmissionRejected(f"{where}: metric {path} claims {claim_number!r} but the predictions give "
                                     f"{true_number!r} (tolerance {tolerance:g})")
    if claimed_leaves:
        extra = short_repr(next(iter(claimed_leaves)))[1:-1]
        raise SubmissionRejected(f"{where}: metric {extra} cannot be recomputed from the predictions; remove it "
                                 "or rerun the harness")


def bootstrap_settings(claimed: Any, max_samples: int, where: str) -> tuple[int, int]:
    """The claim's bootstrap ``samples`` and ``seed`` (bounded, so validation time stays bounded)."""
    settings = claimed.get("bootstrap") if isinstance(claimed, Mapping) else None
    if not isinstance(settings, Mapping):
        raise SubmissionRejected(f"{where}: metrics.bootstrap must give the 'samples' and 'seed' used for the CIs")
    samples, seed = settings.get("samples"), settings.get("seed")
    for name, value in (("samples", samples), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SubmissionRejected(f"{where}: metrics.bootstrap.{name} must be a non-negative integer")
    if samples > max_samples:
        raise SubmissionRejected(f"{where}: metrics.bootstrap.samples = {samples} is over this board's limit of "
                                 f"{max_samples}; rerun with fewer bootstrap samples")
    return samples, seed


def recompute_classification(labels: np.ndarray, topk_ids: np.ndarray, class_names: list[str], claimed: Any,
                             *, max_bootstrap_samples: int, frequency_counts: dict[str, dict[str, int]],
                             class_concepts: dict[str, str] | None = None) -> dict[str, Any]:
    """The harness's metrics for these predictions, with the claim's bootstrap settings."""
    from letitwag.harness.metrics import classification_metrics

    samples, seed = bootstrap_settings(claimed, max_bootstrap_samples, "results.json")
    return classification_metrics(labels, topk_ids, class_names, bootstrap_samples=samples, seed=seed,
                                  frequency_counts=frequency_counts, class_concepts=class_concepts)
