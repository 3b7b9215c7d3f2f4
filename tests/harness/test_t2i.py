"""The t2i task end to end with deterministic python: fakes: exact metric values, resume, bad input."""

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

from letitwag.cli import main
from letitwag.harness.t2i import read_t2i_predictions, t2i_metrics
from letitwag.harness.t2i.generation import image_seed
from test_t2i_fakes import CONCEPTS, image_colour, write_colour_dataset

HERE = Path(__file__).parent
GENERATOR = "python:test_t2i_fakes:colour_generator"
JUDGE = "python:test_t2i_fakes:colour_judge"


@pytest.fixture(scope="module")
def colour_dataset(tmp_path_factory):
    return write_colour_dataset(tmp_path_factory.mktemp("t2i") / "colours")


def _argv(dataset, out, *extra, model=GENERATOR):
    return ["evaluate", "--task", "t2i", "--model", model, "--judge", JUDGE, "--judge-prompts", "simple",
            "--dataset", str(dataset), "--out", str(out), "--no-cache", "--workers", "0",
            "--bootstrap-samples", "20", "--images-per-prompt", "3", "--generation-batch-size", "2", *extra]


def _run(dataset, out, *extra):
    assert main(_argv(dataset, out, *extra)) == 0
    return json.loads((Path(out) / "results.json").read_text())


def _hand_clip(prompt, seed):
    """CLIPScore of the fake judge: cosine of the image colour with the prompt's colour word."""
    from test_t2i_fakes import TEXT_VECTORS

    colour = np.array(image_colour(prompt, seed), dtype=float)
    text = np.array(next(v for w, v in TEXT_VECTORS.items() if w in prompt))
    return max(100 * colour @ text / np.linalg.norm(colour) / np.linalg.norm(text), 0.0)


def test_metrics_equal_hand_computation(colour_dataset, tmp_path):
    prompt_file = tmp_path / "prompts.json"
    prompt_file.write_text(json.dumps({"blue_jay": ["a blue jay on a branch", "blue jay in the snow"]}))
    results = _run(colour_dataset, tmp_path / "run", "--prompt-file", str(prompt_file),
                   "--retrieval-judge", JUDGE)
    rows = pq.read_table(tmp_path / "run" / "predictions.parquet").to_pylist()
    expected_prompts = {0: ["A photo of a red panda."], 1: ["A photo of a green tree frog."],
                        2: ["a blue jay on a branch", "blue jay in the snow"]}
    assert [(r["concept_index"], r["prompt"], r["image_index"]) for r in rows] == [
        (c, p, i) for c, prompts in expected_prompts.items() for p in prompts for i in range(3)]
    for row in rows:
        assert row["seed"] == image_seed(0, CONCEPTS[row["concept_index"]], row["prompt"], row["image_index"])
        assert (tmp_path / "run" / row["image_path"]).is_file()
        assert row["clip_score"] == pytest.approx(_hand_clip(row["prompt"], row["seed"]), abs=1e-4)
    # the judge sees red/magenta as red, green as green, and the (green) blue-jay images as green
    assert [r["topk_ids"][0] for r in rows] == [0] * 3 + [1] * 3 + [1] * 6
    # retrieval: red and green images find their own concept first; the green "blue jay" images
    # find both green real images first and the blue one third
    assert [r["retrieval_rank"] for r in rows] == [1] * 6 + [3] * 6
    red = [_hand_clip(r["prompt"], r["seed"]) for r in rows[:3]]
    m = results["metrics"]
    assert m["judge_top1"] == pytest.approx(6 / 12) and m["judge_top5"] is None
    assert m["judge_mean_per_class_recall"] == pytest.approx(2 / 3)
    assert m["per_class_accuracy"] == {"red_panda": 1.0, "green_tree_frog": 1.0, "blue_jay": 0.0}
    assert m["num_prompts"] == 4 and m["num_images"] == 12
    assert m["expected_clip_score"] == pytest.approx((np.mean(red) + 100 + 0 + 0) / 4, abs=1e-4)
    assert m["max_clip_score"] == pytest.approx((max(red) + 100 + 0 + 0) / 4, abs=1e-4)
    assert m["per_class_clip_score"]["blue_jay"] == 0.0 and m["per_class_max_clip_score"]["green_tree_frog"] == pytest.approx(100)
    assert (m["retrieval_cmc@1"], m["retrieval_cmc@2"], m["retrieval_cmc@5"]) == (0.5, 0.5, 1.0)
    assert results["task"] == "t2i" and results["prompts"]["concepts_from_prompt_file"] == ["blue_jay"]
    assert results["generation"]["concepts_generated"] == 3 and results["retrieval"]["gallery_images"] == 6
    # the leaderboard's recomputation from predictions.parquet alone gives the reported metrics
    recomputed = t2i_metrics(**read_t2i_predictions(tmp_path / "run" / "predictions.parquet"),
                             class_names=results["dataset"]["class_names"], bootstrap_samples=20, seed=0)
    assert recomputed == m
    # images carry their prompt and seed
    from PIL import Image

    with Image.open(tmp_path / "run" / rows[0]["image_path"]) as image:
        assert image.text["prompt"] == rows[0]["prompt"] and image.text["seed"] == str(rows[0]["seed"])


