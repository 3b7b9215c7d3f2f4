"""Property: hostile submissions are rejected with one line, or accepted only when still valid; never a traceback.

Starting from one valid submission (the leaderboard tests' synthetic harness run), each example
changes one thing: a ``submission.json`` field, a ``results.json`` field anywhere in the document,
a whole file's bytes, or the predictions. Values come from hostile pools (markup and scripts, path
separators, control and bidi characters, NaN/±inf, numbers beyond float range, wrong types,
missing keys). Proves for every example:

* validation ends with ``SubmissionRejected`` / ``UserInputError`` whose message is one bounded line,
  or with acceptance, and never with any other exception;
* an accepted submission still has clean display strings (no markup, control characters, path
  separators in names, only http(s) links), no claimed metric changed (optional parts may be left
  out) and the original predictions;
* NaN, infinities and out-of-range numbers in any JSON file are always rejected;
* through the CLI (``letitwag leaderboard validate``) a rejection is exit code 2 and one error line.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fault_helpers import load_test_helpers, one_line_error
from letitwag.cli import main
from letitwag.errors import UserInputError
from letitwag.leaderboard.board import Board
from letitwag.leaderboard.validate import validate_submission

HOSTILE_TEXT = st.one_of(
    st.sampled_from(["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "../../etc/passwd", "a/b", "..",
                     ".hidden", "C:\\Windows", '" onmouseover="x', "`id`", "javascript:alert(1)",
                     "data:text/html,<b>x</b>", "http://", "https://example.org/a b", "https://ex.org/'x",
                     "\x00", "a\nb", "\u202eevil", "\u200b", "", "   ", "x" * 400, "ViT-B/32", "Ünïcødé model",
                     "ok-name_1.0", "https://example.org/model", "MIT"]),
    st.text(max_size=30))
NUMBERS = st.one_of(st.integers(-(10**30), 10**30), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, -1, 10**14, 2**63, 1e308, -0.0, 100.0000001]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, HOSTILE_TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(HOSTILE_TEXT, inner, max_size=3)),
                      max_leaves=6)
DELETE = object()
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict:
    """A board and a valid submission for it (built with the leaderboard tests' own helpers)."""
    from letitwag.leaderboard.board import init_from_reference

    helpers = load_test_helpers("leaderboard", "faults_leaderboard_helpers")
    root = tmp_path_factory.mktemp("board")
    init_from_reference(root / "board", helpers.write_submission(root / "reference", seed=0))
    submission = helpers.write_submission(root / "submission", seed=1)
    board = Board.open(root / "board")
    validate_submission(submission, board)  # the starting point is valid
    return {"board": board, "board_dir": root / "board", "submission": submission,
            "results": json.loads((submission / "results.json").read_text()),
            "metadata": json.loads((submission / "submission.json").read_text()),
            "predictions": pq.read_table(submission / "predictions.parquet")}


def leaf_paths(document, prefix: tuple = ()) -> list[tuple]:
    """Every path in a JSON document (dict keys and list positions), parents before children."""
    paths = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            paths += leaf_paths(value, prefix + (key,))
    elif isinstance(document, list):
        for index, value in enumerate(document[:3]):
            paths += leaf_paths(value, prefix + (index,))
    return paths


def edited(document, path: tuple, value):
    document = json.loads(json.dumps(document))
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    if value is DELETE:
        parent.pop(path[-1], None) if isinstance(parent, dict) else parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return document


def has_non_finite(value) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(has_non_finite(v) for v in value)
    return False


def validate_copy(valid: dict, change) -> object | None:
    """Validate a copy of the valid submission after ``change(folder)``: the accepted submission, or
    ``None`` after a proper rejection (any other exception fails the test)."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(shutil.copytree(valid["submission"], Path(scratch) / "submission"))
        change(folder)
        try:
            return validate_submission(folder, valid["board"])
        except UserInputError as error:  # SubmissionRejected is one
            message = str(error)
            assert message and "\n" not in message and "\r" not in message and len(message) < 2000, message
            return None


def assert_clean_display(accepted) -> None:
    metadata = accepted.metadata
    for field in ("model_name", "pretraining_data", "license", "link"):
        text = getattr(metadata, field)
        assert not set(text) & set('<>"`\\'), (field, text)
        assert not any(unicodedata.category(c)[0] == "C" for c in text), (field, text)
    assert "/" not in metadata.model_name and not metadata.model_name.startswith(".")
    assert metadata.link.split(":", 1)[0] in ("http", "https") and "'" not in metadata.link
    for name in (accepted.key.model, accepted.key.revision, accepted.key.precision, accepted.key.prompt_set):
        assert "/" not in name and "\\" not in name and not name.startswith(".")


def claims_subset(claimed, original) -> bool:
    """Every number still claimed equals the original's (optional parts may be gone, none may change)."""
    if isinstance(claimed, bool) or isinstance(original, bool):
        return claimed == original
    if isinstance(claimed, (int, float)) and isinstance(original, (int, float)):
        return math.isclose(claimed, original, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(claimed, dict) and isinstance(original, dict):
        return all(k in original and claims_subset(v, original[k]) for k, v in claimed.items())
    if isinstance(claimed, list) and isinstance(original, list):
        return len(claimed) == len(original) and all(claims_subset(x, y) for x, y in zip(claimed, original))
    return claimed == original


@SETTINGS
@given(data=st.data())
def test_hostile_metadata_fields(valid, data):
    field = data.draw(st.sampled_from([*valid["metadata"], "unknown_field", "__proto__"]))
    value = data.draw(st.one_of(VALUES, st.just(DELETE)))
    document = edited(valid["metadata"], (field,), value)
    accepted = validate_copy(valid, lambda folder: (folder / "submission.json").write_text(json.dumps(document)))
    if accepted is not None:
        assert not has_non_finite(value)
        assert_clean_display(accepted)


@SETTINGS
@given(data=st.data())
def test_hostile_results_fields(valid, data):
    path = data.draw(st.sampled_from(leaf_paths(valid["results"])))
    value = data.draw(st.one_of(VALUES, st.just(DELETE)))
    document = edited(valid["results"], path, value)
    accepted = validate_copy(valid, lambda folder: (folder / "results.json").write_text(json.dumps(document)))
    if accepted is not None:
        assert not has_non_finite(value)
        assert_clean_display(accepted)
        if path[0] in ("metrics", "dataset"):  # what the board ranks by and checks against: nothing changed
            # (metrics.frequency_unmatched is the harness's note of unmatched class names: never verified,
            # never shown by the board, so a changed value there is harmless)
            claimed, original = (
                {k: v for k, v in document[path[0]].items() if k != "frequency_unmatched"}
                for document in (accepted.results, valid["results"]))
            assert claims_subset(claimed, original), (path, value)


GARBAGE = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"null", b"[]", b"42", b'"text"', b"{", b"[" * 50_000, b'{"a": NaN}', b'{"a": Infinity}',
                     b'{"a": -Infinity}', b'{"a": 1e999}', b'{"a": -1e400}', b"\xef\xbb\xbf{}", b"{}" * 1000,
                     b'{"format": "letitwag.results/1"}', b'{"format": "letitwag.submission/1"}', b"PAR1garbagePAR1"]))


