"""Classification metrics from per-sample predictions, shared by the harness and the leaderboard.

Definitions match CLIP_benchmark's: top-k accuracy = fraction of samples whose true class is
among the k best-scored classes ("top5" is null with fewer than 5 classes, where CLIP_benchmark
reports NaN); mean per-class
recall = balanced accuracy = the mean, over classes that have samples, of the fraction of that
class's samples predicted top-1 correctly. Confidence intervals come from a seeded percentile
bootstrap over samples, so the same predictions always give the same numbers.

Accuracy by frequency bin is the paper's point: each concept's per-class accuracy grouped by
log10 of its pretraining frequency (bin b holds counts in [10^b, 10^(b+1)); zero counts as one).
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from letitwag.errors import UserInputError
from letitwag.tables import counts_for_classes, paper_counts_by_corpus

TOP_K = 5
CI_LEVEL = 0.95


def _validate(labels: np.ndarray, topk_ids: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    topk_ids = np.asarray(topk_ids, dtype=np.int64)
    if topk_ids.ndim != 2 or topk_ids.shape[0] != labels.shape[0]:
        raise UserInputError(
            f"predictions: topk_ids has shape {list(topk_ids.shape)}, expected [{labels.shape[0]}, k]"
        )
    if labels.size == 0:
        raise UserInputError("predictions: no samples to score")
    for name, values in (("label", labels), ("topk_ids", topk_ids)):
        if values.min() < 0 or values.max() >= num_classes:
            raise UserInputError(f"predictions: {name} values must lie in [0, {num_classes}) (the class list)")
    return labels, topk_ids


def _topk_hits(labels: np.ndarray, topk_ids: np.ndarray, k: int) -> np.ndarray:
    """Per-sample booleans: the true class is among the first ``k`` predictions."""
    if topk_ids.shape[1] < k:
        raise UserInputError(f"predictions: need {k} predicted ids per sample for top-{k}, got {topk_ids.shape[1]}")
    return (topk_ids[:, :k] == labels[:, None]).any(axis=1)


def _mean_per_class_recall(labels: np.ndarray, top1: np.ndarray, num_classes: int) -> float:
    support = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels, weights=top1, minlength=num_classes)
    present = support > 0
    return float((hits[present] / support[present]).mean())


# Resamples drawn per batch: about this many gathered indices at once (~8 MB of int64), small
# enough to stay in cache on large datasets, large enough to amortise Python on small ones.
_BOOTSTRAP_BATCH_ELEMENTS = 1 << 20


def _resample_counts(code: np.ndarray, index: np.ndarray, num_codes: int) -> np.ndarray:
    """(batch, num_codes) counts of each sample code in every resample row, by one offset bincount."""
    batch = index.shape[0]
    offset = code[index]
    offset += (np.arange(batch, dtype=np.int64) * num_codes)[:, None]
    return np.bincount(offset.ravel(), minlength=batch * num_codes).reshape(batch, num_codes)


def _recall_rows(support: np.ndarray, hits: np.ndarray, labels: np.ndarray, top1: np.ndarray,
                 index: np.ndarray, num_classes: int) -> np.ndarray:
    """``_mean_per_class_recall`` of every resample row, bit for bit.

    Rows where every class is present (the usual case) are averaged in one call, which sums each
    row in the same order as the 1-D mean; a row with an absent class is recomputed by the 1-D
    function, so the result never depends on the batching.
    """
    complete = (support > 0).all(axis=1)
    recall = np.empty(support.shape[0])
    recall[complete] = (hits[complete] / support[complete]).mean(axis=1)
    for row in np.flatnonzero(~complete):
        recall[row] = _mean_per_class_recall(labels[index[row]], top1[index[row]], num_classes)
    return recall


def bootstrap_ci(
    labels: np.ndarray, top1: np.ndarray, topk: np.ndarray | None, num_classes: int, samples: int, seed: int
) -> dict[str, list[float] | None]:
    """Percentile 95% intervals of top1 / top5 / mean per-class recall over resampled samples.

    Why batched and coded: each sample is one small integer (class, top-1 hit, top-k hit), so a
    resample is one gather and one ``bincount`` instead of several gathers, means and bincounts.
    Resamples are drawn in batches (``rng.integers(0, n, (batch, n))`` yields exactly the draws of
    ``batch`` successive ``rng.integers(0, n, n)`` calls) and hit fractions are integer counts
    divided by n (equal to the float mean of 0/1 values), so a seed gives the same intervals as a
    one-resample-at-a-time loop.
    """
    rng = np.random.default_rng(seed)
    n = labels.shape[0]
    # code = class * flags + top-1 hit, or class * flags + 2 * top-1 hit + top-k hit
    flags = 2 if topk is None else 4
    code = labels * flags + (top1 if topk is None else 2 * top1 + topk)
    values = np.empty((samples, 3))
    batch = max(1, _BOOTSTRAP_BATCH_ELEMENTS // n)
    for start in range(0, samples, batch):
        index = rng.integers(0, n, (min(batch, samples - start), n))
        counts = _resample_counts(code, index, num_classes * flags).reshape(index.shape[0], num_classes, flags)
        support = counts.sum(axis=2)
        hits = counts[:, :, flags // 2:].sum(axis=2)
        rows = slice(start, start + index.shape[0])
        values[rows, 0] = hits.sum(axis=1) / n
        values[rows, 1] = counts[:, :, 1::2].sum(axis=(1, 2)) / n if topk is not None else np.nan
        values[rows, 2] = _recall_rows(support, hits, labels, top1, index, num_classes)
    low, high = np.percentile(values, [100 * (1 - CI_LEVEL) / 2, 100 * (1 + CI_LEVEL) / 2], axis=0)
    names = ("top1", "top5", "mean_per_class_recall")
    return {name: None if np.isnan(low[i]) else [float(low[i]), float(high[i])] for i, name in enumerate(names)}


def accuracy_by_frequency_bin(
    per_class_accuracy: Mapping[str, float],
    class_support: Mapping[str, int],
    frequency_counts: Mapping[str, Mapping[str, int]],
    value_name: str = "accuracy",
    class_concepts: Mapping[str, str] | None = None,
) -> tuple[dict[str, list[dict]], dict[str, list[str]]]:
    """Per corpus: concepts grouped by floor(log10(count)); the mean per-concept value of each bin.

    Returns the bins (the mean under ``value_name``: accuracy for classification, recall for
    retrieval; ``num_samples`` sums the concepts' supports) and, per corpus, the evaluated concepts
    that have no count (never dropped silently). ``class_concepts``: the paper's concept of each
    class where the two are spelled differently (``tables.counts_for_classes``).
    """
    bins: dict[str, list[dict]] = {}
    unmatched: dict[str, list[str]] = {}
    names = list(per_class_accuracy)
    for corpus in sorted(frequency_counts):
        matched = counts_for_classes(names, frequency_counts[corpus], class_concepts)
        unmatched[corpus] = [name for name in names if matched[name] is None]
        grouped: dict[int, list[str]] = {}
        for name in names:
            if matched[name] is not None:
                grouped.setdefault(int(math.floor(math.log10(max(matched[name], 1)))), []).append(name)
        bins[corpus] = [
            {
                "bin": b,
                "log10_low": float(b),
                "log10_high": float(b + 1),
                "num_concepts": len(grouped[b]),
                "num_samples": int(sum(class_support[name] for name in grouped[b])),
                value_name: float(np.mean([per_class_accuracy[name] for name in grouped[b]])),
            }
            for b in sorted(grouped)
        ]
    return bins, unmatched


def classification_metrics(
    labels: np.ndarray,
    topk_ids: np.ndarray,
    class_names: list[str],
    *,
    bootstrap_samples: int = 1000,
    seed: int = 0,
    frequency_counts: dict[str, dict[str, int]] | None = None,
    class_concepts: Mapping[str, str] | None = None,
) -> dict:
    """The ``metrics`` object of ``letitwag.results/1`` (docs/FORMATS.md), all fractions in [0, 1].

    ``frequency_counts`` maps corpus -> {concept id: count}; by default the bundled paper tables
    (``matched`` counts) of every corpus that has one. ``class_concepts`` maps class names to the
    paper's concept ids where they differ (``letitwag.concept_map``), for the frequency bins.
    """
    num_classes = len(class_names)
    labels, topk_ids = _validate(labels, topk_ids, num_classes)
    top1 = topk_ids[:, 0] == labels
    topk = _topk_hits(labels, topk_ids, TOP_K) if num_classes >= TOP_K else None
    support = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels, weights=top1, minlength=num_classes)
    per_class = {class_names[c]: float(hits[c] / support[c]) for c in range(num_classes) if support[c] > 0}
    class_support = {class_names[c]: int(support[c]) for c in range(num_classes) if support[c] > 0}
    if frequency_counts is None:
        frequency_counts = paper_counts_by_corpus()
    by_bin, unmatched = accuracy_by_frequency_bin(per_class, class_support, frequency_counts,
                                                  class_concepts=class_concepts)
    metrics = {
        "num_samples": int(labels.shape[0]),
        "num_classes_with_samples": len(per_class),
        "top1": float(top1.mean()),
        "top5": float(topk.mean()) if topk is not None else None,
        "mean_per_class_recall": _mean_per_class_recall(labels, top1, num_classes),
        "bootstrap": {"samples": bootstrap_samples, "seed": seed, "level": CI_LEVEL},
        "per_class_accuracy": per_class,
        "per_class_support": class_support,
        "by_frequency_bin": by_bin,
        "frequency_unmatched": unmatched,
    }
    if bootstrap_samples > 0:
        metrics["ci95"] = bootstrap_ci(labels, top1, topk, num_classes, bootstrap_samples, seed)
    return metrics
