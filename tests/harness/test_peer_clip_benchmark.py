"""Correctness against a peer: letitwag and CLIP_benchmark 1.6.2 agree exactly on the same inputs.

Same tiny random-weight open_clip checkpoint (loaded from one safetensors file by both), the same
40 JPEGs, the same class names and the paper's 80 templates; then the same folders in
CLIP_benchmark's webdataset layout, which CLIP_benchmark loads with its own ``wds/`` builder
(classification with the folder's class names and templates; retrieval with its captions).
CLIP_benchmark runs in its own venv (numpy < 2.4); when that venv is missing the test FAILS
with the command creating it (``make test`` creates it before the suite), it is never skipped.
"""

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import clip_benchmark_env  # noqa: E402
from peer_clip_benchmark import (clip_benchmark_job, compare, compare_retrieval, compare_wds_classification,  # noqa: E402
                                 wds_job, write_peer_dataset, write_wds_classification, write_wds_retrieval)


@pytest.fixture(scope="module")
def peer_venv():
    if not clip_benchmark_env.is_ready(clip_benchmark_env.DEFAULT_VENV):
        pytest.fail(f"CLIP_benchmark venv missing at {clip_benchmark_env.DEFAULT_VENV}; "
                    f"create it once with: {clip_benchmark_env.CREATE_COMMAND} (make test does this)")
    return clip_benchmark_env.DEFAULT_VENV


@pytest.mark.timeout(600)
def test_metrics_and_predictions_equal_clip_benchmark(peer_venv, tiny_open_clip, tmp_path):
    from letitwag.harness.options import EvaluationOptions
    from letitwag.harness.prompts import load_prompts
    from letitwag.harness.runner import evaluate

    dataset = write_peer_dataset(tmp_path / "data", images=40, classes=6, seed=3)
    results = evaluate(EvaluationOptions(
        model=tiny_open_clip, dataset=dataset["hub_dir"], out=tmp_path / "run", cache_dir=tmp_path / "cache",
        batch_size=16, workers=0, bootstrap_samples=0, prompts="ensemble",
    ))
    arch, checkpoint = tiny_open_clip.split(":", 1)[1].split("/", 1)
    job = clip_benchmark_job(arch, checkpoint, str(Path(checkpoint).parent), dataset,
                             results["dataset"]["prompt_names"], list(load_prompts("ensemble").templates),
                             batch_size=16, workers=0)
    job["threads"] = 1
    report = clip_benchmark_env.run(job, peer_venv, timeout=540)
    comparison = compare(results, report)

    assert comparison["samples_compared"] == 40 and comparison["samples_missing"] == 0
    assert comparison["top1_agreement"] == 1.0
    for name in ("top1", "top5", "mean_per_class_recall"):
        assert comparison["letitwag"][name] == pytest.approx(comparison["clip_benchmark"][name], abs=1e-9), name
    # The comparison is not vacuous: CLIP_benchmark saw the same 80 templates and 6 classes.
    assert len(job["templates"]) == 80 and report["labels"] == [int(s) % 6 for s in report["samples"]]


def _arch_and_checkpoint(spec: str) -> tuple[str, str]:
    return tuple(spec.split(":", 1)[1].split("/", 1))


@pytest.mark.timeout(600)
def test_webdataset_classification_equals_clip_benchmark(peer_venv, tiny_open_clip, tmp_path):
    from letitwag.harness.options import EvaluationOptions
    from letitwag.harness.runner import evaluate

    templates = ["a photo of a {c}.", "a bad photo of the {c}.", "a {c} in a video game."]
    dataset = write_wds_classification(tmp_path / "wds_toy", images=40, classes=6, templates=templates, seed=4)
    results = evaluate(EvaluationOptions(
        model=tiny_open_clip, dataset=dataset["root"], out=tmp_path / "run", cache_dir=tmp_path / "cache",
        batch_size=16, workers=0, bootstrap_samples=0,
    ))
    arch, checkpoint = _arch_and_checkpoint(tiny_open_clip)
    job = {**wds_job("wds_classification", arch, checkpoint, str(Path(checkpoint).parent), dataset["root"], 16, 0),
           "threads": 1}
    report = clip_benchmark_env.run(job, peer_venv, timeout=540)
    comparison = compare_wds_classification(results, report)
    # CLIP_benchmark read the same classes, templates and labels from the folder
    assert report["classnames"] == dataset["classnames"] and report["templates"] == templates
    assert report["targets"] == dataset["labels"]
    assert comparison["samples_compared"] == 40 and comparison["samples_missing"] == 0
    assert comparison["top1_agreement"] >= 0.995
    assert abs(comparison["top1_delta_points"]) <= 0.1


@pytest.mark.timeout(600)
def test_webdataset_retrieval_recall_equals_clip_benchmark(peer_venv, tiny_open_clip, tmp_path):
    from letitwag.harness.options import EvaluationOptions
    from letitwag.harness.runner import evaluate

    dataset = write_wds_retrieval(tmp_path / "wds_captions", images=30, captions_per_image=5, seed=6, shards=3)
    results = evaluate(EvaluationOptions(
        model=tiny_open_clip, task="retrieval", dataset=dataset["root"], out=tmp_path / "run",
        cache_dir=tmp_path / "cache", batch_size=8, workers=0, bootstrap_samples=0,
    ))
    arch, checkpoint = _arch_and_checkpoint(tiny_open_clip)
    job = {**wds_job("wds_retrieval", arch, checkpoint, str(Path(checkpoint).parent), dataset["root"], 8, 0),
           "threads": 1}
    comparison = compare_retrieval(results, clip_benchmark_env.run(job, peer_venv, timeout=540))
    assert results["metrics"]["num_images"] == 30 and results["metrics"]["num_captions"] == 150
    for name, delta in comparison["delta_points"].items():
        assert abs(delta) <= 0.1, (name, comparison)
    # not vacuous: a random model ranks far from perfectly, so the recalls differ across k
    assert len({round(v, 6) for v in comparison["clip_benchmark"].values()}) > 2