def test_rerun_reuses_concepts_and_rejects_other_settings(colour_dataset, tmp_path, monkeypatch, capsys):
    log = tmp_path / "generated.log"
    monkeypatch.setenv("LETITWAG_T2I_LOG", str(log))
    first = _run(colour_dataset, tmp_path / "run", "--limit", "2")
    assert first["generation"]["concepts_generated"] == 2 and first["dataset"]["num_concepts_selected"] == 2
    calls = log.read_text()
    again = _run(colour_dataset, tmp_path / "run", "--limit", "2")
    assert log.read_text() == calls and again["generation"]["concepts_reused"] == 2
    assert again["metrics"] == first["metrics"] and "retrieval_cmc@1" not in first["metrics"]
    columns = read_t2i_predictions(tmp_path / "run" / "predictions.parquet")
    assert "retrieval_rank" not in columns  # all-null column: no retrieval judge
    assert t2i_metrics(**columns, class_names=CONCEPTS, bootstrap_samples=20, seed=0) == first["metrics"]
    folders = sorted(p.name for p in (tmp_path / "run" / "images").iterdir())
    assert main(_argv(colour_dataset, tmp_path / "run", "--images-per-prompt", "2")) != 0
    assert "generated with other settings" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "run" / "images").iterdir()) == folders  # nothing generated


def test_resume_after_sigkill_skips_finished_concepts(colour_dataset, tmp_path, monkeypatch):
    out, log = tmp_path / "run", tmp_path / "generated.log"
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "LETITWAG_T2I_DELAY": "1.5", "LETITWAG_T2I_LOG": str(log)}
    command = [sys.executable, "-m", "letitwag.evaluate", *_argv(colour_dataset, out)[1:]]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_record = out / "images" / "00000" / "done.json"
    deadline = time.monotonic() + 180
    while not first_record.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first_record.exists() and not (out / "images" / "00002" / "done.json").exists()
    assert not (out / "results.json").exists()
    record_before = first_record.stat().st_mtime_ns
    killed_calls = log.read_text().splitlines()
    log.unlink()
    monkeypatch.setenv("LETITWAG_T2I_LOG", str(log))  # resume in this process, without the delay
    results = _run(colour_dataset, out)
    resumed_calls = log.read_text().splitlines()
    assert "A photo of a red panda." in killed_calls and "A photo of a red panda." not in resumed_calls
    assert "A photo of a blue jay." in resumed_calls and first_record.stat().st_mtime_ns == record_before
    assert results["generation"]["concepts_reused"] >= 1
    # identical to an uninterrupted run
    monkeypatch.delenv("LETITWAG_T2I_LOG")
    clean = _run(colour_dataset, tmp_path / "clean")
    assert pq.read_table(out / "predictions.parquet").equals(pq.read_table(tmp_path / "clean" / "predictions.parquet"))
    assert results["metrics"] == clean["metrics"]


@pytest.mark.parametrize("factory, message", [
    ("too_many_images", "returned 4 images for 2 prompts|returned 3 objects for 2 prompts"),
    ("nan_arrays", "expected one PIL image|expected a PIL image"),
])
def test_broken_generators_fail_with_one_line(colour_dataset, tmp_path, capsys, factory, message):
    assert main(_argv(colour_dataset, tmp_path / "run", model=f"python:test_t2i_fakes:{factory}")) != 0
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "test_t2i_fakes" in error and any(part in error for part in message.split("|"))


def test_bad_judge_and_prompt_file_are_one_line_errors(colour_dataset, tmp_path, capsys):
    argv = _argv(colour_dataset, tmp_path / "run")
    judge = argv.index(JUDGE)
    assert main(argv[:judge] + ["open_clp:ViT-B-32"] + argv[judge + 1:]) != 0
    assert "did you mean: open_clip" in capsys.readouterr().err
    assert main(argv + ["--retrieval-judge", "open_clip:ViT-B-23"]) != 0
    assert "did you mean: ViT-B-32" in capsys.readouterr().err
    assert not (tmp_path / "run" / "images").exists()  # rejected before generating anything
    bad = tmp_path / "prompts.json"
    bad.write_text(json.dumps({"red_pand": ["a red panda"]}))
    assert main(argv + ["--prompt-file", str(bad)]) != 0
    assert "did you mean: red_panda" in capsys.readouterr().err
    assert main(argv + ["--images-per-prompt", "0"]) != 0
    assert "--images-per-prompt must be an integer >= 1" in capsys.readouterr().err
