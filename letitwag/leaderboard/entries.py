"""Board entries as the site shows them: verified submissions and the paper's reported models.

Two kinds of provenance, kept visibly apart:

* ``verified``: a submission whose every metric the board recomputed from per-sample predictions;
* ``reported``: one of the 40 models of the paper (Tab. 9), from the bundled data. Their
  per-class accuracies exist, their per-sample predictions do not, so top-5 and confidence
  intervals are unknown and shown as such; mean per-class recall is derived from the reported
  per-class accuracies.
* ``plumbing``: a verified random-weights run added with ``--plumbing`` (the demo's). It passed
  every check, but its numbers are meaningless, so it is never ranked and the site lists it
  apart from the ranked table and the scatter.

Metric values are fractions in [0, 1] here (percent only at display time); ImageNet top-1 is
a percentage as the paper and submitters state it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from letitwag.leaderboard.board import Board, BoardError, read_entry
from letitwag.leaderboard.long_tail import LongTailFit
from letitwag.leaderboard.submission import slug

PAPER_LINK = "https://arxiv.org/abs/2404.04125"
METRICS = ("top1", "top5", "mean_per_class_recall")
# Text-to-image entries: judge accuracy (with CIs), HEIM CLIPScores, retrieval CMC (when measured).
T2I_METRICS = ("judge_top1", "judge_top5", "judge_mean_per_class_recall", "expected_clip_score", "max_clip_score",
               "retrieval_cmc@1", "retrieval_cmc@5")
T2I_CI_METRICS = ("judge_top1", "judge_top5", "judge_mean_per_class_recall")


@dataclass
class Entry:
    """One row of the leaderboard (and one model page)."""

    id: str
    name: str
    status: str  # "verified" or "reported"
    pretraining: str
    task: str = "classification"  # or "t2i"
    judge: str | None = None  # t2i: the judge measuring the metrics; entries compare only under one judge
    link: str | None = None
    parameters: int | None = None
    includes_let_it_wag_images: bool | None = None
    license: str | None = None
    spec: str | None = None
    revision: str | None = None
    precision: str | None = None
    prompt_set: str | None = None
    verified_at: str | None = None
    has_predictions: bool = False
    ranked: bool = True
    not_ranked_reason: str | None = None
    plumbing: bool = False  # a random-weights run added with --plumbing: shown apart, never ranked
    metrics: dict[str, float | None] = field(default_factory=dict)
    ci95: dict[str, list[float] | None] = field(default_factory=dict)
    imagenet_top1: float | None = None
    imagenet_source: str | None = None
    per_class_accuracy: dict[str, float] = field(default_factory=dict)
    rank: int | None = None
    rare_accuracy: float | None = None
    frequent_accuracy: float | None = None
    long_tail: LongTailFit | None = None  # accuracy points per decade of pretraining frequency (long_tail.py)

    @property
    def page(self) -> str:
        return f"models/{self.id}.html"


def paper_entries() -> list[Entry]:
    """The paper's 40 models, marked reported, from the bundled tables."""
    from letitwag.data import read_bundled_table

    models = read_bundled_table("let_it_wag_40_models.parquet").to_pylist()
    classwise: dict[str, dict[str, float]] = {}
    for row in read_bundled_table("let_it_wag_40_models_classwise.parquet").to_pylist():
        classwise.setdefault(row["model_key"], {})[row["concept"]] = row["accuracy"] / 100.0
    entries = []
    for row in models:
        per_class = classwise.get(row["model_key"], {})
        mean_recall = sum(per_class.values()) / len(per_class) if per_class else None
        entries.append(Entry(
            id=f"paper-{slug(row['model_key'])}",
            name=f"{row['backbone']} ({row['pretraining']})",
            status="reported",
            pretraining=row["pretraining"],
            link=PAPER_LINK,
            metrics={"top1": row["let_it_wag_top1"] / 100.0, "top5": None, "mean_per_class_recall": mean_recall},
            ci95={name: None for name in METRICS},
            imagenet_top1=row["imagenet_top1"],
            imagenet_source="paper",
            per_class_accuracy=per_class,
            prompt_set="ensemble",
        ))
    return entries


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _interval(value: Any) -> list[float] | None:
    if isinstance(value, list) and len(value) == 2 and all(_number_or_none(v) is not None for v in value):
        return [float(v) for v in value]
    return None


def stored_entry(folder: Path, root: Path) -> Entry:
    """A verified entry from its board folder (files as ``add`` stored them)."""
    try:
        stored = read_entry(folder)
        results, metadata, record = stored["results"], stored["metadata"], stored["verification"]
        metrics = results["metrics"]
        ci = metrics.get("ci95", {})
        imagenet = _number_or_none(metadata.get("imagenet_top1"))
        relative = "/".join(folder.relative_to(root).parts[1:])
        parameters = metadata.get("parameters")
        task = str(results.get("task", "classification"))
        names, ci_names = (T2I_METRICS, T2I_CI_METRICS) if task == "t2i" else (METRICS, METRICS)
        return Entry(
            id=f"sub-{slug(relative.replace('/', '-'))}-{hashlib.sha256(relative.encode()).hexdigest()[:8]}",
            name=str(metadata["model_name"]),
            status="verified",
            pretraining=str(metadata["pretraining_data"]),
            task=task,
            judge=record["key"].get("judge"),
            link=str(metadata["link"]),
            parameters=parameters if isinstance(parameters, int) and not isinstance(parameters, bool) else None,
            includes_let_it_wag_images=_flag(metadata.get("includes_let_it_wag_images")),
            license=str(metadata.get("license")),
            spec=str(results["model"].get("spec")),
            revision=record["key"]["revision"],
            precision=record["key"]["precision"],
            prompt_set=record["key"]["prompt_set"],
            verified_at=record.get("verified_at"),
            has_predictions=stored["has_predictions"],
            ranked=bool(record.get("ranked", True)) and record.get("plumbing") is not True,
            not_ranked_reason=record.get("not_ranked_reason"),
            plumbing=record.get("plumbing") is True,
            metrics={name: _number_or_none(metrics.get(name)) for name in names},
            ci95={name: _interval(ci.get(name)) for name in ci_names},
            imagenet_top1=imagenet,
            imagenet_source="stated by submitter" if imagenet is not None else None,
            per_class_accuracy={str(k): float(v) for k, v in metrics.get("per_class_accuracy", {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as error:  # ValueError: bad JSON too
        raise BoardError(f"{folder}: stored entry is unreadable ({type(error).__name__}: {error}); "
                         "remove it or add it again") from None


def load_entries(board: Board) -> list[Entry]:
    """Every entry of the board: stored submissions, then (unless disabled) the paper's models."""
    entries = [stored_entry(folder, board.root) for folder in board.entry_folders()]
    if board.include_paper_models:
        entries.extend(paper_entries())
    return entries
