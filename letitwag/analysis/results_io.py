"""Read per-concept performance from any results file into one shape.

The analysis must work on the harness's ``results.json`` (``letitwag.results/1``: classification
``per_class_accuracy``, retrieval ``per_concept`` recall), on a suite folder of them
(``evaluate --suite``: ``suite.json``) and on a plain table a user wrote by hand, so everything
becomes a ``ConceptScores``: who (model), on what (dataset, task), which number (metric, unit)
and one score per concept. A concept whose score is missing or NaN is not silently dropped: it
goes to ``excluded`` with its reason, and the report lists it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from letitwag.errors import UserInputError

TASKS = ("classification", "retrieval", "t2i")
CONCEPT_COLUMNS = ("concept_id", "concept", "id", "class", "class_name")
SCORE_COLUMNS = ("score", "accuracy", "recall", "value")
DEFAULT_METRIC = "per_class_accuracy"


@dataclass
class ConceptScores:
    """One model's per-concept scores on one dataset for one metric."""

    source: str
    model: str
    dataset: str
    task: str
    metric: str
    unit: str
    scores: dict[str, float]
    excluded: list[dict] = field(default_factory=list)
    pretrained: str = ""
    top1: float | None = None  # overall accuracy in percent, when the file has one
    renames: dict[str, str] = field(default_factory=dict)  # class name -> the paper's concept id (results.json)
    concept_list: str | None = None  # the bundled concept list the classes or captions were matched with

    def describe(self) -> dict:
        return {"source": self.source, "model": self.model, "dataset": self.dataset, "task": self.task,
                "metric": self.metric, "unit": self.unit, "n_scores": len(self.scores),
                "n_excluded": len(self.excluded)}


def _score_value(raw, where: str, concept: str, excluded: list[dict]) -> float | None:
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        excluded.append({"concept": concept, "reason": "score is missing or NaN"})
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise UserInputError(f"{where}: concept {concept!r} has a non-numeric score {raw!r}; give numbers")
    if math.isinf(raw):
        excluded.append({"concept": concept, "reason": "score is infinite"})
        return None
    return float(raw)


def _scores(values: dict, path: Path, excluded: list[dict]) -> dict[str, float]:
    scores = {}
    for concept, raw in values.items():
        value = _score_value(raw, str(path), concept, excluded)
        if value is not None:
            scores[concept] = value
    return scores


def _retrieval_scores(path: Path, data: dict, metric: str | None, base: dict) -> list[ConceptScores]:
    """One ``ConceptScores`` per recall metric of ``metrics.per_concept`` (or only ``metric``)."""
    from letitwag.harness.retrieval_metrics import metric_names

    metrics = data.get("metrics") or {}
    per_concept = metrics.get("per_concept")
    if not isinstance(per_concept, dict) or not per_concept:
        raise UserInputError(f"{path}: no per-concept recall (metrics.per_concept); evaluate with a concept list "
                             "(--concepts) so captions are tagged")
    names = metric_names()
    if metric is not None and metric not in names:
        raise UserInputError(f"{path}: --metric {metric} is not a retrieval metric; use one of {', '.join(names)}")
    below = [{"concept": concept, "reason": f"carried by fewer than {metrics.get('min_concept_images')} images"}
             for concept in metrics.get("concepts_below_min_images") or []]
    out = []
    for name in [metric] if metric else names:
        excluded = list(below)
        values = {concept: recalls.get(name) if isinstance(recalls, dict) else None
                  for concept, recalls in per_concept.items()}
        out.append(ConceptScores(metric=name, scores=_scores(values, path, excluded), excluded=excluded, **base))
    return out


def _from_results_json(path: Path, data: dict, metric: str | None, task: str | None) -> list[ConceptScores]:
    fmt = str(data.get("format", ""))
    if not fmt.startswith("letitwag.results/"):
        raise UserInputError(f"{path}: not a letitwag results file (format {fmt or 'missing'}); "
                             "give results.json from the harness or a CSV/parquet of (concept, score)")
    if fmt.split("/")[1].split(".")[0] != "1":
        raise UserInputError(f"{path}: results format {fmt} is newer than this tool reads (letitwag.results/1)")
    metrics = data.get("metrics") or {}
    model = data.get("model") or {}
    dataset = data.get("dataset") or {}
    mapped = dataset.get("concepts") if isinstance(dataset.get("concepts"), dict) else {}
    tagged = data.get("concepts") if isinstance(data.get("concepts"), dict) else {}
    top1 = metrics.get("top1")
    base = {"source": str(path), "model": str(model.get("spec") or model.get("name") or path.parent.name),
            "dataset": str(dataset.get("id") or "unknown"), "task": task or str(data.get("task") or "classification"),
            "unit": "fraction", "pretrained": str(model.get("pretrained") or ""),
            "top1": 100.0 * top1 if isinstance(top1, (int, float)) else None,
            "renames": dict(mapped.get("class_concepts") or {}),
            "concept_list": mapped.get("list") or tagged.get("list")}
    if data.get("task") == "retrieval" and (metric is None or not metric.startswith("per_class")):
        return _retrieval_scores(path, data, metric, base)
    wanted = metric or DEFAULT_METRIC
    per_concept = metrics.get(wanted)
    if not isinstance(per_concept, dict) or not per_concept:
        have = sorted(k for k, v in metrics.items() if isinstance(v, dict) and k.startswith("per_class"))
        raise UserInputError(f"{path}: no per-concept field metrics.{wanted} "
                             f"(per-concept fields present: {', '.join(have) or 'none'}); "
                             "pass --metric with one of them or evaluate with per-class metrics")
    excluded: list[dict] = []
    scores = _scores(per_concept, path, excluded)
    for name in dataset.get("class_names") or []:
        if name not in per_concept:
            excluded.append({"concept": name, "reason": f"class in dataset.class_names but not in metrics.{wanted}"})
    return [ConceptScores(metric=wanted, scores=scores, excluded=excluded, **base)]


