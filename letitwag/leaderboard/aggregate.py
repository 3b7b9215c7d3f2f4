"""Board-level numbers: ranks and accuracy on the rarest vs most frequent concepts.

Ranking: by Let it Wag! top-1, ties share a rank (1, 2, 2, 4); entries not ranked (pretraining
that includes Let it Wag! source images) get none. Text-to-image entries are ranked by judge
top-1 within their judge's group only: numbers measured by different judges are not comparable.

Concept bins: over the board's classes with a known pretraining frequency, the rarest bin holds
every concept whose count is at most the 20th percentile count, the most frequent bin every
concept whose count is at least the 80th percentile count (strictly above the rarest bin's
largest count). Quantiles and not fixed-width bins, so a bin is never empty; ties kept
together, because Let it Wag! concepts are so rare that most share a count of zero and cutting
inside a tie would pick concepts by their name. An entry's "rarest" accuracy is the mean of
its per-class accuracies over the rarest bin, "most frequent" over the other. Verified and
reported entries both have per-class accuracies, so both get these numbers from one rule.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from letitwag.leaderboard.entries import Entry

LOW_QUANTILE, HIGH_QUANTILE = 0.2, 0.8


def _rank_by(entries: Iterable[Entry], metric: str) -> None:
    ranked = sorted((e for e in entries if e.ranked and e.metrics.get(metric) is not None),
                    key=lambda e: -e.metrics[metric])
    previous, rank = None, 0
    for position, entry in enumerate(ranked, start=1):
        if entry.metrics[metric] != previous:
            rank, previous = position, entry.metrics[metric]
        entry.rank = rank


def assign_ranks(entries: Sequence[Entry]) -> None:
    _rank_by((e for e in entries if e.task == "classification"), "top1")
    for group in judge_groups(entries):
        _rank_by(group["entries"], "judge_top1")


def judge_groups(entries: Sequence[Entry]) -> list[dict]:
    """Text-to-image entries grouped by judge (``{"judge": label, "entries": [...]}``), judges sorted."""
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.task == "t2i":
            groups.setdefault(entry.judge or "unknown judge", []).append(entry)
    return [{"judge": judge, "entries": groups[judge]} for judge in sorted(groups)]


def extreme_bins(frequencies: dict[str, int]) -> tuple[list[str], list[str]]:
    """(rarest bin, most frequent bin) of concept ids, each sorted by id; empty without frequencies."""
    if not frequencies:
        return [], []
    counts = np.array(list(frequencies.values()))
    low = np.quantile(counts, LOW_QUANTILE, method="inverted_cdf")
    high = max(np.quantile(counts, HIGH_QUANTILE, method="inverted_cdf"), low + 1)
    rarest = sorted(c for c, n in frequencies.items() if n <= low)
    frequent = sorted(c for c, n in frequencies.items() if n >= high)
    return rarest, frequent


def _mean_over(per_class: dict[str, float], concepts: Sequence[str]) -> float | None:
    values = [per_class[c] for c in concepts if c in per_class]
    return sum(values) / len(values) if len(values) == len(concepts) and values else None


def attach_bin_accuracies(entries: Sequence[Entry], rarest: Sequence[str], frequent: Sequence[str]) -> None:
    """Set ``rare_accuracy`` / ``frequent_accuracy`` (None when an entry lacks any concept of a bin)."""
    for entry in entries:
        entry.rare_accuracy = _mean_over(entry.per_class_accuracy, rarest)
        entry.frequent_accuracy = _mean_over(entry.per_class_accuracy, frequent)
