"""Plumbing runs (random weights): refused as submissions; with ``--plumbing`` stored unranked, shown apart.

The gate is the same for a plumbing run as for a submission (identity, sanitising, every metric
recomputed from the predictions); only the ranking differs. The synthetic runs here are marked
``random_weights: true`` by hand: they stand for the demo's tiny random-weight model.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from board_helpers import LABELS, NUM_CLASSES, metadata_document, metrics_for, results_document, write_predictions
from letitwag.cli import main
from letitwag.leaderboard.board import Board
from letitwag.leaderboard.site import build_site
from letitwag.leaderboard.submission import SubmissionRejected
from letitwag.leaderboard.validate import PLUMBING_REASON, add_submission, validate_submission

PLUMBING_NAME = "Tiny & random 'plumbing' CLIP"


def _edit_results(folder: Path, edit) -> None:
    data = json.loads((folder / "results.json").read_text())
    edit(data)
    (folder / "results.json").write_text(json.dumps(data))


def write_plumbing_run(folder: Path) -> Path:
    """A random-weights run whose top-1 is 100% (higher than any real entry): it must still not rank."""
    folder.mkdir(parents=True)
    topk = np.array([[label, *[c for c in range(NUM_CLASSES) if c != label][:4]] for label in LABELS], np.int32)
    scores = np.tile(np.arange(5, 0, -1, dtype=np.float32), (len(LABELS), 1))
    write_predictions(folder / "predictions.parquet", LABELS, topk, scores)
    results = results_document(metrics_for(LABELS, topk), spec="plumbing_model:tiny-clip")
    results["model"]["random_weights"] = True
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "submission.json").write_text(json.dumps(metadata_document(model_name=PLUMBING_NAME)))
    return folder


@pytest.fixture
def plumbing_run(tmp_path: Path) -> Path:
    return write_plumbing_run(tmp_path / "plumbing-run")


def test_random_weights_run_is_added_only_with_the_flag(board_dir: Path, plumbing_run: Path, capsys) -> None:
    with pytest.raises(SubmissionRejected, match="random_weights must be false"):
        add_submission(plumbing_run, Board.open(board_dir))
    assert main(["leaderboard", "add", str(plumbing_run), "--board", str(board_dir)]) == 2
    assert "random_weights must be false" in capsys.readouterr().err
    assert not list(board_dir.glob("submissions/*/*/*"))

    assert main(["leaderboard", "add", str(plumbing_run), "--board", str(board_dir), "--plumbing"]) == 0
    assert "as an unranked plumbing run (random weights)" in capsys.readouterr().out
    (stored,) = [p.parent for p in board_dir.glob("submissions/*/*/*/verification.json")]
    record = json.loads((stored / "verification.json").read_text())
    assert record["plumbing"] is True and record["ranked"] is False and record["not_ranked_reason"] == PLUMBING_REASON
    assert main(["leaderboard", "verify", "--board", str(board_dir)]) == 0  # re-verifiable as plumbing
    assert "1 of 1 entries verified" in capsys.readouterr().out


def test_plumbing_flag_refuses_a_real_weights_run(board_dir: Path, submission: Path) -> None:
    with pytest.raises(SubmissionRejected, match="--plumbing is only for classification runs with "
                                                 "model.random_weights true"):
        validate_submission(submission, Board.open(board_dir), plumbing=True)


@pytest.mark.parametrize("edit, expected", [
    pytest.param(lambda d: d["metrics"].update(top1=d["metrics"]["top1"] - 0.01), "metrics.top1 claims",
                 id="claimed top-1 differs from the predictions"),
    pytest.param(lambda d: d["dataset"].update(revision="other"), "dataset.revision", id="another dataset revision"),
    pytest.param(lambda d: d["config"].update(limit=10), "--limit", id="limited run"),
    pytest.param(lambda d: d["model"].update(random_weights="yes"), "--plumbing is only for",
                 id="random_weights not a boolean"),
])
def test_tampered_plumbing_run_is_still_rejected(board_dir: Path, plumbing_run: Path, edit, expected: str) -> None:
    _edit_results(plumbing_run, edit)
    with pytest.raises(SubmissionRejected) as caught:
        add_submission(plumbing_run, Board.open(board_dir), plumbing=True)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert not list(board_dir.glob("submissions/*/*/*"))


def test_plumbing_name_with_markup_is_rejected(board_dir: Path, plumbing_run: Path) -> None:
    (plumbing_run / "submission.json").write_text(json.dumps(metadata_document(model_name="<b>tiny</b>")))
    with pytest.raises(SubmissionRejected, match="forbidden character"):
        add_submission(plumbing_run, Board.open(board_dir), plumbing=True)


def test_site_lists_the_plumbing_run_apart_unranked_and_escaped(board_dir: Path, submission: Path,
                                                                 plumbing_run: Path, tmp_path: Path) -> None:
    board = Board.open(board_dir)
    add_submission(submission, board)
    add_submission(plumbing_run, board, plumbing=True)
    out = build_site(board, tmp_path / "site")
    index = (out / "index.html").read_text(encoding="utf-8")

    section = index[index.index('<section id="plumbing">'):]
    section = section[:section.index("</section>")]
    assert "Plumbing runs — random weights, numbers meaningless" in section
    assert "Tiny &amp; random &#39;plumbing&#39; CLIP" in section and PLUMBING_NAME not in index
    assert "not ranked" in section and "plumbing run (random weights)" in section and "100.00" in section
    ranked_table = index[index.index('<table id="board"'):index.index("</table>")]
    assert "plumbing" not in ranked_table.casefold()
    scatter = index[index.index('<section id="scatter">'):index.index('<section id="plumbing">')]
    assert "Tiny &amp; random" not in scatter and scatter.count('class="point verified"') == 1

    rows = list(csv.DictReader((out / "board.csv").open(encoding="utf-8")))
    (plumbing,) = [r for r in rows if r["plumbing"] == "True"]
    assert plumbing["name"] == PLUMBING_NAME and plumbing["rank"] == "" and plumbing["ranked"] == "False"
    assert float(plumbing["top1"]) == 1.0
    ranked = [r for r in rows if r["rank"]]
    assert len(ranked) == 41 and min(int(r["rank"]) for r in ranked) == 1 and all(r["plumbing"] == "False"
                                                                               for r in ranked)
    exported = json.loads((out / "board.json").read_text())
    (entry,) = [e for e in exported["entries"] if e["plumbing"]]
    assert entry["rank"] is None and entry["ranked"] is False

    page = (out / entry["page"]).read_text(encoding="utf-8")
    assert "not ranked: plumbing run (random weights)" in page