def _pick(columns: list[str], candidates: tuple[str, ...], preferred: str | None) -> str | None:
    if preferred and preferred in columns:
        return preferred
    lowered = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    return None


def _from_table(path: Path, table: pa.Table, metric: str | None, task: str | None) -> list[ConceptScores]:
    columns = table.column_names
    concept_col = _pick(columns, CONCEPT_COLUMNS, None)
    score_col = _pick(columns, SCORE_COLUMNS, metric)
    if concept_col is None or score_col is None:
        raise UserInputError(f"{path}: a per-concept table needs a concept column ({'/'.join(CONCEPT_COLUMNS)}) "
                             f"and a score column ({'/'.join(SCORE_COLUMNS)} or --metric NAME); has: {', '.join(columns)}")
    rows = table.to_pylist()
    groups: dict[tuple[str, str, str], ConceptScores] = {}
    for line, row in enumerate(rows, start=2):
        model = str(row.get("model") or path.stem)
        dataset = str(row.get("dataset") or "unknown")
        row_task = task or str(row.get("task") or "classification")
        if row_task not in TASKS:
            raise UserInputError(f"{path}: row {line} has task {row_task!r}; use one of {', '.join(TASKS)}")
        key = (model, dataset, row_task)
        group = groups.get(key)
        if group is None:
            group = groups[key] = ConceptScores(str(path), model, dataset, row_task, score_col, "as given", {},
                                                pretrained=str(row.get("pretrained") or ""))
        concept = row.get(concept_col)
        if concept is None or not str(concept).strip():
            group.excluded.append({"concept": "", "reason": f"row {line}: empty concept"})
            continue
        concept = str(concept)
        value = _score_value(row.get(score_col), f"{path} row {line}", concept, group.excluded)
        if value is None:
            continue
        if concept in group.scores:
            raise UserInputError(f"{path}: row {line} repeats concept {concept!r} for model {model}, dataset {dataset}")
        group.scores[concept] = value
    if not groups:
        raise UserInputError(f"{path}: the table has no rows")
    return list(groups.values())


def suite_runs(folder: Path) -> tuple[list[tuple[str, Path]], list[dict]]:
    """A suite folder's (dataset name, results.json) of every evaluated dataset, and the datasets it lacks."""
    from letitwag.harness.suite import SUITE_FILE, SUITE_FORMAT

    path = folder / SUITE_FILE
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserInputError(f"{path}: cannot read the suite summary ({error}); rerun letitwag evaluate --suite") from None
    if not isinstance(suite, dict) or suite.get("format") != SUITE_FORMAT:
        raise UserInputError(f"{path}: not a {SUITE_FORMAT} file; rerun letitwag evaluate --suite")
    runs, lacking = [], []
    for entry in suite.get("datasets") or []:
        if entry.get("status") in ("evaluated", "reused") and entry.get("results"):
            runs.append((str(entry["name"]), folder / entry["results"]))
        else:
            lacking.append({"dataset": entry.get("name"), "status": entry.get("status"),
                            "reason": entry.get("error") or entry.get("how_to_get")})
    if not runs:
        raise UserInputError(f"{path}: no dataset of the suite was evaluated; nothing to analyse")
    return runs, lacking


def is_suite_folder(path: str | Path) -> bool:
    from letitwag.harness.suite import SUITE_FILE

    return Path(path).is_dir() and (Path(path) / SUITE_FILE).is_file()


def read_concept_scores(path: str | Path, metric: str | None = None, task: str | None = None) -> list[ConceptScores]:
    """Read ``results.json`` (or a run directory holding one), a suite folder, or a CSV/TSV/parquet table.

    A table has a concept column and a score column, and optionally ``model``, ``dataset``,
    ``task`` and ``pretrained`` columns (one ``ConceptScores`` per model/dataset/task). A suite
    folder gives every evaluated dataset's scores, named by the suite's dataset names.
    """
    path = Path(path)
    if is_suite_folder(path):
        scores = []
        for name, results in suite_runs(path)[0]:
            for item in read_concept_scores(results, metric=metric, task=task):
                item.dataset = name
                scores.append(item)
        return scores
    if path.is_dir():
        path = path / "results.json"
    if task is not None and task not in TASKS:
        raise UserInputError(f"--task {task}: use one of {', '.join(TASKS)}")
    if not path.exists():
        raise UserInputError(f"{path}: no such results file; give results.json, a run directory or a CSV/parquet")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                raise UserInputError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
            if not isinstance(data, dict):
                raise UserInputError(f"{path}: expected a JSON object (letitwag.results/1)")
            return _from_results_json(path, data, metric, task)
        if suffix == ".parquet":
            return _from_table(path, pq.read_table(path), metric, task)
        if suffix in (".csv", ".tsv"):
            options = pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
            return _from_table(path, pacsv.read_csv(path, parse_options=options), metric, task)
    except (OSError, pa.ArrowInvalid) as error:
        raise UserInputError(f"{path}: cannot read it ({str(error).splitlines()[0]})") from None
    raise UserInputError(f"{path}: unknown results file type {suffix or '(none)'}; use .json, .csv, .tsv or .parquet")
