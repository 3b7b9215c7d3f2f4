"""Correctness against a peer: letitwag and CLIP_benchmark 1.6.2 agree exactly on the same inputs.

Same tiny random-weight open_clip checkpoint (loaded from one safetensors file by both), the same
40 JPEGs, the same class names and the paper's 80 templates. CLIP_benchmark runs in its own venv
(numpy < 2.4); when that venv is missing the test FAILS with the command creating it
(``make test`` creates it before the suite), it is never skipped.
"""

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import clip_benchmark_env  # noqa: E402
from peer_clip_benchmark import clip_benchmark_job, compare, write_peer_dataset  # noqa: E402


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