@SETTINGS
@given(name=st.sampled_from(["results.json", "submission.json", "predictions.parquet"]), garbage=GARBAGE)
def test_garbage_files_are_rejected(valid, name, garbage):
    assert validate_copy(valid, lambda folder: (folder / name).write_bytes(garbage)) is None


def _rewrite_predictions(folder: Path, columns: dict) -> None:
    pq.write_table(pa.table(columns), folder / "predictions.parquet")


@SETTINGS
@given(data=st.data())
def test_hostile_predictions(valid, data):
    original = valid["predictions"]
    rows = original.num_rows
    columns = {name: original.column(name) for name in original.column_names}
    edit = data.draw(st.sampled_from(["label", "topk", "index", "drop", "duplicate", "scores", "type", "column"]))
    row = data.draw(st.integers(0, rows - 1))
    if edit == "label":
        labels = original.column("label").to_numpy().copy()
        labels[row] = data.draw(st.integers(-(2**31), 2**31 - 1))
        columns["label"] = pa.array(labels, pa.int32())
    elif edit == "topk":
        topk = original.column("topk_ids").to_pylist()
        topk[row] = data.draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=7))
        columns["topk_ids"] = pa.array(topk, pa.list_(pa.int32()))
    elif edit == "index":
        index = original.column("sample_index").to_numpy().copy()
        index[row] = data.draw(st.integers(-(2**63), 2**63 - 1))
        columns["sample_index"] = pa.array(index, pa.int64())
    elif edit in ("drop", "duplicate"):
        keep = [i for i in range(rows) if i != row] if edit == "drop" else [*range(rows), row]
        columns = {name: column.take(pa.array(keep)) for name, column in columns.items()}
    elif edit == "scores":
        scores = original.column("topk_scores").to_pylist()
        scores[row] = [data.draw(st.floats(allow_nan=True, allow_infinity=True, width=32)) for _ in scores[row]]
        columns["topk_scores"] = pa.array(scores, pa.list_(pa.float32()))
    elif edit == "type":
        name = data.draw(st.sampled_from(list(columns)))
        columns[name] = pa.array([str(v) for v in columns[name].to_pylist()], pa.string())
    else:
        columns[data.draw(HOSTILE_TEXT.filter(lambda t: t not in columns))] = pa.array(np.zeros(rows))
    accepted = validate_copy(valid, lambda folder: _rewrite_predictions(folder, columns))
    if accepted is not None:  # only edits that leave the ranked content as it was
        table = pq.read_table(valid["submission"] / "predictions.parquet")
        changed = pa.table(columns)
        for name in ("sample_index", "label", "topk_ids"):
            assert changed.column(name).to_pylist() == table.column(name).to_pylist(), (edit, name)


@pytest.mark.parametrize("garbage", [b'{"a": NaN}', b"<html><script>alert(1)</script>", b"[" * 50_000])
def test_cli_rejects_with_exit_2_and_one_line(valid, garbage, tmp_path, capsys):
    folder = Path(shutil.copytree(valid["submission"], tmp_path / "submission"))
    (folder / "results.json").write_bytes(garbage)
    assert main(["leaderboard", "validate", str(folder), "--board", str(valid["board_dir"])]) == 2
    line = one_line_error(capsys.readouterr().err, "leaderboard")
    assert "results.json" in line and len(line) < 2000
