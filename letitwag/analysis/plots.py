"""Figures of the analysis, in the paper's style (serif, log-x, dotted grid, inward ticks).

Every figure is written twice, PNG for the HTML report and SVG for papers, with the Agg
backend so nothing needs a display. ``plot_performance_vs_frequency`` is the one-model
figure other parts (the leaderboard's model pages) call with joined rows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from letitwag.analysis.fits import BinningOptions, regression_band
from letitwag.analysis.grouping import FitResult, fit_group

PAPER_STYLE = {
    "font.family": "serif",
    "grid.linestyle": ":",
    "xtick.direction": "in",
    "ytick.direction": "in",
    "legend.fontsize": 7,
    "axes.labelsize": 10,
    "axes.titlesize": 11,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "svg.hashsalt": "letitwag",
    "svg.fonttype": "none",  # text stays text: smaller files, and glyph outlines were a large part of the time
}
COLOURS = ("royalblue", "forestgreen", "indianred", "darkorange", "purple", "teal", "goldenrod", "slategray")
MARKERS = ("o", "s", "d", "^", "v", "P", "X", "*")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg``; returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=100)
    fig.savefig(paths[1], metadata={"Date": None})
    _pyplot().close(fig)
    return paths


def _significance(p: float | None) -> str:
    return "**" if p is not None and p < 0.05 else ""


def draw_fit(ax, fit: FitResult, colour: str, marker: str, label: str, band: bool = True) -> None:
    """Bin means (filled: used in the correlation; hollow: dropped end bins) and the per-concept line."""
    bins = [b for b in fit.binned.bins if b["n"] > 0]
    kept = set(fit.binned.kept)
    rho = fit.binned.pearson_r
    text = f"{label}, \u03c1={rho:.2f}{_significance(fit.binned.p_value)}" if rho is not None else f"{label}"
    kept_bins = [b for b in bins if b["index"] in kept]
    ax.plot([10 ** b["log10_position"] for b in kept_bins], [b["mean"] for b in kept_bins], marker=marker,
            linestyle="solid", color=colour, alpha=0.75, markersize=5, linewidth=1.5, label=text)
    dropped = [b for b in bins if b["index"] not in kept]
    if dropped:
        ax.plot([10 ** b["log10_position"] for b in dropped], [b["mean"] for b in dropped], marker=marker,
                linestyle="none", color=colour, alpha=0.5, markersize=5, markerfacecolor="none")
    reg = fit.regression
    if reg.slope_per_decade is None:
        return
    x = np.log10(np.asarray([row["count"] for row in fit.rows], dtype=np.float64) + 1.0)
    grid = np.linspace(max(x.min(), math.log10(2.0)), x.max(), 40)
    ax.plot(10 ** grid, reg.intercept + reg.slope_per_decade * grid, linestyle="--", color=colour, alpha=0.6,
            linewidth=1)
    bounds = regression_band(reg, grid) if band else None
    if bounds is not None:
        ax.fill_between(10 ** grid, bounds[0], bounds[1], color=colour, alpha=0.12, linewidth=0)


_SUPERSCRIPTS = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


def _power_of_ten(value: float, _position=None) -> str:
    """``10³``-style tick labels without mathtext (mathtext layout dominated drawing time)."""
    if value <= 0:
        return ""
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) > 1e-9:
        return ""
    return "10" + str(int(round(exponent))).translate(_SUPERSCRIPTS)


def _log_axis(axis) -> None:
    from matplotlib import ticker

    axis.set_major_locator(ticker.LogLocator(base=10.0, numticks=12))
    axis.set_major_formatter(ticker.FuncFormatter(_power_of_ten))
    axis.set_minor_locator(ticker.NullLocator())


def _style_axis(ax, score_label: str) -> None:
    ax.set_xscale("log")
    _log_axis(ax.xaxis)
    ax.grid(True)
    ax.set_xlabel("Pretraining concept frequency")
    ax.set_ylabel(score_label)


def _fixed_margins(fig, width: float, height: float) -> None:
    """Margins in inches; ``tight_layout`` measured every tick label and tripled drawing time."""
    fig.subplots_adjust(left=0.62 / width, right=1 - 0.12 / width, bottom=0.45 / height, top=1 - 0.62 / height,
                        wspace=0.32, hspace=0.5)


def plot_panels(panels: Sequence[tuple[str, Sequence[tuple[str, FitResult]]]], stem: Path, title: str,
                score_label: str, columns: int = 3) -> list[Path]:
    """One panel per (title, [(label, fit), ...]); one line per fit, as in the paper's figures."""
    plt = _pyplot()
    import matplotlib

    with matplotlib.rc_context(PAPER_STYLE):
        rows = max(1, math.ceil(len(panels) / columns))
        cols = min(columns, max(1, len(panels)))
        fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.9 * rows), squeeze=False)
        for ax, (panel_title, fits) in zip(axes.flat, panels):
            for index, (label, fit) in enumerate(fits):
                draw_fit(ax, fit, COLOURS[index % len(COLOURS)], MARKERS[index % len(MARKERS)], label)
            _style_axis(ax, score_label)
            ax.set_title(panel_title)
            ax.legend(loc="lower right")
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        fig.suptitle(title, fontsize=12)
        _fixed_margins(fig, 3.6 * cols, 2.9 * rows)
        return save_figure(fig, stem)


