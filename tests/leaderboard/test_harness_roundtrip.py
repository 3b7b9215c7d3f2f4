"""The real harness's output goes through the board unchanged (format compatibility, end to end).

A tiny RANDOM-WEIGHT open_clip model (plumbing only) evaluates a 12-image dataset with one
undecodable image through ``letitwag evaluate``. That run both defines the board (its dataset
identity and labels) and is then submitted to it. The board rightly refuses random-weight runs,
so for the acceptance check the submission's ``model.random_weights`` flag is flipped; every
other byte is the harness's own.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from letitwag.cli import main
from letitwag.data import read_bundled_json
from letitwag.leaderboard.board import init_from_reference
from letitwag.leaderboard.submission import SubmissionRejected
from letitwag.leaderboard.validate import add_submission, validate_submission

CLASSES = list(read_bundled_json("let_it_wag_classes.json"))[:3]


def _png(colour: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def harness_runs(tmp_path_factory):
    import datasets
    import torch

    from letitwag.models.tiny import build_tiny_open_clip

    root = tmp_path_factory.mktemp("harness")
    images = [{"bytes": b"not an image" if i == 5 else _png((30 * i % 255, 90, 200 - 50 * (i % 3)), (20 + i, 20)),
               "path": None} for i in range(12)]
    dataset = datasets.Dataset.from_dict(
        {"image": images, "label": [i % 3 for i in range(12)]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)}))
    dataset.save_to_disk(str(root / "dataset"))
    spec = build_tiny_open_clip(root / "model")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["evaluate", "--model", spec, "--dataset", str(root / "dataset"), "--out", str(root / "run"),
                     "--workers", "0", "--bootstrap-samples", "50", "--prompts", "simple", "--no-cache"]) == 0
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.mark.slow
def test_harness_runs_validate_and_add(harness_runs: Path, tmp_path: Path) -> None:
    board = init_from_reference(tmp_path / "board", harness_runs / "run")
    assert board.config.excluded_samples == [5]  # the undecodable image
    submission = tmp_path / "submission"
    submission.mkdir()
    for name in ("results.json", "predictions.parquet"):
        (submission / name).write_bytes((harness_runs / "run" / name).read_bytes())
    (submission / "submission.json").write_text(json.dumps({
        "format": "letitwag.submission/1", "model_name": "tiny random open_clip (plumbing)",
        "link": "https://example.org/tiny", "parameters": None, "pretraining_data": "none (random weights)",
        "includes_let_it_wag_images": False, "license": "MIT"}))

    with pytest.raises(SubmissionRejected, match="random_weights must be false"):
        validate_submission(submission, board)

    results = json.loads((submission / "results.json").read_text())
    results["model"]["random_weights"] = False
    (submission / "results.json").write_text(json.dumps(results))
    validated, stored = add_submission(submission, board)
    assert validated.results["metrics"]["top1"] == results["metrics"]["top1"]
    assert (stored / "verification.json").is_file()
