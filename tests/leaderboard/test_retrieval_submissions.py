"""Retrieval runs go through ``leaderboard validate``: every metric recomputed from the per-caption ranks.

The runs are synthetic (seeded ranks, metrics from the harness's own ``retrieval_metrics``), as for the
classification submissions of this suite; nothing is a real model.
"""

from __future__ import annotations

import json

import pytest

from board_helpers import retrieval_columns, write_retrieval_submission
from letitwag.cli import main
from letitwag.leaderboard.board import Board
from letitwag.leaderboard.submission import SubmissionRejected
from letitwag.leaderboard.validate import add_submission, validate_submission


def _validate_cli(folder, board_dir, capsys) -> tuple[int, str]:
    code = main(["leaderboard", "validate", str(folder), "--board", str(board_dir)])
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).strip()


def test_an_honest_retrieval_run_validates_and_is_not_stored(board_dir, tmp_path, capsys) -> None:
    run = write_retrieval_submission(tmp_path / "coco")
    code, said = _validate_cli(run, board_dir, capsys)
    assert code == 0 and said.startswith("valid: ") and "retrieval on clip-benchmark/wds_mscoco_captions" in said
    assert "not stored or ranked" in said and len(said.splitlines()) == 1
    validated = validate_submission(run, Board.open(board_dir))
    assert validated.results["metrics"]["per_concept"]  # per-concept recall was recomputed and compared too
    with pytest.raises(SubmissionRejected, match="not stored or ranked by this board yet"):
        add_submission(run, Board.open(board_dir))
    assert not list((board_dir / "submissions").rglob("results.json"))


def _tampered_rank(columns: dict) -> dict:
    miss = next(i for i, rank in enumerate(columns["text_to_image_rank"]) if rank > 1)
    columns["text_to_image_rank"][miss] = 1  # a miss claimed as a hit
    return columns


@pytest.mark.parametrize("tamper, message", [
    ("rank", "metric metrics.text_to_image_recall@1 claims"),
    ("metric", "metric metrics.image_to_text_recall@5 claims"),
    ("concept_metric", "metric metrics.per_concept.dog.text_to_image_recall@10 claims"),
    ("rank_zero", "text_to_image_rank of caption_index 3 is 0, outside 1..30"),
    ("duplicate", "caption_index 0 appears 2 times"),
    ("count", "150 captions of 30 images, but results.json says 149 captions"),
])
def test_tampered_ranks_and_metrics_are_refused_in_one_line(board_dir, tmp_path, capsys, tamper, message) -> None:
    honest = retrieval_columns()
    run = write_retrieval_submission(tmp_path / "run")
    columns = retrieval_columns()
    if tamper == "rank":
        write_retrieval_submission(tmp_path / "forged", _tampered_rank(columns))
        (tmp_path / "forged" / "results.json").write_text((run / "results.json").read_text())
        run = tmp_path / "forged"  # ranks changed, claims kept
    elif tamper in ("metric", "concept_metric", "count"):
        results = json.loads((run / "results.json").read_text())
        if tamper == "metric":
            results["metrics"]["image_to_text_recall@5"] += 0.01
        elif tamper == "concept_metric":
            results["metrics"]["per_concept"]["dog"]["text_to_image_recall@10"] = 1.0
        else:
            results["dataset"]["num_captions"] = 149
        (run / "results.json").write_text(json.dumps(results))
    else:
        if tamper == "rank_zero":
            columns["text_to_image_rank"][3] = 0
        else:
            columns["caption_index"][1] = 0
        from letitwag.harness.results import retrieval_table
        import pyarrow.parquet as pq

        pq.write_table(retrieval_table(columns), run / "predictions.parquet")
    assert honest["text_to_image_rank"].tolist() == retrieval_columns()["text_to_image_rank"].tolist()  # seeded
    code, said = _validate_cli(run, board_dir, capsys)
    assert code == 2 and len(said.splitlines()) == 1 and message in said, said
