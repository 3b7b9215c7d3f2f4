"""``run_analysis``: results files and/or the paper's data in, a report folder out.

The CLI (``letitwag analyze``) is a thin wrapper over this function; a notebook user can
call it directly. It reads per-concept scores, joins them with frequency tables (never
dropping a concept silently), runs both fits per model and metric, adds the paper's
corpus-level analyses when asked, draws the figures and writes the report.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from tqdm import tqdm

from letitwag import __version__
from letitwag.analysis import corpus_stats, paper as paper_data, plots
from letitwag.analysis.fits import (BIN_POSITIONS, DEFAULT_BINS, DEFAULT_BOOTSTRAP, DEFAULT_EDGE_RULE, DEFAULT_SEED,
                                    BinningOptions, EdgeRule)
from letitwag.analysis.grouping import FitResult, fit_group, group_rows
from letitwag.analysis.join import CountIndex, join_scores
from letitwag.analysis.report import (ANALYSIS_FORMAT, JOINED_COLUMNS, now_iso, write_csv, write_html, write_json)
from letitwag.analysis.results_io import ConceptScores, is_suite_folder, read_concept_scores, suite_runs
from letitwag.concepts import bundled_concepts, normalize_text
from letitwag.errors import UserInputError
from letitwag.tables import FrequencyTable, paper_table

log = logging.getLogger(__name__)

METHODS = {
    "binned (paper)": "counts of 0 set to 1; log; `bins` equally spaced edges over [min, max] of the log counts; each "
                      "concept goes to the first edge >= its log count (bin 0 = the concepts at the minimum); mean "
                      "score per bin; end bins dropped by the edge rule (LOW,HIGH fixed numbers, or sparse:K = drop "
                      "end bins with fewer than K concepts); empty bins never used; Pearson correlation of bin "
                      "position (log10) and bin mean with scipy's two-tailed p-value; binned slope = OLS of the same",
    "per-concept regression": "OLS of score on log10(count + 1) over every joined concept; slope is per decade "
                              "(tenfold) of frequency; 95% CI = 2.5/97.5 percentiles of a seeded bootstrap over "
                              "concepts; Pearson and Spearman correlations with p-values",
    "join": "per concept: explicit rename (--rename, else the class -> concept map a classification run recorded in "
            "results.json dataset.concepts), exact id, normalised id/display name (letitwag.concepts.normalize_text), "
            "bundled alias; anything else is listed under 'Concepts not joined' with its reason",
}
IMAGENET_DATASET = re.compile(r"(^|/)imagenet(-?1k)?$", re.IGNORECASE)


@dataclass
class AnalysisInputs:
    """Everything gathered before writing: fits, rows and the bookkeeping of what was left out."""

    fits: list[FitResult] = field(default_factory=list)
    unjoined: list[dict] = field(default_factory=list)
    excluded: list[dict] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    match_methods: dict[str, int] = field(default_factory=lambda: {"rename": 0, "exact": 0, "normalized": 0,
                                                                     "alias": 0})

    def add_scores(self, scores: ConceptScores) -> None:
        self.inputs.append(scores.describe())
        by_reason: dict[str, list[str]] = {}
        for item in scores.excluded:
            by_reason.setdefault(item["reason"], []).append(item["concept"])
        for reason, concepts in by_reason.items():
            self.excluded.append({"source": scores.source, "model": scores.model, "dataset": scores.dataset,
                                  "metric": scores.metric, "reason": reason, "concepts": concepts})

    def join(self, scores: ConceptScores, index: CountIndex, renames: Mapping[str, str]) -> list[dict]:
        self.add_scores(scores)
        result = join_scores(scores, index, {**scores.renames, **renames})
        self.unjoined.extend(result.unjoined)
        for method, number in result.methods.items():
            self.match_methods[method] += number
        return result.rows


# --- user results ----------------------------------------------------------------------------

def _resolve_corpus(table: FrequencyTable, scores: ConceptScores, corpus: str | None, table_spec: str) -> str:
    corpora = sorted({c for c, _ in table.pairs()})
    if corpus is not None:
        if corpus not in corpora:
            raise UserInputError(f"{table_spec}: no corpus {corpus!r} in the table (has: {', '.join(corpora)})")
        return corpus
    if len(corpora) == 1:
        return corpora[0]
    hay = f"{scores.model} {scores.pretrained}".lower()
    found = sorted((c for c in corpora if c.lower() in hay), key=len, reverse=True)
    if found and (len(found) == 1 or len(found[0]) > len(found[1])):
        return found[0]
    raise UserInputError(f"{scores.source}: cannot tell which corpus of {table_spec} model {scores.model!r} was "
                         f"pretrained on (table has: {', '.join(corpora)}); pass --corpus")


def _index_for(table: FrequencyTable, corpus: str, count_type: str | None, cache: dict) -> CountIndex:
    key = (corpus, count_type)
    if key not in cache:
        selected = table.select(corpus=corpus)
        types = sorted({t for _, t in selected.pairs()})
        wanted = count_type or (types[0] if len(types) == 1 else "matched")
        cache[key] = CountIndex.from_table(selected.select(count_type=wanted))
    return cache[key]


def _groups(rows: list[dict], per_dataset: bool, suite: bool) -> dict[tuple, list[dict]]:
    """Fit groups: pooled over datasets (the paper's way) or one per dataset; for a suite folder both, and
    the pooled fits over the datasets the paper pooled (its 18 classification sets, COCO + Flickr)."""
    if not suite:
        return group_rows(rows, per_dataset)
    pooled = {*paper_data.CLASSIFICATION_DATASETS, *paper_data.RETRIEVAL_DATASETS}
    groups = group_rows(rows, per_dataset=True)
    if not per_dataset:
        groups.update(group_rows([row for row in rows if row["dataset"] in pooled], per_dataset=False))
    return groups


def _user_fits(state: AnalysisInputs, all_scores: list[ConceptScores], table_spec: str, *, count_type, corpus,
               bins, edge_rule: EdgeRule, position, bootstrap, seed, renames, per_dataset, suite) -> None:
    table = FrequencyTable.read(table_spec)
    cache: dict = {}
    rows: list[dict] = []
    units: dict[tuple, str] = {}
    for scores in all_scores:
        index = _index_for(table, _resolve_corpus(table, scores, corpus, table_spec), count_type, cache)
        joined = state.join(scores, index, renames)
        rows.extend(joined)
        for row in joined:
            units[(row["model"], row["metric"])] = scores.unit
    for key, group in _groups(rows, per_dataset, suite).items():
        task = key[3]
        binning = BinningOptions(bins=bins or DEFAULT_BINS.get(task, 12), edges=edge_rule, position=position)
        state.fits.append(fit_group(key, group, binning, bootstrap, seed, unit=units[(key[0], key[4])],
                                    role="results"))


# --- the paper's data ------------------------------------------------------------------------

def _paper_fits(state: AnalysisInputs, position: str, bootstrap: int, seed: int) -> None:
    indices: dict[tuple[str, str], CountIndex] = {}
    for run in tqdm(paper_data.paper_runs(position), desc="paper fits", unit="fit", leave=False):
        key = (run.corpus, run.count_type)
        if key not in indices:
            indices[key] = CountIndex.from_table(paper_table(run.corpus, run.count_type))
        index = indices[key]
        rows: list[dict] = []
        for scores in run.scores:
            rows.extend(state.join(scores, index, run.renames.get(scores.dataset, {})))
        if not run.scores:
            continue
        first = run.scores[0]
        group_key = (first.model, index.corpus, index.count_type, run.task, first.metric, "pooled")
        state.fits.append(fit_group(group_key, rows, run.binning, bootstrap, seed, unit=first.unit,
                                    label=run.label, role=run.role))


def _paper_extras() -> dict:
    return {
        "methods": paper_data.method_notes(),
        "zipf": corpus_stats.zipf_by_corpus(),
        "correlations": {"paper_notebook": corpus_stats.notebook_correlations(),
                         "concept_aligned": corpus_stats.aligned_correlations("matched")
                         + corpus_stats.aligned_correlations("image")},
        "correlation_note": "The paper's text quotes 0.96 and 0.63. Its notebook printed 0.9638 for YFCC-15M vs "
                            "CC-12M and 0.6282 for LAION-400M vs CC-3M, correlating count lists position by "
                            "position (CC-3M: matched counts, others: RAM++ image counts). Rerun on the bundled "
                            "files the same procedure gives the numbers in the first rows; rows 'aligned by "
                            "concept' pair each concept with itself and use one count type.",
        "misalignment": corpus_stats.misalignment(),
        "not_analysed": paper_data.not_analysed_models(),
    }


def _controls(fits: list[FitResult]) -> list[dict]:
    return [{"id": f.fit_id, "model": f.key["model"], "corpus": f.key["corpus"], "task": f.key["task"],
             "metric": f.key["metric"], "binned_pearson_r": f.binned.pearson_r, "binned_p": f.binned.p_value,
             "slope_per_decade": f.regression.slope_per_decade, "slope_ci95": f.regression.slope_ci95}
            for f in fits if f.role == "control"]


# --- Let it Wag! vs ImageNet -----------------------------------------------------------------

def _is_let_it_wag(scores: ConceptScores, wag_forms: set[str]) -> bool:
    if re.search(r"let[-_ ]?it[-_ ]?wag", scores.dataset, re.IGNORECASE):
        return True
    forms = {normalize_text(c) for c in scores.scores}
    return len(forms & wag_forms) >= 0.9 * len(wag_forms)


def _overlay(all_scores: list[ConceptScores], imagenet_top1: Mapping[str, float]) -> tuple[list[dict], list[dict]]:
    wag_forms = {normalize_text(c.id) for c in bundled_concepts("let-it-wag")}
    imagenet = dict(imagenet_top1)
    for scores in all_scores:
        if IMAGENET_DATASET.search(scores.dataset) and scores.model not in imagenet:
            imagenet[scores.model] = scores.top1 if scores.top1 is not None else _mean_percent(scores)
    overlay, missing = [], []
    for scores in all_scores:
        if scores.task != "classification" or not _is_let_it_wag(scores, wag_forms):
            continue
        wag = scores.top1 if scores.top1 is not None else _mean_percent(scores)
        if scores.model in imagenet:
            overlay.append({"model": scores.model, "imagenet_top1": float(imagenet[scores.model]),
                            "let_it_wag_top1": wag, "source": scores.source})
        else:
            missing.append({"model": scores.model, "reason": "no ImageNet accuracy: pass --imagenet-top1 MODEL=PCT "
                                                             "or an ImageNet results file"})
    return overlay, missing


def _mean_percent(scores: ConceptScores) -> float:
    values = list(scores.scores.values())
    mean = sum(values) / len(values) if values else float("nan")
    return 100.0 * mean if scores.unit == "fraction" else mean


# --- figures ---------------------------------------------------------------------------------

def _figure(figures: list[dict], out_dir: Path, paths: list[Path], title: str) -> None:
    figures.append({"png": paths[0].relative_to(out_dir).as_posix(), "svg": paths[1].relative_to(out_dir).as_posix(),
                    "title": title})


def _paper_figures(fits: list[FitResult], out_dir: Path, figures: list[dict]) -> None:
    fig_dir = out_dir / "figures"
    order = list(paper_data.CORPUS_NAMES)

    def panels(selected: list[FitResult]) -> list:
        by_corpus: dict[str, list] = {}
        for fit in selected:
            by_corpus.setdefault(fit.key["corpus"], []).append((fit.label, fit))
        return [(paper_data.CORPUS_NAMES.get(c, c), by_corpus[c]) for c in order if c in by_corpus]

    for prompt in paper_data.PROMPT_SETS:
        metric = f"top1 ({prompt} prompts)"
        chosen = [f for f in fits if f.key["task"] == "classification" and f.key["metric"] == metric]
        title = f"Zero-shot classification ({prompt} prompts) vs pretraining frequency"
        _figure(figures, out_dir, plots.plot_panels(panels(chosen), fig_dir / f"paper_classification_{prompt}", title,
                                                    "Avg. zero-shot accuracy (%)"), title)
    for direction in ("i2t", "t2i"):  # recall@10 drawn; @1 and @5 are in the table (figures cost most time)
        metric = f"{direction} recall@10"
        chosen = [f for f in fits if f.key["task"] == "retrieval" and f.key["metric"] == metric]
        title = f"Retrieval {metric} (COCO + Flickr) vs pretraining frequency"
        _figure(figures, out_dir, plots.plot_panels(panels(chosen), fig_dir / f"paper_retrieval_{direction}_k10",
                                                    title, f"Avg. {metric}"), title)
    for metric in paper_data.T2I_METRICS:
        chosen = [f for f in fits if f.key["task"] == "t2i" and f.key["metric"] == metric]
        groups = [(f"models {i + 1}-{min(i + 3, len(chosen))}", [(f.label, f) for f in chosen[i:i + 3]])
                  for i in range(0, len(chosen), 3)]
        title = f"T2I {metric.replace('_', ' ')} vs LAION-Aesthetics frequency"
        _figure(figures, out_dir, plots.plot_panels(groups, fig_dir / f"paper_t2i_{metric}", title,
                                                    metric.replace("_", " ") + " (1-5)", columns=4), title)


def _zipf_figure(zipf: list[dict], out_dir: Path, figures: list[dict]) -> None:
    curves = []
    for corpus in corpus_stats.ZIPF_CORPORA:
        fit = next((z for z in zipf if z["corpus"] == corpus and z["count_type"] == "matched"), None) or next(
            (z for z in zipf if z["corpus"] == corpus), None)
        if fit is None:
            continue
        counts = corpus_stats.corpus_counts(corpus, fit["count_type"])
        curves.append((f"{paper_data.CORPUS_NAMES.get(corpus, corpus)} [{fit['count_type']}]", list(counts.values()), fit))
    title = "Long-tailed concept frequencies per pretraining set, with fitted power laws"
    _figure(figures, out_dir, plots.plot_zipf(curves, out_dir / "figures" / "zipf"), title)


def _results_figures(fits: list[FitResult], out_dir: Path, figures: list[dict]) -> None:
    from letitwag.harness.retrieval_metrics import metric_names

    undrawn = {name for name in metric_names() if not name.endswith("@10")}  # as the paper: recall@10 drawn
    panels: dict[tuple, list] = {}
    for fit in fits:
        if fit.key["metric"] in undrawn:
            continue
        key = (fit.key["corpus"], fit.key["count_type"], fit.key["task"], fit.key["metric"], fit.key["dataset_scope"])
        panels.setdefault(key, []).append((fit.key["model"][:40], fit))
    for number, (key, members) in enumerate(panels.items()):
        corpus, count_type, task, metric, scope = key
        title = f"{metric} vs {corpus} frequency ({count_type}; {scope})"
        unit = members[0][1].key.get("unit", "")
        paths = plots.plot_panels([(f"{corpus} / {task}", members)], out_dir / "figures" / f"results_{number:02d}",
                                  title, f"{metric} ({unit})", columns=1)
        _figure(figures, out_dir, paths, title)


# --- entry point -----------------------------------------------------------------------------

def run_analysis(
    out_dir: str | Path,
    *,
    results: Sequence[str | Path] = (),
    table: str | None = None,
    paper: bool = False,
    count_type: str | None = None,
    corpus: str | None = None,
    metric: str | None = None,
    task: str | None = None,
    bins: int | None = None,
    edge_rule: str = DEFAULT_EDGE_RULE,
    position: str = "upper",
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    renames: Mapping[str, str] | None = None,
    per_dataset: bool = False,
    imagenet_top1: Mapping[str, float] | None = None,
    figures: bool = True,
) -> dict:
    """Analyse ``results`` against ``table`` and/or the paper's bundled data; write ``out_dir``.

    Returns the dict written to ``analysis.json``. ``bins=None`` means 12 for classification
    and 7 for retrieval/T2I; ``edge_rule`` is ``LOW,HIGH``, ``sparse:K`` or ``none``;
    ``position`` is where a bin sits on the x axis for the correlation (``upper`` edge as in
    the paper, ``centre`` or ``left``). The paper's own fits always use the paper's bins and
    edge rules; ``position`` applies to them too.
    """
    if not results and not paper:
        raise UserInputError("nothing to analyse: give --results FILE... with --table, or --paper")
    if results and table is None:
        raise UserInputError("--results needs --table (a frequency table file or paper:<corpus>[:<count type>])")
    if position not in BIN_POSITIONS:
        raise UserInputError(f"--bin-position {position}: use one of {', '.join(BIN_POSITIONS)}")
    if bootstrap < 0:
        raise UserInputError(f"--bootstrap {bootstrap}: must be 0 (off) or more")
    rule = EdgeRule.parse(edge_rule)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = AnalysisInputs()
    all_scores = [s for path in results for s in read_concept_scores(path, metric=metric, task=task)]
    suites = [Path(path) for path in results if is_suite_folder(path)]
    for scores in all_scores:
        if not scores.scores:
            raise UserInputError(f"{scores.source}: model {scores.model} on {scores.dataset} has no usable score "
                                 f"({len(scores.excluded)} excluded); nothing to analyse")
    analysis: dict = {
        "format": ANALYSIS_FORMAT,
        "title": "Pretraining frequency vs performance" + (" — paper reproduction" if paper else ""),
        "generated_at": now_iso(),
        "letitwag_version": __version__,
        "methods": METHODS,
        "parameters": {"results": [str(p) for p in results], "table": table, "paper": paper,
                       "count_type": count_type, "corpus": corpus, "metric": metric, "task": task,
                       "bins": bins or {k: v for k, v in DEFAULT_BINS.items()}, "edge_rule": rule.describe(),
                       "bin_position": position, "bootstrap": bootstrap, "seed": seed,
                       "renames": dict(renames or {}), "per_dataset": per_dataset},
    }
    if suites:
        analysis["suites"] = [{"folder": str(folder), "not_evaluated": suite_runs(folder)[1]} for folder in suites]
    if paper:
        log.info("fitting the paper's bundled results")
        _paper_fits(state, position, bootstrap, seed)
        analysis["paper"] = _paper_extras()
        analysis["paper"]["controls"] = _controls(state.fits)
    if all_scores:
        _user_fits(state, all_scores, table, count_type=count_type, corpus=corpus, bins=bins, edge_rule=rule,
                   position=position, bootstrap=bootstrap, seed=seed, renames=renames or {}, per_dataset=per_dataset,
                   suite=bool(suites))
    overlay, not_overlaid = _overlay(all_scores, imagenet_top1 or {})
    if paper or overlay or not_overlaid:
        wag = corpus_stats.let_it_wag_vs_imagenet()
        wag.update(overlay=overlay, not_overlaid=not_overlaid)
        analysis["let_it_wag_vs_imagenet"] = wag
    analysis["fits"] = [fit.record() for fit in state.fits]
    fit_rows = [fit.summary_row() for fit in state.fits]
    analysis["summary_table"] = fit_rows  # the same rows as fits.csv
    analysis["inputs"] = state.inputs
    analysis["join"] = {"methods": state.match_methods, "unjoined": state.unjoined, "excluded": state.excluded,
                        "n_joined": sum(len(f.rows) for f in state.fits)}
    figure_list: list[dict] = []
    if figures:
        log.info("drawing figures")
        if paper:
            _paper_figures([f for f in state.fits if f.role != "results"], out, figure_list)
            _zipf_figure(analysis["paper"]["zipf"], out, figure_list)
        _results_figures([f for f in state.fits if f.role == "results"], out, figure_list)
        if "let_it_wag_vs_imagenet" in analysis:
            wag = analysis["let_it_wag_vs_imagenet"]
            title = "Let it Wag! vs ImageNet accuracy (40 released models" + (" + new results)" if overlay else ")")
            paths = plots.plot_let_it_wag_vs_imagenet(wag["points"], wag["lines"], overlay,
                                                      out / "figures" / "let_it_wag_vs_imagenet")
            _figure(figure_list, out, paths, title)
    analysis["figures"] = figure_list
    analysis["files"] = {"joined_csv": "joined.csv", "fits_csv": "fits.csv", "html": "index.html"}
    write_csv(out / "fits.csv", fit_rows, list(fit_rows[0]) if fit_rows else ["id"])
    write_csv(out / "joined.csv", [row for fit in state.fits for row in fit.rows], JOINED_COLUMNS)
    write_json(out, analysis)
    write_html(out, analysis, fit_rows)
    log.info("wrote %s (%d fits, %d unjoined concepts)", out, len(state.fits), len(state.unjoined))
    return analysis
