"""Boards: creation from a reference run, validation of a good submission, atomic add, duplicates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from board_helpers import DATASET, LABELS, metadata_document, write_submission
from letitwag.cli import main
from letitwag.leaderboard import board as board_module
from letitwag.leaderboard.board import Board, BoardError, init_from_reference
from letitwag.leaderboard.submission import SubmissionRejected
from letitwag.leaderboard.validate import add_submission, validate_submission


def test_board_holds_the_reference_dataset_and_labels(board_dir: Path) -> None:
    board = Board.open(board_dir)
    assert {k: board.config.dataset[k] for k in DATASET} == DATASET
    assert np.array_equal(board.labels, LABELS)


def test_board_cannot_be_made_from_a_limited_run(tmp_path: Path, submission: Path) -> None:
    data = json.loads((submission / "results.json").read_text())
    data["config"]["limit"] = 10
    (submission / "results.json").write_text(json.dumps(data))
    with pytest.raises(BoardError, match="--limit run cannot define a board"):
        init_from_reference(tmp_path / "new-board", submission)


def test_valid_submission_passes_and_cli_exits_zero(board_dir: Path, submission: Path, capsys) -> None:
    validated = validate_submission(submission, Board.open(board_dir))
    assert validated.ranked and validated.key.model == "Synthetic ViT-S-32"
    assert main(["leaderboard", "validate", str(submission), "--board", str(board_dir)]) == 0
    assert "valid: Synthetic ViT-S-32" in capsys.readouterr().out


def test_add_stores_the_validated_files_under_model_and_revision(board_dir: Path, submission: Path) -> None:
    assert main(["leaderboard", "add", str(submission), "--board", str(board_dir)]) == 0
    stored = board_dir / "submissions" / "synthetic-vit-s-32" / "abc123" / "fp32_ensemble"
    for name in ("results.json", "predictions.parquet", "submission.json"):
        assert (stored / name).read_bytes() == (submission / name).read_bytes()
    record = json.loads((stored / "verification.json").read_text())
    assert record["key"] == {"model": "Synthetic ViT-S-32", "revision": "abc123", "precision": "fp32",
                             "prompt_set": "ensemble"}
    assert record["ranked"] is True
    assert not list((board_dir / ".staging").iterdir())


def test_duplicate_key_is_rejected_even_with_other_predictions(board_dir: Path, submission: Path,
                                                               tmp_path: Path) -> None:
    board = Board.open(board_dir)
    add_submission(submission, board)
    again = write_submission(tmp_path / "again", seed=7, metadata=metadata_document(model_name="synthetic vit-s-32"))
    with pytest.raises(SubmissionRejected, match="duplicate submission: synthetic vit-s-32"):
        validate_submission(again, board)
    other_precision = write_submission(tmp_path / "bf16", seed=7, precision="bf16")
    assert add_submission(other_precision, board)[1].name == "bf16_ensemble"


def test_add_leaves_no_entry_when_storing_fails(board_dir: Path, submission: Path, monkeypatch) -> None:
    """A failure half-way through copying (disk full) leaves neither an entry nor staging files."""
    calls = {"n": 0}
    real_copy = shutil.copyfile

    def failing_copy(src, dst, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(board_module.shutil, "copyfile", failing_copy)
    with pytest.raises(BoardError, match="could not store the entry"):
        add_submission(submission, Board.open(board_dir))
    assert not list((board_dir / "submissions").rglob("*.json"))
    assert not list((board_dir / ".staging").iterdir())


def test_submission_changed_after_validation_is_not_stored(board_dir: Path, submission: Path, monkeypatch) -> None:
    board = Board.open(board_dir)
    validated = validate_submission(submission, board)
    table = pq.read_table(submission / "predictions.parquet")
    pq.write_table(table.slice(0, table.num_rows), submission / "predictions.parquet", compression="gzip")
    with pytest.raises(SubmissionRejected, match="changed while it was being validated"):
        board_module.store_entry(board, submission, validated.key, validated.file_hashes, validated.record())
    assert not list((board_dir / "submissions").rglob("verification.json"))


def test_not_zero_shot_submission_is_stored_but_not_ranked(board_dir: Path, tmp_path: Path) -> None:
    folder = write_submission(tmp_path / "leaky", metadata=metadata_document(includes_let_it_wag_images=True))
    validated, stored = add_submission(folder, Board.open(board_dir))
    assert not validated.ranked
    assert json.loads((stored / "verification.json").read_text())["not_ranked_reason"].startswith("its pretraining")


def test_missing_board_is_one_clear_line(tmp_path: Path, submission: Path, capsys) -> None:
    assert main(["leaderboard", "validate", str(submission), "--board", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "letitwag leaderboard init" in err


def test_samples_missing_from_the_reference_are_excluded(tmp_path: Path) -> None:
    """A sample the reference run could not evaluate (corrupt image) is left out by every submission."""
    from board_helpers import metrics_for, predict, results_document, write_predictions

    keep = np.arange(len(LABELS)) != 5
    topk, scores = predict(LABELS, 0)

    def partial_run(folder: Path, rows: np.ndarray) -> Path:
        folder.mkdir()
        write_predictions(folder / "predictions.parquet", LABELS[rows], topk[rows], scores[rows], np.flatnonzero(rows))
        (folder / "results.json").write_text(json.dumps(results_document(metrics_for(LABELS[rows], topk[rows]))))
        (folder / "submission.json").write_text(json.dumps(metadata_document()))
        return folder

    board = init_from_reference(tmp_path / "board", partial_run(tmp_path / "reference", keep))
    assert board.config.excluded_samples == [5] and board.labels[5] == -1
    assert validate_submission(partial_run(tmp_path / "without-5", keep), board).ranked
    full = write_submission(tmp_path / "with-5", seed=0)
    with pytest.raises(SubmissionRejected, match="sample_index 5 is excluded by this board"):
        validate_submission(full, board)


def test_cli_init_add_build(_templates: Path, submission: Path, tmp_path: Path, capsys) -> None:
    board = tmp_path / "cli-board"
    assert main(["leaderboard", "init", "--board", str(board), "--reference", str(_templates / "reference"),
                 "--no-paper-models", "--title", "Test board"]) == 0
    assert main(["leaderboard", "init", "--board", str(board), "--reference", str(_templates / "reference")]) == 2
    assert "a board already exists here" in capsys.readouterr().err
    assert main(["leaderboard", "add", str(submission), "--board", str(board)]) == 0
    assert main(["leaderboard", "build", "--board", str(board), "--out", str(tmp_path / "site")]) == 0
    exported = json.loads((tmp_path / "site" / "board.json").read_text())
    assert exported["title"] == "Test board" and [e["name"] for e in exported["entries"]] == ["Synthetic ViT-S-32"]


def test_verify_reruns_every_check_on_stored_entries(board_dir: Path, submission: Path, capsys) -> None:
    _, stored = add_submission(submission, Board.open(board_dir))
    assert main(["leaderboard", "verify", "--board", str(board_dir)]) == 0
    assert "1 of 1 entries verified" in capsys.readouterr().out
    results = json.loads((stored / "results.json").read_text())
    results["metrics"]["top1"] += 0.05  # someone edits the board repo by hand
    (stored / "results.json").write_text(json.dumps(results))
    assert main(["leaderboard", "verify", "--board", str(board_dir)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "metrics.top1 claims" in out and "0 of 1 entries verified" in out


def test_verify_notices_files_changed_since_they_were_verified(board_dir: Path, submission: Path) -> None:
    from letitwag.leaderboard.validate import verify_board

    _, stored = add_submission(submission, Board.open(board_dir))
    (stored / "submission.json").write_text((stored / "submission.json").read_text() + "\n")
    [(folder, problem)] = verify_board(Board.open(board_dir))
    assert folder == stored and "files differ from the ones verified" in problem
