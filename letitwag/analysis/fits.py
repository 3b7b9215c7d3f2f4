"""The two fits of performance against pretraining concept frequency.

(a) ``binned_fit`` is the paper's method, reproduced from the released notebooks
(``notebooks/zero_shot_integrated_search_results.ipynb`` and the plotting notebooks of
``bethgelab/frequency_determines_performance``): counts of zero become one, take the log,
put ``bins`` equally spaced *edges* over ``[min, max]`` of the log counts
(``np.linspace(min, max, bins)``) and give each concept the first edge at or above it
(``np.digitize(..., right=True)``). So bin 0 holds only the concepts at the minimum count and
bin ``i >= 1`` is the interval ``(edge[i-1], edge[i]]``; the paper plots each bin at its
upper edge. It then drops sparse bins at the ends (``[1:-1]`` for most pretraining sets) and
reports the Pearson correlation between the log bin position and the mean performance of the
bin, with scipy's two-tailed p-value. Why keep the odd bin 0: without it our correlations
would not be the paper's numbers.

(b) ``regression_fit`` is ours: an ordinary least-squares line of performance on
``log10(count + 1)`` over every concept (no binning), so the slope reads as "performance
gained per tenfold more pretraining data", with a seeded percentile-bootstrap 95% interval,
plus Pearson and Spearman correlations. Binning hides how noisy single concepts are; this
fit shows it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
from scipy import stats

from letitwag.errors import UserInputError

BIN_POSITIONS = ("upper", "centre", "left")
DEFAULT_BINS = {"classification": 12, "retrieval": 7, "t2i": 7}
DEFAULT_EDGE_RULE = "1,1"
DEFAULT_BOOTSTRAP = 1000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class EdgeRule:
    """Which bins at the two ends are dropped before correlating.

    ``drop_low``/``drop_high`` are fixed numbers of bins (the paper's slices: ``[1:-1]`` is
    1,1; LAION-400M ``[2:-1]`` is 2,1; SynthCI-30M ``[0:-4]`` is 0,4; T2I ``[-4:]`` of 7 is
    3,0). ``min_concepts`` instead drops end bins, one at a time from each end, while they
    hold fewer concepts than that (``sparse:K``).
    """

    drop_low: int = 1
    drop_high: int = 1
    min_concepts: int | None = None

    @classmethod
    def parse(cls, text: str) -> "EdgeRule":
        """``LOW,HIGH`` (e.g. ``1,1``), ``sparse:K`` or ``none``."""
        value = text.strip().lower()
        if value == "none":
            return cls(0, 0)
        if value.startswith("sparse:"):
            number = value.split(":", 1)[1]
            if not number.isdigit() or int(number) < 1:
                raise UserInputError(f"edge rule {text!r}: sparse:K needs a whole number K >= 1, e.g. sparse:5")
            return cls(0, 0, int(number))
        parts = value.split(",")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise UserInputError(f"edge rule {text!r}: use LOW,HIGH (e.g. 1,1), sparse:K (e.g. sparse:5) or none")
        return cls(int(parts[0]), int(parts[1]))

    def describe(self) -> str:
        if self.min_concepts is not None:
            return f"sparse:{self.min_concepts}"
        return f"{self.drop_low},{self.drop_high}"


@dataclass(frozen=True)
class BinningOptions:
    """Parameters of the binned fit; recorded with every result."""

    bins: int = 12
    edges: EdgeRule = field(default_factory=EdgeRule)
    position: str = "upper"

    def __post_init__(self) -> None:
        if self.bins < 2:
            raise UserInputError(f"--bins {self.bins}: need at least 2 bins")
        if self.position not in BIN_POSITIONS:
            raise UserInputError(f"bin position {self.position!r}: use one of {', '.join(BIN_POSITIONS)}")

    def to_json(self) -> dict:
        return {"bins": self.bins, "edge_rule": self.edges.describe(), "position": self.position}


def paper_log(counts: np.ndarray) -> np.ndarray:
    """log10 of the counts with zero counted as one (the paper's x axis)."""
    return np.log10(np.maximum(np.asarray(counts, dtype=np.float64), 1.0))


def _clean_float(value: float | None) -> float | None:
    """JSON-safe float: NaN and infinities become None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    result = stats.pearsonr(x, y)
    return _clean_float(result.statistic), _clean_float(result.pvalue)


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    result = stats.spearmanr(x, y)
    return _clean_float(result.statistic), _clean_float(result.pvalue)


# --- (a) the paper's binned fit ------------------------------------------------------------

@dataclass
class BinnedFit:
    options: dict
    bins: list[dict]
    kept: list[int]
    pearson_r: float | None
    p_value: float | None
    slope_per_decade: float | None
    intercept: float | None
    note: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def _assign_bins(log_counts: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges (log10) and each concept's bin index, exactly as the paper's notebooks do it.

    The paper bins natural logs; equally spaced edges over [min, max] are the same bins in
    any base, and we bin in natural log so boundary cases land where the paper's did.
    """
    natural = log_counts * math.log(10.0)
    edges = np.linspace(natural.min(), natural.max(), num=n_bins)
    assigned = np.digitize(natural, edges, right=True)
    return edges / math.log(10.0), assigned


def _apply_edge_rule(bins: list[dict], rule: EdgeRule) -> list[int]:
    indices = [b["index"] for b in bins]
    if rule.min_concepts is None:
        end = len(indices) - rule.drop_high
        kept = indices[rule.drop_low:end] if end > rule.drop_low else []
    else:
        kept = list(indices)
        while kept and bins[kept[0]]["n"] < rule.min_concepts:
            kept.pop(0)
        while kept and bins[kept[-1]]["n"] < rule.min_concepts:
            kept.pop()
    return [i for i in kept if bins[i]["n"] > 0]


def binned_fit(counts: Sequence[float], scores: Sequence[float], options: BinningOptions) -> BinnedFit:
    """The paper's binned correlation of mean performance against log frequency.

    Empty bins have no mean: they are listed with ``n = 0`` and never correlated (the paper's
    T2I notebook counted them as 0 and its classification notebook would fail on them).
    """
    log_counts = paper_log(counts)
    values = np.asarray(scores, dtype=np.float64)
    if len(values) == 0:
        return BinnedFit(options.to_json(), [], [], None, None, None, None, "no concepts")
    if np.ptp(log_counts) == 0:
        return BinnedFit(options.to_json(), [], [], None, None, None, None,
                         "every concept has the same count: nothing to bin")
    edges, assigned = _assign_bins(log_counts, options.bins)
    bins = []
    for index in range(options.bins):
        members = values[assigned == index]
        low = edges[index - 1] if index > 0 else edges[0]
        high = edges[index]
        position = {"upper": high, "left": low, "centre": (low + high) / 2.0}[options.position]
        bins.append(
            {
                "index": index,
                "log10_low": float(low),
                "log10_high": float(high),
                "log10_position": float(position),
                "n": int(len(members)),
                "mean": _clean_float(members.mean()) if len(members) else None,
                "std": _clean_float(members.std()) if len(members) else None,
            }
        )
    kept = _apply_edge_rule(bins, options.edges)
    positions = np.array([bins[i]["log10_position"] for i in kept])
    means = np.array([bins[i]["mean"] for i in kept], dtype=np.float64)
    r, p = _pearson(positions, means)
    slope = intercept = None
    note = ""
    if len(kept) >= 2 and np.ptp(positions) > 0:
        line = stats.linregress(positions, means)
        slope, intercept = _clean_float(line.slope), _clean_float(line.intercept)
    if r is None:
        note = f"{len(kept)} bin(s) kept after the edge rule: a correlation needs 3 with distinct means"
    return BinnedFit(options.to_json(), bins, kept, r, p, slope, intercept, note)


# --- (b) per-concept regression ------------------------------------------------------------

@dataclass
class RegressionFit:
    n: int
    slope_per_decade: float | None
    slope_ci95: list[float | None]
    intercept: float | None
    intercept_ci95: list[float | None]
    pearson_r: float | None
    pearson_p: float | None
    spearman_rho: float | None
    spearman_p: float | None
    bootstrap: dict
    x: str = "log10(count + 1)"
    note: str = ""
    # bootstrap replicates for plotting bands; not written to JSON
    replicate_slopes: np.ndarray | None = field(default=None, repr=False)
    replicate_intercepts: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        record = asdict(self)
        record.pop("replicate_slopes")
        record.pop("replicate_intercepts")
        return record


@functools.lru_cache(maxsize=4)
def _resample_weights(n: int, samples: int, seed: int, chunk: int = 256) -> np.ndarray:
    """``(samples, n)``: how often each of the n points is drawn in each seeded resample (read-only).

    Cached: the draws depend only on (n, samples, seed), and a leaderboard fits every model over the
    same concepts, where drawing and gathering the resamples was most of each fit.
    """
    rng = np.random.default_rng(seed)
    weights = np.empty((samples, n))
    for start in range(0, samples, chunk):
        rows = min(start + chunk, samples) - start
        index = rng.integers(0, n, size=(rows, n), dtype=np.int32)
        offset = (index + (np.arange(rows) * n)[:, None]).ravel()
        weights[start : start + rows] = np.bincount(offset, minlength=rows * n).reshape(rows, n)
    weights.flags.writeable = False
    return weights


def _bootstrap_lines(x: np.ndarray, y: np.ndarray, samples: int, seed: int):
    """Slopes and intercepts of OLS lines on ``samples`` resamples (vectorised, seeded).

    A resample's sums are its draw counts times the values, so the four sums every line needs are
    four matrix-vector products with the cached count matrix, on data centred once on the full
    sample (which keeps the sums accurate).
    """
    n = len(x)
    weights = _resample_weights(n, samples, seed)
    x_centre, y_centre = x.mean(), y.mean()
    xc, yc = x - x_centre, y - y_centre
    mx, my = weights @ xc / n, weights @ yc / n
    var = weights @ (xc * xc) - n * mx * mx
    cov = weights @ (xc * yc) - n * mx * my
    ok = var > 1e-12 * n
    slopes = np.where(ok, cov / np.where(ok, var, 1.0), np.nan)
    intercepts = y_centre + (my - slopes * mx) - slopes * x_centre
    return slopes, intercepts


def _percentiles(values: np.ndarray) -> list[float | None]:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return [None, None]
    low, high = np.percentile(finite, [2.5, 97.5])
    return [_clean_float(low), _clean_float(high)]


def regression_fit(
    counts: Sequence[float],
    scores: Sequence[float],
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    *,
    correlations: bool = True,
) -> RegressionFit:
    """OLS of score on log10(count + 1) over all concepts, with a seeded bootstrap CI.

    ``correlations=False`` leaves the Pearson and Spearman fields None, for callers that need only
    the line (the leaderboard fits a thousand models per build).
    """
    x = np.log10(np.asarray(counts, dtype=np.float64) + 1.0)
    y = np.asarray(scores, dtype=np.float64)
    boot = {"samples": int(bootstrap), "seed": int(seed), "method": "percentile, resampling concepts"}
    if len(x) < 3 or np.ptp(x) == 0:
        return RegressionFit(len(x), None, [None, None], None, [None, None], None, None, None, None, boot,
                             note="a line needs 3 or more concepts with different counts")
    line = stats.linregress(x, y)
    r, p = _pearson(x, y) if correlations else (None, None)
    rho, rho_p = _spearman(x, y) if correlations else (None, None)
    slopes = intercepts = None
    slope_ci = intercept_ci = [None, None]
    if bootstrap > 0:
        slopes, intercepts = _bootstrap_lines(x, y, bootstrap, seed)
        slope_ci, intercept_ci = _percentiles(slopes), _percentiles(intercepts)
    return RegressionFit(
        n=int(len(x)),
        slope_per_decade=_clean_float(line.slope),
        slope_ci95=slope_ci,
        intercept=_clean_float(line.intercept),
        intercept_ci95=intercept_ci,
        pearson_r=r,
        pearson_p=p,
        spearman_rho=rho,
        spearman_p=rho_p,
        bootstrap=boot,
        replicate_slopes=slopes,
        replicate_intercepts=intercepts,
    )


def regression_band(fit: RegressionFit, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Pointwise 95% band of the bootstrap lines over ``grid`` (log10(count + 1) values)."""
    if fit.replicate_slopes is None or fit.slope_per_decade is None:
        return None
    ok = np.isfinite(fit.replicate_slopes)
    lines = fit.replicate_slopes[ok][:, None] * grid[None, :] + fit.replicate_intercepts[ok][:, None]
    if len(lines) == 0:
        return None
    return np.percentile(lines, 2.5, axis=0), np.percentile(lines, 97.5, axis=0)


def segmented_lines(x: Sequence[float], y: Sequence[float], threshold: float) -> dict:
    """Two OLS lines, one for ``x < threshold`` and one for ``x > threshold`` (paper Fig. 6).

    The paper fits Let it Wag! accuracy against ImageNet accuracy separately below and
    above 50% ImageNet accuracy (``np.linalg.lstsq``); a point exactly at the threshold is
    in neither, as in its notebook.
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    out = {"threshold": threshold, "method": "OLS on each side; points at the threshold excluded"}
    for name, mask in (("below", xs < threshold), ("above", xs > threshold)):
        if mask.sum() >= 2 and np.ptp(xs[mask]) > 0:
            line = stats.linregress(xs[mask], ys[mask])
            out[name] = {"n": int(mask.sum()), "slope": _clean_float(line.slope),
                         "intercept": _clean_float(line.intercept), "r": _clean_float(line.rvalue),
                         "x_min": float(xs[mask].min()), "x_max": float(xs[mask].max())}
        else:
            out[name] = {"n": int(mask.sum()), "slope": None, "intercept": None, "r": None}
    return out


def zipf_fit(counts: Sequence[float], head_fraction: float = 0.5) -> dict:
    """Rank-frequency power law: OLS of log10(count) on log10(rank) over the head of the ranking.

    The fit uses ranks 1 .. ``head_fraction`` x (concepts with a non-zero count): a fixed
    concept list has a steep finite cut-off at the end of its ranking, and an OLS line
    through that cut-off describes neither part (we checked: R^2 ~0.7 and a line far above
    the head). The exponent is minus the slope (Zipf's law has exponent ~1). The paper shows
    the long tail as sorted normalised frequencies; the fitted exponent is ours.
    """
    values = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    positive = values[values > 0]
    head = max(3, int(len(positive) * head_fraction))
    result = {"n_concepts": int(len(values)), "n_nonzero": int(len(positive)),
              "n_zero": int(len(values) - len(positive)), "n_fitted": int(min(head, len(positive))),
              "method": f"OLS of log10(count) on log10(rank) over ranks 1..{head_fraction:g} x n_nonzero "
                        "(rank 1 = most frequent)"}
    if len(positive) < 3 or np.ptp(positive[:head]) == 0:
        result.update(exponent=None, intercept=None, r_squared=None)
        return result
    ranks = np.arange(1, len(positive) + 1, dtype=np.float64)
    line = stats.linregress(np.log10(ranks[:head]), np.log10(positive[:head]))
    share = positive[: max(1, len(positive) // 10)].sum() / positive.sum()
    result.update(exponent=_clean_float(-line.slope), intercept=_clean_float(line.intercept),
                  r_squared=_clean_float(line.rvalue ** 2), max_count=int(positive[0]),
                  median_count=_clean_float(np.median(values)), top10pct_share=_clean_float(share))
    return result
