"""End to end: tiny open_clip (and transformers) models on small HF-layout datasets, through the CLI."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dataset_helpers import CLASS_IDS, make_dataset, write_hub_layout
from letitwag.cli import main
from letitwag.errors import UserInputError
from letitwag.harness import EvaluationOptions, evaluate
from letitwag.harness.metrics import classification_metrics
from letitwag.harness.results import read_predictions

HERE = Path(__file__).parent


def _run(spec, dataset, out, cache, *extra, prompts="simple"):
    argv = ["evaluate", "--model", spec, "--dataset", str(dataset), "--out", str(out), "--workers", "0",
            "--bootstrap-samples", "50", "--prompts", prompts]
    argv += ["--cache-dir", str(cache)] if cache else ["--no-cache"]
    assert main(argv + list(extra)) == 0
    return json.loads((Path(out) / "results.json").read_text())


def _predictions(out):
    return pq.read_table(Path(out) / "predictions.parquet").to_pydict()


def test_end_to_end_detects_columns_and_writes_formats(tiny_open_clip, hub_dataset, tmp_path):
    results = _run(tiny_open_clip, hub_dataset, tmp_path / "run", tmp_path / "cache", prompts="ensemble")
    dataset = results["dataset"]
    assert (dataset["image_column"], dataset["label_column"], dataset["split"]) == ("picture", "concept", "test")
    assert dataset["class_names"] == CLASS_IDS
    assert dataset["prompt_names"][:4] == ["Harriss Hawk", "A300B4", "eastern hog-nosed snake", "Acadian Flycatcher"]
    assert results["format"] == "letitwag.results/1" and results["task"] == "classification"
    assert results["model"]["random_weights"] is True and results["model"]["plumbing_model"] is True
    assert results["prompts"]["num_templates"] == 80 and results["config"]["limit"] is None
    # the corrupt row 5 is skipped and counted, not a crash
    assert results["skipped_samples"]["corrupt_image"] == 1 and results["skipped_sample_indices"] == [5]
    predictions = _predictions(tmp_path / "run")
    assert predictions["sample_index"] == [i for i in range(12) if i != 5]
    assert predictions["label"] == [i % 6 for i in range(12) if i != 5]
    assert all(len(ids) == 5 == len(set(ids)) and set(ids) <= set(range(6)) for ids in predictions["topk_ids"])
    assert all(scores == sorted(scores, reverse=True) for scores in predictions["topk_scores"])
    # the leaderboard's recomputation from the predictions gives the reported metrics
    _, labels, topk = read_predictions(tmp_path / "run" / "predictions.parquet")
    recomputed = classification_metrics(labels, topk, dataset["class_names"], bootstrap_samples=50, seed=0)
    assert recomputed == results["metrics"]
    top1 = np.mean([ids[0] == label for ids, label in zip(predictions["topk_ids"], predictions["label"])])
    top5 = np.mean([label in ids for ids, label in zip(predictions["topk_ids"], predictions["label"])])
    assert results["metrics"]["top1"] == pytest.approx(top1) and results["metrics"]["top5"] == pytest.approx(top5)
    assert set(results["metrics"]["by_frequency_bin"]) >= {"laion400m", "cc3m"}


def test_matches_a_direct_open_clip_computation(tiny_open_clip, hub_dataset, tmp_path):
    """Scores equal a plain open_clip zero-shot computation (normalise-average-normalise)."""
    import datasets
    import torch
    from PIL import Image
    import io

    from letitwag.harness.prompts import load_prompts
    from letitwag.models import load_encoder

    results = _run(tiny_open_clip, hub_dataset, tmp_path / "run", None)
    encoder = load_encoder(tiny_open_clip)
    model, tokenizer = encoder.model, encoder.tokenizer
    template = load_prompts("simple").templates[0]
    with torch.no_grad():
        text = model.encode_text(tokenizer([template.replace("{c}", n) for n in results["dataset"]["prompt_names"]]))
        text = text / text.norm(dim=-1, keepdim=True)
        rows = datasets.load_dataset(str(hub_dataset), split="test").cast_column("picture", datasets.Image(decode=False))
        expected = []
        for i in [0, 4, 11]:
            image = Image.open(io.BytesIO(rows[i]["picture"]["bytes"])).convert("RGB")
            feature = model.encode_image(encoder.preprocess(image)[None])
            feature = feature / feature.norm(dim=-1, keepdim=True)
            expected.append((encoder.logit_scale * feature @ text.T)[0])
    predictions = _predictions(tmp_path / "run")
    for i, scores in zip([0, 4, 11], expected):
        row = predictions["sample_index"].index(i)
        top = torch.topk(scores, 5)
        assert predictions["topk_ids"][row] == top.indices.tolist()
        np.testing.assert_allclose(predictions["topk_scores"][row], top.values.numpy(), rtol=1e-5, atol=1e-5)


def test_rerun_reuses_caches_with_identical_predictions(tiny_open_clip, hub_dataset, tmp_path):
    first = _run(tiny_open_clip, hub_dataset, tmp_path / "a", tmp_path / "cache", "--chunk-size", "4")
    second = _run(tiny_open_clip, hub_dataset, tmp_path / "b", tmp_path / "cache", "--chunk-size", "4")
    assert first["cache"]["classifier"] == "computed" and second["cache"]["classifier"] == "reused"
    assert first["cache"]["image_features"]["chunks_computed"] == 3
    assert second["cache"]["image_features"] == dict(first["cache"]["image_features"], chunks_computed=0, chunks_reused=3)
    assert _predictions(tmp_path / "a") == _predictions(tmp_path / "b")
    assert first["dataset"]["fingerprint"] == second["dataset"]["fingerprint"]
    # a different prompt set builds another classifier but reuses the image features
    third = _run(tiny_open_clip, hub_dataset, tmp_path / "c", tmp_path / "cache", "--chunk-size", "4", prompts="class")
    assert third["cache"]["classifier"] == "computed" and third["cache"]["image_features"]["chunks_reused"] == 3


def test_resume_after_sigkill_gives_identical_predictions(tiny_open_clip, tmp_path, monkeypatch):
    dataset = write_hub_layout(make_dataset(16), tmp_path / "ds")
    env = dict(os.environ, LETITWAG_TEST_SPEC=tiny_open_clip, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "letitwag.evaluate", "--model", "python:harness_models:slow", "--dataset", str(dataset),
               "--out", str(tmp_path / "killed"), "--cache-dir", str(cache), "--workers", "0", "--batch-size", "2",
               "--chunk-size", "2", "--bootstrap-samples", "20", "--prompts", "simple"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    try:
        while time.time() < deadline and not list(cache.glob("features/*/chunk-*.npz")):
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    done = sorted(p.name for p in cache.glob("features/*/chunk-*.npz"))
    assert 1 <= len(done) < 8, done
    assert not (tmp_path / "killed" / "results.json").exists()
    mtimes = {p: p.stat().st_mtime_ns for p in cache.glob("features/*/chunk-*.npz")}
    # resume (and a fresh uncached run to compare with) in this process: same CLI, no delay
    monkeypatch.setenv("LETITWAG_TEST_SPEC", tiny_open_clip)
    monkeypatch.setenv("LETITWAG_TEST_DELAY", "0")
    assert main(["evaluate", *command[3:]]) == 0
    results = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert results["cache"]["image_features"]["chunks_reused"] == len(done)
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())  # finished chunks not rewritten
    assert main(["evaluate", *command[3:8], str(tmp_path / "fresh"), "--no-cache", *command[11:]]) == 0
    assert _predictions(tmp_path / "killed") == _predictions(tmp_path / "fresh")


def test_save_to_disk_dataset_with_label_override_and_classnames(tiny_open_clip, tmp_path):
    dataset = make_dataset(6)
    dataset.save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "names.txt").write_text("harris hawk\nairliner\nsnake\nflycatcher\nsmall airliner\ndog\n")
    results = _run(tiny_open_clip, tmp_path / "saved", tmp_path / "run", None, "--label-column", "concept",
                   "--image-column", "picture", "--classnames", str(tmp_path / "names.txt"), prompts="class")
    assert results["dataset"]["split"] == "train" and results["dataset"]["class_names"] == CLASS_IDS
    assert results["dataset"]["prompt_names"] == ["harris hawk", "airliner", "snake", "flycatcher", "small airliner", "dog"]
    assert results["prompts"]["set"] == "class" and results["skipped_samples"]["corrupt_image"] == 0


def test_limit_is_a_seeded_subset_marked_in_results(tiny_open_clip, hub_dataset, tmp_path):
    results = _run(tiny_open_clip, hub_dataset, tmp_path / "run", None, "--limit", "5", "--seed", "3", "--workers", "2")
    _run(tiny_open_clip, hub_dataset, tmp_path / "again", None, "--limit", "5", "--seed", "3")
    assert results["config"]["limit"] == 5 and results["dataset"]["num_samples"] == 5
    assert _predictions(tmp_path / "run")["sample_index"] == _predictions(tmp_path / "again")["sample_index"]


def test_out_of_memory_halves_the_batch(tiny_open_clip, hub_dataset, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("LETITWAG_TEST_SPEC", tiny_open_clip)
    options = EvaluationOptions(model="python:harness_models:small_memory", dataset=str(hub_dataset), out=tmp_path / "run",
                                batch_size=8, workers=0, no_cache=True, bootstrap_samples=0, prompts="simple")
    with caplog.at_level("WARNING"):
        results = evaluate(options)
    reference = _run(tiny_open_clip, hub_dataset, tmp_path / "ref", None, "--batch-size", "8")
    assert "retrying with 4" in caplog.text and "retrying with 2" in caplog.text
    assert results["metrics"]["top1"] == reference["metrics"]["top1"]
    assert _predictions(tmp_path / "run")["topk_ids"] == _predictions(tmp_path / "ref")["topk_ids"]


def test_transformers_model_through_the_harness(tmp_path, hub_dataset):
    from letitwag.models.tiny import build_tiny_transformers_clip

    spec = build_tiny_transformers_clip(tmp_path / "hf")
    results = _run(spec, hub_dataset, tmp_path / "run", None)
    assert results["model"]["adapter"] == "transformers" and results["dataset"]["num_evaluated"] == 11


@pytest.mark.parametrize(
    "argv, message",
    [
        pytest.param(["--device", "cuda"], "no CUDA device", marks=pytest.mark.skipif(
            __import__("torch").cuda.is_available(), reason="checks the error on machines without CUDA")),
        (["--prompts", "missing-templates.txt"], "not a bundled set"),
        (["--split", "validation"], "no split 'validation'; it has: test"),
        (["--image-column", "nope"], "no column 'nope'"),
        (["--label-column", "note"], "label column 'note' is string"),
        (["--model", "open_clip:ViT-B-23/laion2b_s34b_b79k"], "did you mean: ViT-B-32"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny_open_clip, hub_dataset, tmp_path, capsys, argv, message):
    base = ["evaluate", "--model", tiny_open_clip, "--dataset", str(hub_dataset), "--no-cache", "--workers", "0",
            "--out", str(tmp_path / "run")]
    assert main(base + argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("letitwag evaluate: error:") and message in error


def test_unknown_task_is_rejected(tiny_open_clip, hub_dataset, capsys):
    argv = ["evaluate", "--model", tiny_open_clip, "--dataset", str(hub_dataset), "--no-cache", "--task", "detection"]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse may reject it as an invalid choice
        code = exit_.code
    assert code == 2 and "detection" in capsys.readouterr().err


def test_dataset_without_label_column(tiny_open_clip, tmp_path):
    dataset = write_hub_layout(make_dataset(4, with_label=False), tmp_path / "nolabel", shards=1)
    with pytest.raises(UserInputError, match="no ClassLabel column.*picture \\(Image\\), note \\(Value\\)"):
        evaluate(EvaluationOptions(model=tiny_open_clip, dataset=str(dataset), no_cache=True, workers=0))


def test_model_returning_nan_is_a_clear_error(tiny_open_clip, hub_dataset, monkeypatch):
    from letitwag.models import ModelOutputError

    monkeypatch.setenv("LETITWAG_TEST_SPEC", tiny_open_clip)
    with pytest.raises(ModelOutputError, match="NaN"):
        evaluate(EvaluationOptions(model="python:harness_models:nan_images", dataset=str(hub_dataset), no_cache=True,
                                   workers=0, prompts="simple"))


def test_python_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "letitwag.evaluate", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for option in ("--model", "--prompts", "--limit", "--precision", "--trust-remote-code", "examples:"):
        assert option in result.stdout


def test_cpu_streams_give_the_same_predictions_as_one_stream(tiny_open_clip, hub_dataset, tmp_path):
    one = _run(tiny_open_clip, hub_dataset, tmp_path / "one", None, "--cpu-streams", "1", "--batch-size", "3")
    three = _run(tiny_open_clip, hub_dataset, tmp_path / "three", None, "--cpu-streams", "3", "--batch-size", "3")
    assert one["profile"]["image_streams"] == 1 and three["profile"]["image_streams"] == 3
    assert three["config"]["cpu_streams"] == 3 and one["profile"]["images_encoded"] == 11
    first, second = _predictions(tmp_path / "one"), _predictions(tmp_path / "three")
    assert first["sample_index"] == second["sample_index"] and first["topk_ids"] == second["topk_ids"]
    np.testing.assert_allclose(first["topk_scores"], second["topk_scores"], rtol=1e-5)
    assert one["metrics"] == three["metrics"]


def test_cpu_streams_must_be_positive(tiny_open_clip, hub_dataset, tmp_path, capsys):
    argv = ["evaluate", "--model", tiny_open_clip, "--dataset", str(hub_dataset), "--out", str(tmp_path / "run"),
            "--workers", "0", "--no-cache", "--prompts", "simple", "--cpu-streams", "0"]
    assert main(argv) != 0
    assert "--cpu-streams must be at least 1" in capsys.readouterr().err
