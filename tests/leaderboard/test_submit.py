"""``submit`` up to the network boundary: the pull request's operations, and a clean failure offline."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from letitwag.cli import main
from letitwag.leaderboard.board import Board
from letitwag.leaderboard.submission import SubmissionRejected
from letitwag.leaderboard.submit import SubmitError, describe, open_pull_request, plan_operations
from letitwag.leaderboard.validate import validate_submission


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_operations_upload_the_validated_files_to_the_board_layout(board_dir: Path, submission: Path) -> None:
    validated = validate_submission(submission, Board.open(board_dir))
    operations = plan_operations(validated)
    prefix = "submissions/synthetic-vit-s-32/abc123/fp32_ensemble/"
    assert [op.path_in_repo for op in operations] == [prefix + name for name in
                                                      ("results.json", "predictions.parquet", "submission.json")]
    for op in operations:
        assert op.path_or_fileobj == (submission / Path(op.path_in_repo).name).read_bytes()
    title, body = describe(validated)
    assert title.startswith("Add Synthetic ViT-S-32") and "top-1" in body


def test_files_changed_after_validation_are_not_uploaded(board_dir: Path, submission: Path) -> None:
    validated = validate_submission(submission, Board.open(board_dir))
    (submission / "submission.json").write_text((submission / "submission.json").read_text() + " ")
    with pytest.raises(SubmissionRejected, match="changed after validation"):
        plan_operations(validated)


@pytest.fixture
def no_retry_wait(monkeypatch):
    """huggingface_hub retries a refused connection 5 times with back-off; keep its retries, skip the waiting."""
    import huggingface_hub.utils._http as hub_http

    monkeypatch.setattr(hub_http.time, "sleep", lambda seconds: None)


def test_unreachable_hub_fails_cleanly(board_dir: Path, submission: Path, no_retry_wait) -> None:
    validated = validate_submission(submission, Board.open(board_dir))
    started = time.monotonic()
    with pytest.raises(SubmitError, match="could not open a pull request on dataset org/board.*nothing was submitted"):
        open_pull_request(validated, "org/board", token="hf_test", endpoint=f"http://127.0.0.1:{closed_port()}")
    assert time.monotonic() - started < 60


def test_offline_mode_fails_cleanly(board_dir: Path, submission: Path, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    validated = validate_submission(submission, Board.open(board_dir))
    with pytest.raises(SubmitError, match="nothing was submitted"):
        open_pull_request(validated, "org/board", token="hf_test")


def test_cli_submit_offline_is_one_line_and_nonzero(board_dir: Path, submission: Path, capsys, no_retry_wait) -> None:
    code = main(["leaderboard", "submit", str(submission), "--board", str(board_dir), "--repo", "org/board",
                 "--token", "hf_test", "--endpoint", f"http://127.0.0.1:{closed_port()}"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing was submitted" in err