def plot_performance_vs_frequency(
    joined_rows: Iterable[dict],
    out_path_stem: str | Path,
    *,
    title: str = "",
    score_label: str = "Score",
    label: str = "",
    binning: BinningOptions | None = None,
    task: str = "classification",
    bootstrap: int = 1000,
    seed: int = 0,
) -> list[Path]:
    """One model's performance against pretraining frequency: concepts, bins, line and its CI.

    ``joined_rows`` are dicts with at least ``count`` and ``score`` (the rows of
    ``joined.csv``, or ``FitResult.rows``). Writes ``<stem>.png`` and ``<stem>.svg`` and
    returns their paths. The binning defaults to the paper's for ``task``.
    """
    from letitwag.analysis.fits import DEFAULT_BINS

    rows = [{"count": int(r["count"]), "score": float(r["score"]), "dataset": r.get("dataset", ""),
             "model": r.get("model", ""), "corpus": r.get("corpus", ""), "count_type": r.get("count_type", ""),
             "task": task, "metric": r.get("metric", "")} for r in joined_rows]
    binning = binning or BinningOptions(bins=DEFAULT_BINS.get(task, 12))
    key = (label or "model", "", "", task, "", "pooled")
    fit = fit_group(key, rows, binning, bootstrap, seed)
    plt = _pyplot()
    import matplotlib

    with matplotlib.rc_context(PAPER_STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 3.9))
        if rows:
            ax.scatter([max(r["count"], 1) for r in rows], [r["score"] for r in rows], s=6, color="grey", alpha=0.25,
                       linewidths=0, label="concepts")
            draw_fit(ax, fit, COLOURS[0], MARKERS[0], label or "bin means")
            reg = fit.regression
            if reg.slope_per_decade is not None:
                low, high = reg.slope_ci95
                ci = f" [{low:.2f}, {high:.2f}]" if low is not None else ""
                ax.text(0.02, 0.97, f"slope {reg.slope_per_decade:.2f}/decade{ci}, n={reg.n}",
                        transform=ax.transAxes, va="top", fontsize=8)
        _style_axis(ax, score_label)
        ax.set_title(title)
        ax.legend(loc="lower right")
        fig.tight_layout()
        return save_figure(fig, Path(out_path_stem))


def plot_zipf(curves: Sequence[tuple[str, Sequence[int], dict]], stem: Path) -> list[Path]:
    """Rank-frequency curves (log-log) with the fitted power law for each pretraining set."""
    plt = _pyplot()
    import matplotlib

    with matplotlib.rc_context(PAPER_STYLE):
        fig, ax = plt.subplots(figsize=(5.6, 4.0))
        for index, (label, counts, fit) in enumerate(curves):
            values = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
            values = values[values > 0]
            if len(values) == 0:
                continue
            ranks = np.arange(1, len(values) + 1)
            colour = COLOURS[index % len(COLOURS)]
            exponent = fit.get("exponent")
            text = f"{label} (s={exponent:.2f})" if exponent is not None else label
            ax.plot(ranks, values, color=colour, linewidth=1.3, label=text)
            if exponent is not None:
                fitted = ranks[: fit["n_fitted"]]
                ax.plot(fitted, 10 ** fit["intercept"] * fitted ** (-exponent), color="black", linestyle=":",
                        linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _log_axis(ax.xaxis)
        _log_axis(ax.yaxis)
        ax.grid(True)
        ax.set_xlabel("Concept rank (most frequent first)")
        ax.set_ylabel("Pretraining concept frequency")
        ax.set_title("Long-tailed concept frequencies (matched counts)")
        ax.legend(loc="lower left")
        fig.tight_layout()
        return save_figure(fig, stem)


def plot_let_it_wag_vs_imagenet(points: Sequence[dict], lines: dict, overlay: Sequence[dict], stem: Path) -> list[Path]:
    """Let it Wag! against ImageNet accuracy with the two fitted lines and any new models."""
    plt = _pyplot()
    import matplotlib

    with matplotlib.rc_context(PAPER_STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 4.2))
        ax.scatter([p["imagenet_top1"] for p in points], [p["let_it_wag_top1"] for p in points], s=28,
                   color="royalblue", alpha=0.5, edgecolors="black", linewidths=0.5, label="40 released models")
        for side, style in (("below", "-"), ("above", "-")):
            line = lines.get(side, {})
            if line.get("slope") is None:
                continue
            x = np.array([line["x_min"] - 4, line["x_max"] + 4])
            paper = lines.get("paper_slopes", {}).get(side)
            ax.plot(x, line["intercept"] + line["slope"] * x, style, color="black", alpha=0.45, linewidth=1.6,
                    label=f"fit {side} {lines['threshold']:.0f}%: slope {line['slope']:.2f} (paper {paper})")
        for index, point in enumerate(overlay):
            ax.scatter([point["imagenet_top1"]], [point["let_it_wag_top1"]], marker="*", s=140,
                       color=COLOURS[(index + 2) % len(COLOURS)], edgecolors="black", linewidths=0.6,
                       label=point["model"][:40], zorder=5)
        ax.plot([0, 100], [0, 100], linestyle="dashed", color="black", alpha=0.3)
        ax.set_xlim(10, 90)
        ax.set_ylim(0, 80)
        ax.set_xlabel("ImageNet accuracy (%)")
        ax.set_ylabel("Let it Wag! accuracy (%)")
        ax.grid(True)
        ax.legend(loc="upper left")
        fig.tight_layout()
        return save_figure(fig, stem)
