"""Each entry's own long-tail slope: how much accuracy it gains per tenfold more pretraining data.

Why per model: the paper's finding is that zero-shot accuracy grows only log-linearly with a
concept's pretraining frequency; a model's slope on Let it Wag! says how steeply *its* accuracy
falls off towards the rare concepts, which top-1 alone hides. The number is the analysis's
per-concept regression (``letitwag.analysis.fits.regression_fit``, one implementation): OLS of
per-concept accuracy in percent on log10(matched pretraining count + 1) over the board's concepts
with a known count, 95% CI from a seeded bootstrap over concepts. A verified entry's per-concept
accuracies are the ones the board recomputed from its predictions (``validate``); a paper entry's
are the paper's reported ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from letitwag.analysis.fits import DEFAULT_BOOTSTRAP, DEFAULT_SEED, regression_fit


@dataclass(frozen=True)
class LongTailFit:
    """Slope in accuracy points per decade of frequency, its 95% CI, the line's intercept, concepts fitted."""

    slope: float
    ci95: list[float] | None
    intercept: float
    concepts: int


def long_tail_fit(per_class: Mapping[str, float], frequencies: Mapping[str, int],
                  bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED) -> LongTailFit | None:
    """The fit over the concepts with both an accuracy (a fraction) and a count; None below 3 such concepts."""
    concepts = sorted(concept for concept in frequencies if concept in per_class)
    fit = regression_fit([frequencies[c] for c in concepts], [100.0 * per_class[c] for c in concepts],
                         bootstrap, seed, correlations=False)
    if fit.slope_per_decade is None or fit.intercept is None:
        return None
    interval = fit.slope_ci95 if None not in fit.slope_ci95 else None
    return LongTailFit(fit.slope_per_decade, interval, fit.intercept, fit.n)


def attach_long_tail(entries: Sequence, frequencies: Mapping[str, int]) -> None:
    """Set every entry's ``long_tail`` (None where fewer than 3 of its concepts have a count)."""
    for entry in entries:
        entry.long_tail = long_tail_fit(entry.per_class_accuracy, frequencies)
