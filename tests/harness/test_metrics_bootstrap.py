"""The batched bootstrap gives exactly the intervals of the one-resample-at-a-time definition."""

import numpy as np
import pytest

from letitwag.harness import metrics
from letitwag.harness.metrics import CI_LEVEL, bootstrap_ci


def one_at_a_time(labels, top1, topk, num_classes, samples, seed):
    """The definition, written as plainly as possible: one ``rng.integers(0, n, n)`` per resample."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    values = []
    for _ in range(samples):
        index = rng.integers(0, n, n)
        resampled, hit = labels[index], top1[index]
        support = np.bincount(resampled, minlength=num_classes)
        hits = np.bincount(resampled, weights=hit, minlength=num_classes)
        present = support > 0
        values.append((hit.mean(), topk[index].mean() if topk is not None else np.nan,
                       (hits[present] / support[present]).mean()))
    low, high = np.percentile(np.array(values), [100 * (1 - CI_LEVEL) / 2, 100 * (1 + CI_LEVEL) / 2], axis=0)
    names = ("top1", "top5", "mean_per_class_recall")
    return {name: None if np.isnan(low[i]) else [float(low[i]), float(high[i])] for i, name in enumerate(names)}


def test_batched_draws_equal_successive_draws():
    first = np.random.default_rng(11).integers(0, 301, (7, 301))
    rng = np.random.default_rng(11)
    assert np.array_equal(first, np.stack([rng.integers(0, 301, 301) for _ in range(7)]))


@pytest.mark.parametrize(
    ("n", "num_classes", "samples", "seed", "with_topk"),
    [
        (6, 6, 200, 0, True),  # absent classes in most resamples: the per-row fallback
        (7, 3, 333, 5, True),  # odd sizes
        (500, 30, 100, 1, True),
        (301, 290, 50, 2, True),  # more classes than fit in a resample
        (3000, 10, 120, 3, False),  # fewer than 5 classes' worth: no top-k
        (1, 2, 10, 0, True),
    ],
)
def test_bit_identical_to_one_at_a_time(n, num_classes, samples, seed, with_topk, monkeypatch):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    top1 = rng.random(n) < 0.6
    topk = (top1 | (rng.random(n) < 0.3)) if with_topk else None
    expected = one_at_a_time(labels, top1, topk, num_classes, samples, seed)
    assert bootstrap_ci(labels, top1, topk, num_classes, samples, seed) == expected
    monkeypatch.setattr(metrics, "_BOOTSTRAP_BATCH_ELEMENTS", 2 * n + 1)  # batches of 2 and a remainder
    assert bootstrap_ci(labels, top1, topk, num_classes, samples, seed) == expected
