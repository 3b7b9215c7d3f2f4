"""``build``: render a board as a static site (HTML + CSS + a little JavaScript).

Why static: it can be hosted anywhere (GitHub Pages, a Hugging Face static Space) or opened from
``file://``; nothing is fetched at view time (no CDN, data inlined). Jinja2 autoescaping is on
for every template, so a hostile model name renders as text; links are emitted only when they
are http(s). The site is assembled in a temporary folder and swapped into place, so a failed
build never leaves half a site.

Output::

    index.html        main table (sortable, filterable; each model's long-tail slope), vs-ImageNet scatter,
                      T2I tables (one per judge),
                      plumbing runs (random weights; never ranked, not in the table, scatter or fits)
    submit.html       how to submit
    models/<id>.html  one page per entry: facts, frequency plot, per-concept accuracies
    board.csv  t2i.csv  board.json   the whole board as data
    static/style.css  static/board.js
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import jinja2
from tqdm import tqdm

from letitwag import __version__
from letitwag.concept_map import class_concept_map
from letitwag.concepts import display_name
from letitwag.harness.options import DEFAULT_DATASET
from letitwag.leaderboard.aggregate import assign_ranks, attach_bin_accuracies, extreme_bins, judge_groups
from letitwag.leaderboard.board import Board, BoardConfig
from letitwag.leaderboard.entries import METRICS, T2I_CI_METRICS, T2I_METRICS, Entry, load_entries, paper_entries
from letitwag.leaderboard.concept_table import ConceptRows
from letitwag.leaderboard.figures import FrequencyPlot, paper_fits, scatter_figure
from letitwag.leaderboard.frequencies import concept_frequencies
from letitwag.leaderboard.long_tail import attach_long_tail
from letitwag.leaderboard.submission import SizeLimits

logger = logging.getLogger(__name__)

LONG_TAIL_COLUMNS = ("long_tail_slope", "long_tail_slope_ci_low", "long_tail_slope_ci_high", "long_tail_concepts")
CSV_COLUMNS = ("rank", "name", "status", "pretraining", "top1", "top1_ci_low", "top1_ci_high", "top5",
               "top5_ci_low", "top5_ci_high", "mean_per_class_recall", "mean_per_class_recall_ci_low",
               "mean_per_class_recall_ci_high", "imagenet_top1", "imagenet_source", "rarest_concepts_accuracy",
               "most_frequent_concepts_accuracy", *LONG_TAIL_COLUMNS, "includes_let_it_wag_images", "ranked",
               "plumbing", "parameters", "license", "link", "spec", "revision", "precision", "prompt_set",
               "verified_at", "page")
_SHARED_COLUMNS = ("ranked", "plumbing", "parameters", "license", "link", "spec", "revision", "precision", "prompt_set",
                   "verified_at", "page")
T2I_CSV_COLUMNS = ("rank", "judge", "name", "pretraining", *T2I_METRICS,
                   *(f"{m}_ci_{end}" for m in T2I_CI_METRICS for end in ("low", "high")),
                   "rarest_concepts_judge_accuracy", "most_frequent_concepts_judge_accuracy",
                   "includes_let_it_wag_images", *_SHARED_COLUMNS)


def safe_link(value: Any) -> str:
    """The link if it is an http(s) URL, else empty (so no ``javascript:`` ever reaches an href)."""
    text = str(value or "")
    return text if text.startswith(("https://", "http://")) else ""


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("letitwag.leaderboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["safe_link"] = safe_link
    return env


def _class_names(board: Board) -> list[str]:
    if board.config is not None:
        return list(board.config.dataset["class_names"])
    from letitwag.data import read_bundled_json

    return list(read_bundled_json("let_it_wag_classes.json"))


def _csv_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas (a cell starting with = + - @ runs in Excel)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _metric_cells(e: Entry, metrics: Sequence[str], with_ci: Sequence[str]) -> dict[str, Any]:
    row: dict[str, Any] = {metric: e.metrics.get(metric) for metric in metrics}
    for metric in with_ci:
        ci = e.ci95.get(metric)
        row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = (ci[0], ci[1]) if ci else (None, None)
    return row


def _shared_cells(e: Entry) -> dict[str, Any]:
    return {"includes_let_it_wag_images": e.includes_let_it_wag_images, "ranked": e.rank is not None,
            "plumbing": e.plumbing,
            "parameters": e.parameters, "license": e.license, "link": e.link, "spec": e.spec,
            "revision": e.revision, "precision": e.precision, "prompt_set": e.prompt_set,
            "verified_at": e.verified_at, "page": e.page}


def _long_tail_cells(e: Entry) -> dict[str, Any]:
    fit = e.long_tail
    low, high = fit.ci95 if fit is not None and fit.ci95 else (None, None)
    return dict(zip(LONG_TAIL_COLUMNS, (fit.slope if fit else None, low, high, fit.concepts if fit else None)))


def board_rows(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """The downloadable table: one flat row per entry (fractions for metrics, percent for ImageNet, accuracy
    points per decade of pretraining frequency for the long-tail slope)."""
    return [{"rank": e.rank, "name": e.name, "status": e.status, "pretraining": e.pretraining,
             **_metric_cells(e, METRICS, METRICS), "imagenet_top1": e.imagenet_top1,
             "imagenet_source": e.imagenet_source, "rarest_concepts_accuracy": e.rare_accuracy,
             "most_frequent_concepts_accuracy": e.frequent_accuracy, **_long_tail_cells(e), **_shared_cells(e)}
            for e in entries]


def t2i_rows(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """The text-to-image table: one flat row per entry, with the judge that measured it."""
    return [{"rank": e.rank, "judge": e.judge, "name": e.name, "pretraining": e.pretraining,
             **_metric_cells(e, T2I_METRICS, T2I_CI_METRICS), "rarest_concepts_judge_accuracy": e.rare_accuracy,
             "most_frequent_concepts_judge_accuracy": e.frequent_accuracy, **_shared_cells(e)}
            for e in entries]


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell("" if v is None else v) for k, v in row.items()})
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _write_downloads(out: Path, entries: Sequence[Entry], t2i_entries: Sequence[Entry], meta: dict[str, Any]) -> None:
    rows, t2i = board_rows(entries), t2i_rows(t2i_entries)
    _write_csv(out / "board.csv", CSV_COLUMNS, rows)
    _write_csv(out / "t2i.csv", T2I_CSV_COLUMNS, t2i)
    full = {"format": "letitwag.board-export/1", **meta,
            "entries": [dict(row, per_class_accuracy=e.per_class_accuracy) for row, e in zip(rows, entries)],
            "t2i_entries": [dict(row, per_class_accuracy=e.per_class_accuracy) for row, e in zip(t2i, t2i_entries)]}
    (out / "board.json").write_text(json.dumps(full, ensure_ascii=False, allow_nan=False), encoding="utf-8")


def _copy_static(out: Path) -> None:
    target = out / "static"
    target.mkdir()
    for item in resources.files("letitwag.leaderboard").joinpath("static").iterdir():
        if item.is_file() and not item.name.startswith("."):
            (target / item.name).write_bytes(item.read_bytes())


def build_site(board: Board, out: str | Path) -> Path:
    """Render ``board`` into ``out`` (replaced atomically); returns ``out``."""
    out = Path(out)
    every_entry = load_entries(board)
    class_names = _class_names(board)
    names = {c: display_name(c) for c in class_names}
    corpus, count_type = board.frequency_source
    dataset_id = board.config.dataset.get("id", DEFAULT_DATASET) if board.config else DEFAULT_DATASET
    class_map = class_concept_map(class_names, dataset_id)
    frequencies = concept_frequencies(class_names, corpus, count_type,
                                      class_map.class_concepts if class_map is not None else None)
    rarest, frequent = extreme_bins(frequencies)
    assign_ranks(every_entry)
    attach_bin_accuracies(every_entry, rarest, frequent)
    attach_long_tail(every_entry, frequencies)
    every_entry.sort(key=lambda e: (e.rank is None, e.rank or 0, e.name.casefold()))
    plumbing = [e for e in every_entry if e.plumbing]
    entries = [e for e in every_entry if e.task == "classification" and not e.plumbing]
    t2i_groups = judge_groups([e for e in every_entry if not e.plumbing])

    paper = [e for e in entries if e.status == "reported"] or paper_entries()
    fits = paper_fits([e.imagenet_top1 for e in paper], [e.metrics["top1"] * 100 for e in paper])
    points = [{"imagenet": e.imagenet_top1, "let_it_wag": e.metrics["top1"] * 100, "name": e.name,
               "status": e.status, "page": e.page}
              for e in entries if e.imagenet_top1 is not None and e.metrics.get("top1") is not None]
    config = board.config or BoardConfig(dataset={})
    built_at = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    common = {"title": config.title, "version": __version__, "built_at": built_at,
              "dataset": config.dataset or None, "frequency_corpus": f"{corpus} ({count_type})"}

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a site is meant to be served
    try:
        env = _environment()
        (staging / "models").mkdir()
        _copy_static(staging)
        index = env.get_template("index.html").render(
            root="", entries=entries, counts={"verified": sum(e.status == "verified" for e in entries),
                                              "reported": sum(e.status == "reported" for e in entries)},
            num_classes=len(class_names), covered=len(frequencies), fits=fits,
            bins={"rare": len(rarest), "rare_max": max((frequencies[c] for c in rarest), default="—"),
                  "frequent": len(frequent), "frequent_min": min((frequencies[c] for c in frequent), default="—")},
            scatter=scatter_figure(points, fits), t2i_groups=t2i_groups, plumbing=plumbing, **common)
        (staging / "index.html").write_text(index, encoding="utf-8")
        (staging / "submit.html").write_text(env.get_template("submit.html").render(
            root="", tolerance=config.tolerance, limits=config.limits or SizeLimits(),
            max_bootstrap=config.max_bootstrap_samples, **common), encoding="utf-8")
        page = env.get_template("model.html")
        rows, plot = ConceptRows(class_names, names, frequencies), FrequencyPlot(frequencies, names)
        for entry in tqdm(every_entry, desc="model pages", unit="page", disable=len(every_entry) < 200):
            html = page.render(root="../", e=entry, concept_rows=rows.render(entry.per_class_accuracy),
                               freq_figure=plot.figure(entry.per_class_accuracy, entry.long_tail), **common)
            (staging / entry.page).write_text(html, encoding="utf-8")
        t2i_entries = [e for group in t2i_groups for e in group["entries"]]
        _write_downloads(staging, [*entries, *plumbing], t2i_entries, {
            "title": config.title, "built_at": built_at,
            "dataset": {k: v for k, v in (config.dataset or {}).items() if k != "class_names"},
            "frequency_corpus": corpus, "frequency_count_type": count_type,
            "rarest_concepts": rarest, "most_frequent_concepts": frequent})
        previous = None
        if out.exists():
            previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            out.rename(previous / "site")
        staging.rename(out)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("built %s: %d entries (%d text-to-image)", out, len(every_entry), len(every_entry) - len(entries))
    return out
