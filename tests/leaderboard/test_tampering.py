"""The tampering suite: malformed or tampered submissions, each rejected with the right one-line message."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from board_helpers import (LABELS, edit_results, metadata_document, metrics_for, predict, results_document,
                           set_field, write_predictions)
from letitwag.cli import main
from letitwag.leaderboard.board import Board
from letitwag.leaderboard.submission import SubmissionRejected
from letitwag.leaderboard.validate import validate_submission


def edit_metadata(**changes) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        (folder / "submission.json").write_text(json.dumps(metadata_document(**changes)))
    return apply


def edit_predictions(edit: Callable[[dict], dict]) -> Callable[[Path], None]:
    """Rewrite predictions.parquet from edited numpy columns (index, labels, topk, scores)."""
    def apply(folder: Path) -> None:
        table = pq.read_table(folder / "predictions.parquet")
        columns = {"index": table["sample_index"].to_numpy(), "labels": table["label"].to_numpy(),
                   "topk": np.array(table["topk_ids"].to_pylist()),
                   "scores": np.array(table["topk_scores"].to_pylist())}
        columns = edit(columns)
        write_predictions(folder / "predictions.parquet", columns["labels"], columns["topk"], columns["scores"],
                          columns["index"])
    return apply


def _bump(path: str, delta: float) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        *parents, last = path.split(".")
        for part in parents:
            data = data[part]
        data[last] = data[last] + delta
    return edit


def _drop_rows(c):
    keep = np.arange(len(c["index"])) % 7 != 3
    return {k: v[keep] for k, v in c.items()}


def _duplicate_row(c):
    return {k: np.concatenate([v, v[:1]]) for k, v in c.items()}


def _label_leak(folder: Path) -> None:
    """Labels rewritten to the predictions, claims recomputed to match them: internally consistent, still a lie."""
    topk, scores = predict(LABELS, 1)
    leaked = topk[:, 0].astype(np.int64)
    write_predictions(folder / "predictions.parquet", leaked, topk, scores)
    (folder / "results.json").write_text(json.dumps(results_document(metrics_for(leaked, topk))))


def _nan_in_results(folder: Path) -> None:
    text = (folder / "results.json").read_text()
    data = json.loads(text)
    value = json.dumps(data["metrics"]["top1"])
    (folder / "results.json").write_text(text.replace(f'"top1": {value}', '"top1": NaN', 1))


def _overflow_number(folder: Path) -> None:
    text = (folder / "results.json").read_text()
    (folder / "results.json").write_text(text.replace('"wall_seconds": 60.0', '"wall_seconds": 1e999'))


def _huge_results(folder: Path) -> None:
    data = json.loads((folder / "results.json").read_text())
    data["environment"]["padding"] = "x" * (9 << 20)
    (folder / "results.json").write_text(json.dumps(data))


def _symlinked_predictions(folder: Path) -> None:
    target = folder.parent / "elsewhere.parquet"
    os.replace(folder / "predictions.parquet", target)
    (folder / "predictions.parquet").symlink_to(target)


def _garbage_predictions(folder: Path) -> None:
    (folder / "predictions.parquet").write_bytes(b"PAR1 this is not parquet")


def _reorder_classes(data: dict) -> None:
    data["dataset"]["class_names"] = list(reversed(data["dataset"]["class_names"]))


def _extra_metric(data: dict) -> None:
    data["metrics"]["top10"] = 0.99


def _drop_metric(data: dict) -> None:
    del data["metrics"]["top5"]


def _bump_first(path: str, delta: float) -> Callable[[dict], None]:
    """Change the first value of a per-class / interval container."""
    def edit(data: dict) -> None:
        *parents, last = path.split(".")
        for part in parents:
            data = data[part]
        container = data[last]
        if isinstance(container, dict):
            key = next(iter(container))
            container[key] = container[key] + delta
        else:
            container[0] = container[0] - delta
    return edit


CASES = [
    ("changed top-1", edit_results(_bump("metrics.top1", 0.01)), "metric metrics.top1 claims"),
    ("changed top-5", edit_results(_bump("metrics.top5", -0.02)), "metric metrics.top5 claims"),
    ("changed mean per-class recall", edit_results(_bump("metrics.mean_per_class_recall", 1e-4)),
     "metric metrics.mean_per_class_recall claims"),
    ("changed CI bound", edit_results(_bump_first("metrics.ci95.top1", 0.05)), "metric metrics.ci95.top1[0] claims"),
    ("changed per-class accuracy", edit_results(_bump_first("metrics.per_class_accuracy", 0.1)),
     "metric metrics.per_class_accuracy."),
    ("missing metric", edit_results(_drop_metric), "metric metrics.top5 is missing"),
    ("unverifiable extra metric", edit_results(_extra_metric), "metrics.top10 cannot be recomputed"),
    ("dropped rows", edit_predictions(_drop_rows), "samples missing"),
    ("duplicated row", edit_predictions(_duplicate_row), "appears 2 times"),
    ("sample index out of range", edit_predictions(lambda c: {**c, "index": c["index"] + 1}), "outside the dataset"),
    ("wrong dataset fingerprint", edit_results(set_field("dataset.fingerprint", "f" * 64)), "dataset.fingerprint is"),
    ("wrong dataset revision", edit_results(set_field("dataset.revision", "main")), "dataset.revision is"),
    ("wrong class count", edit_results(set_field("dataset.num_classes", 11)), "dataset.num_classes is"),
    ("reordered classes", edit_results(_reorder_classes), "class_names differ"),
    ("label leak", _label_leak, "label of sample_index"),
    ("bad JSON in results", lambda f: (f / "results.json").write_text('{"format": "letitwag.results/1",'),
     "results.json: invalid JSON"),
    ("bad JSON in metadata", lambda f: (f / "submission.json").write_text("[1, 2"), "submission.json: invalid JSON"),
    ("JSON array instead of object", lambda f: (f / "submission.json").write_text("[1, 2]"), "must hold a JSON object"),
    ("NaN in results", _nan_in_results, "NaN/Infinity are not allowed"),
    ("number overflowing to infinity", _overflow_number, "overflows to infinity"),
    ("NaN in scores", edit_predictions(lambda c: {**c, "scores": np.where(np.arange(c["scores"].size).reshape(
        c["scores"].shape) == 7, np.nan, c["scores"])}), "NaN or infinity"),
    ("huge results.json", _huge_results, "over the"),
    ("hostile model name", edit_metadata(model_name="<script>alert(1)</script>"), "forbidden character"),
    ("path separator in name", edit_metadata(model_name="../../etc/passwd"), "forbidden character"),
    ("control character in name", edit_metadata(model_name="model\u0007bell"), "forbidden character"),
    ("javascript link", edit_metadata(link="javascript:alert(1)"), "must be an http(s) URL"),
    ("markup in pretraining data", edit_metadata(pretraining_data='LAION" onmouseover="x'), "forbidden character"),
    ("negative parameter count", edit_metadata(parameters=-5), "positive integer"),
    ("unknown metadata field", edit_metadata(homepage="https://example.org"), "unknown field"),
    ("class id out of range", edit_predictions(lambda c: {**c, "topk": np.where(c["topk"] == 4, 10, c["topk"])}),
     "outside 0..9"),
    ("repeated class in top-k", edit_predictions(lambda c: {**c, "topk": np.concatenate(
        [c["topk"][:, :1], c["topk"][:, :1], c["topk"][:, 2:]], axis=1)}), "repeat a class"),
    ("top-k too short", edit_predictions(lambda c: {**c, "topk": c["topk"][:, :3], "scores": c["scores"][:, :3]}),
     "expected k = 5"),
    ("scores not best first", edit_predictions(lambda c: {**c, "scores": c["scores"][:, ::-1].copy()}),
     "not ordered best first"),
    ("limited run", edit_results(set_field("config.limit", 100)), "--limit"),
    ("random weights", edit_results(set_field("model.random_weights", True)), "random_weights must be false"),
    ("unknown format version", edit_results(set_field("format", "letitwag.results/2")), "is not supported"),
    ("not a classification run", edit_results(set_field("task", "segmentation")), "not accepted by this board"),
    ("too many bootstrap samples", edit_results(set_field("metrics.bootstrap", {"samples": 10**6, "seed": 0})),
     "over this board's limit"),
    ("missing predictions", lambda f: (f / "predictions.parquet").unlink(), "predictions.parquet: missing"),
    ("symlinked predictions", _symlinked_predictions, "must be a plain file"),
    ("predictions not parquet", _garbage_predictions, "not a readable predictions parquet"),
]


@pytest.mark.parametrize("mutate, expected", [pytest.param(m, e, id=name) for name, m, e in CASES])
def test_tampered_submission_is_rejected(board_dir: Path, submission: Path, mutate, expected: str) -> None:
    board = Board.open(board_dir)
    mutate(submission)
    with pytest.raises(SubmissionRejected) as caught:
        validate_submission(submission, board)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_tampered_submission_fails_the_cli_with_one_line(board_dir: Path, submission: Path, capsys) -> None:
    edit_results(_bump("metrics.top1", 0.01))(submission)
    assert main(["leaderboard", "validate", str(submission), "--board", str(board_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "metrics.top1 claims" in err and "but the predictions give" in err


TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                       max_leaves=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["model_name", "link", "pretraining_data", "license", "parameters",
                              "includes_let_it_wag_images", "imagenet_top1", "format"]),
       value=JSONISH)
def test_random_metadata_is_accepted_only_when_clean(board_dir: Path, submission: Path, field: str, value) -> None:
    """Any value in any metadata field: either a clean accept or a one-line rejection, never a crash."""
    edit_metadata(**{field: value})(submission)
    try:
        validated = validate_submission(submission, Board.open(board_dir))
    except SubmissionRejected as error:
        assert "\n" not in str(error)
        return
    meta = validated.metadata
    for text in (meta.model_name, meta.pretraining_data, meta.license, meta.link):
        assert not set(text) & set('<>"`\\')
    assert "/" not in meta.model_name
    assert meta.link.startswith(("http://", "https://"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["task", "format", "dataset", "dataset.id", "dataset.num_samples", "model", "model.spec",
                             "model.revision", "config", "config.precision", "prompts.set", "metrics",
                             "metrics.top1", "metrics.bootstrap", "metrics.ci95"]),
       value=JSONISH)
def test_random_results_fields_never_crash_validation(board_dir: Path, submission: Path, path: str, value) -> None:
    """Replacing any results.json field by random JSON is rejected with one line (or, if harmless, accepted)."""
    original = submission / "results.json.original"  # examples share the folder: start each from the valid file
    if not original.exists():
        original.write_bytes((submission / "results.json").read_bytes())
    (submission / "results.json").write_bytes(original.read_bytes())
    edit_results(set_field(path, value))(submission)
    try:
        validate_submission(submission, Board.open(board_dir))
    except SubmissionRejected as error:
        assert "\n" not in str(error)
