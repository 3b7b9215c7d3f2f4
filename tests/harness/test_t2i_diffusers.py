"""The t2i task with a real (tiny, RANDOM-WEIGHT plumbing) diffusers pipeline and open_clip judge."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from letitwag.cli import main
from letitwag.harness.t2i import read_t2i_predictions, t2i_metrics
from test_t2i_fakes import write_colour_dataset


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    from letitwag.models.tiny import build_tiny_diffusers

    return build_tiny_diffusers(tmp_path_factory.mktemp("t2i") / "sd")


def _run(pipeline, judge, dataset, out, cache, batch):
    argv = ["evaluate", "--task", "t2i", "--model", pipeline, "--judge", judge, "--judge-prompts", "simple",
            "--retrieval-judge", judge, "--dataset", str(dataset), "--out", str(out), "--cache-dir", str(cache),
            "--workers", "0", "--bootstrap-samples", "10", "--images-per-prompt", "2",
            "--generation-batch-size", str(batch), "--generation-options", '{"num_inference_steps": 2}']
    assert main(argv) == 0
    return json.loads((Path(out) / "results.json").read_text())


def test_tiny_diffusers_run_is_complete_and_deterministic(tiny_pipeline, tiny_open_clip, tmp_path):
    from PIL import Image

    dataset = write_colour_dataset(tmp_path / "colours")
    first = _run(tiny_pipeline, tiny_open_clip, dataset, tmp_path / "a", tmp_path / "cache", batch=4)
    second = _run(tiny_pipeline, tiny_open_clip, dataset, tmp_path / "b", tmp_path / "cache", batch=4)
    rows = pq.read_table(tmp_path / "a" / "predictions.parquet").to_pylist()
    assert len(rows) == 6 and first["model"]["plumbing_model"] is True and first["judge"]["plumbing_model"] is True
    for row in rows:
        with Image.open(tmp_path / "a" / row["image_path"]) as image:
            assert image.size == (64, 64) and image.text["prompt"] == row["prompt"]
        # same seed and settings: byte-identical PNGs
        assert (tmp_path / "a" / row["image_path"]).read_bytes() == (tmp_path / "b" / row["image_path"]).read_bytes()
        assert 1 <= row["retrieval_rank"] <= 6 and len(row["topk_ids"]) == 3 and row["clip_score"] >= 0
    # images of one prompt differ (their seeds differ)
    assert rows[0]["image_sha256"] != rows[1]["image_sha256"]
    assert first["metrics"] == second["metrics"]
    assert second["retrieval"]["image_features_cache"]["chunks_reused"] == 1  # real-image features from the cache
    assert second["cache"]["judge_classifier"] == "reused"
    recomputed = t2i_metrics(**read_t2i_predictions(tmp_path / "a" / "predictions.parquet"),
                             class_names=first["dataset"]["class_names"], bootstrap_samples=10, seed=0)
    assert recomputed == first["metrics"]
