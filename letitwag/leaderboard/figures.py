"""Geometry of the site's two SVG figures; the templates draw them (so every label is autoescaped).

* The Let it Wag! vs ImageNet top-1 scatter with the paper's two fitted lines: least squares over
  the paper's 40 models, one fit for ImageNet accuracy below 50 % and one above (as
  ``letitwag.analysis.fits.segmented_lines``), drawn from 4 points before the lowest to 4 after
  the highest x of each group as in the paper's notebook; the slopes come out 0.60 and 1.58.
* The per-model accuracy vs log10(pretraining frequency + 1) plot with the model's long-tail slope
  (``letitwag.leaderboard.long_tail``: the analysis's per-concept regression) as its line.

Why hand-made SVG and not matplotlib: a site of 1,000 models must build in seconds, and an
inline SVG is a few kilobytes that works from ``file://``. (The analysis package's plots are
for papers; these are for the web.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from markupsafe import Markup, escape

from letitwag.leaderboard.long_tail import LongTailFit

WIDTH, HEIGHT = 520, 380
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 48
SPLIT_AT = 50.0


@dataclass
class Axis:
    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        return round(self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start), 1)


@dataclass
class Figure:
    """Everything a template needs: pixel coordinates, tick labels, point titles, lines."""

    width: int
    height: int
    x_label: str
    y_label: str
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    points: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    frame: dict = field(default_factory=dict)
    points_markup: Markup = field(default_factory=Markup)  # pre-escaped points (see FrequencyPlot)


def _frame() -> dict:
    return {"left": LEFT, "right": WIDTH - RIGHT, "top": TOP, "bottom": HEIGHT - BOTTOM}


def _least_squares(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of the ordinary least-squares line (closed form: a few array ops)."""
    dx = xs - xs.mean()
    slope = float((dx * (ys - ys.mean())).sum() / (dx * dx).sum())
    return slope, float(ys.mean() - slope * xs.mean())


def paper_fits(imagenet: Sequence[float], let_it_wag: Sequence[float]) -> list[dict]:
    """The paper's two least-squares lines (below / above 50 % ImageNet top-1), both in percent.

    The same OLS fit as ``letitwag.analysis.fits.segmented_lines`` (a test checks they agree),
    computed here with numpy because importing scipy.stats for it took a fifth of a site build.
    """
    xs, ys = np.asarray(imagenet, float), np.asarray(let_it_wag, float)
    fits = []
    for name, mask in (("below", xs < SPLIT_AT), ("above", xs > SPLIT_AT)):
        if mask.sum() < 2 or np.ptp(xs[mask]) == 0:
            continue
        slope, intercept = _least_squares(xs[mask], ys[mask])
        fits.append({"name": name, "slope": slope, "intercept": intercept,
                     "x0": float(xs[mask].min()) - 4, "x1": float(xs[mask].max()) + 4})
    return fits


def scatter_figure(points: Sequence[dict], fits: Sequence[dict]) -> Figure:
    """``points``: dicts with ``imagenet`` and ``let_it_wag`` (percent), ``name``, ``status``, ``page``."""
    x = Axis(0, 100, LEFT, WIDTH - RIGHT)
    y = Axis(0, 100, HEIGHT - BOTTOM, TOP)
    ticks = [(v, str(v)) for v in range(0, 101, 20)]
    figure = Figure(WIDTH, HEIGHT, "ImageNet top-1 (%)", "Let it Wag! top-1 (%)",
                    [(x(v), t) for v, t in ticks], [(y(v), t) for v, t in ticks], frame=_frame())
    for point in points:
        figure.points.append({"x": x(point["imagenet"]), "y": y(point["let_it_wag"]), "status": point["status"],
                              "title": f"{point['name']}: ImageNet {point['imagenet']:.1f}%, "
                                       f"Let it Wag! {point['let_it_wag']:.1f}%", "page": point["page"]})
    for fit in fits:
        y0, y1 = (fit["slope"] * v + fit["intercept"] for v in (fit["x0"], fit["x1"]))
        figure.lines.append({"x1": x(fit["x0"]), "y1": y(y0), "x2": x(fit["x1"]), "y2": y(y1), "kind": "fit",
                             "title": f"paper fit, ImageNet {'<' if fit['name'] == 'below' else '>'} 50%: "
                                      f"slope {fit['slope']:.2f}"})
    figure.lines.append({"x1": x(0), "y1": y(0), "x2": x(100), "y2": y(100), "kind": "diagonal", "title": "y = x"})
    return figure


class FrequencyPlot:
    """Every model page's accuracy (%) vs log10(frequency + 1) plot, with the model's long-tail line.

    A concept's x position depends only on the concept, so it is computed once per build; per
    model only the y positions and the line change. The x axis is the regression's own
    (log10(count + 1)), so the drawn line is the fitted one. The 290 points are emitted as one
    escaped string rather than through a template loop: rendering them cell by cell in Jinja was
    most of the build time for 1,000 pages.
    """

    def __init__(self, frequencies: dict[str, int], names: dict[str, str]) -> None:
        self.concepts = sorted(frequencies)
        self.log_x = np.log10(np.array([frequencies[c] for c in self.concepts], dtype=np.float64) + 1.0)
        high = max(1.0, float(np.ceil(self.log_x.max()))) if self.concepts else 1.0
        self.x = Axis(0, high, LEFT, WIDTH - RIGHT)
        self.y = Axis(0, 100, HEIGHT - BOTTOM, TOP)
        self.ticks = [(self.x(v), str(v)) for v in range(0, int(high) + 1)]
        # per concept, the markup before its y value, and between y value and accuracy (escaped once)
        self.heads = [f'<circle class="point concept" cx="{self.x(v)}" cy="' for v in self.log_x]
        self.middles = [f'" r="4"><title>{escape(names.get(c, c))}: ' for c in self.concepts]
        self.tails = [f"% at {frequencies[c]} documents</title></circle>" for c in self.concepts]

    def figure(self, per_class: dict[str, float], fit: LongTailFit | None) -> Figure | None:
        present = [i for i, concept in enumerate(self.concepts) if concept in per_class]
        if len(present) < 2:
            return None
        xs = self.log_x[present]
        ys = np.array([per_class[self.concepts[i]] * 100.0 for i in present])
        y_pixels = np.round(self.y.start + ys / 100.0 * (self.y.end - self.y.start), 1)
        figure = Figure(WIDTH, HEIGHT, "log10(pretraining frequency + 1)", "accuracy (%)", self.ticks,
                        [(self.y(v), str(v)) for v in range(0, 101, 20)], frame=_frame())
        figure.points_markup = Markup("".join(
            f"{self.heads[i]}{py}{self.middles[i]}{value:.1f}{self.tails[i]}"
            for i, py, value in zip(present, y_pixels.tolist(), ys.tolist())))
        if fit is not None:
            ends = [(v, fit.intercept + fit.slope * v) for v in (float(xs.min()), float(xs.max()))]
            figure.lines.append({"x1": self.x(ends[0][0]), "y1": self.y(ends[0][1]), "x2": self.x(ends[1][0]),
                                 "y2": self.y(ends[1][1]), "kind": "fit",
                                 "title": f"long-tail slope: {fit.slope:.1f} points per decade"})
        return figure
