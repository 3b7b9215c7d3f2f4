"""``evaluate --suite paper`` over a data folder holding some of the paper's datasets, then ``analyze`` on it.

The folder is written by the test in the exact layouts a user downloads (CLIP_benchmark's webdataset
exports named ``wds_vtab-cifar10`` / ``wds_mscoco_captions``, Let it Wag! in the HF Hub layout), one
dataset folder is broken and the rest are absent. The model is the tiny RANDOM-WEIGHT open_clip
(plumbing only: the numbers mean nothing; the checks are on what is run, reused, listed and fitted).
"""

import json

import pytest

from dataset_helpers import make_dataset, png, write_hub_layout
from peer_clip_benchmark import write_webdataset, write_wds_retrieval
from letitwag.cli import main
from letitwag.downstream import downstream_datasets
from letitwag.harness import runner
from letitwag.harness.options import EvaluationOptions
from letitwag.harness.suite import run_suite

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat"]  # CLIP_benchmark's spelling: the paper counts "car"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    samples = [{"png": png((50 * (row % 4), 20 * row % 255, 180), (24 + row, 22)), "cls": str(row % 4).encode()}
               for row in range(12)]
    write_webdataset(root / "wds_vtab-cifar10", samples, classnames=CIFAR_NAMES, templates=["a photo of a {c}."])
    write_wds_retrieval(root / "wds_mscoco_captions", images=12, captions_per_image=6, seed=3, size=(32, 28),
                        shards=1)
    write_hub_layout(make_dataset(12), root / "Let-It-Wag", split="train", shards=1)
    (root / "cub").mkdir()  # there, but nothing in it: fails with its reason
    return root


def _suite_cli(model, data_root, out, *extra):
    return main(["--log-level", "WARNING", "evaluate", "--suite", "paper", "--model", model, "--data-root",
                 str(data_root), "--offline", "--out", str(out), "--workers", "0", "--batch-size", "8",
                 "--bootstrap-samples", "20", "--min-concept-images", "2", "--cache-dir", str(out.parent / "cache"),
                 *extra])


def _options(model, out, **changes):
    base = dict(model=model, out=out, workers=0, batch_size=8, bootstrap_samples=20, cache_dir=out.parent / "cache",
                extra={"compile": "off", "captions_per_image": None, "min_concept_images": 2})
    return EvaluationOptions(**{**base, **changes})


def test_suite_runs_what_is_there_lists_the_rest_resumes_and_feeds_the_analysis(tiny_open_clip, data_root, tmp_path,
                                                                               capsys, monkeypatch):
    out = tmp_path / "runs" / "tiny"
    assert _suite_cli(tiny_open_clip, data_root, out) == 1  # one dataset failed
    printed = capsys.readouterr().out
    suite = json.loads((out / "suite.json").read_text())
    by_name = {entry["name"]: entry for entry in suite["datasets"]}
    assert list(by_name) == [dataset.name for dataset in downstream_datasets()]  # every dataset of the paper
    assert {n for n, e in by_name.items() if e["status"] == "evaluated"} == {"let-it-wag", "cifar10", "coco"}
    assert suite["summary"] == {"evaluated": 3, "reused": 0, "missing": 18, "failed": 1}
    assert by_name["cub"]["error"].startswith("dataset ") and by_name["cub"]["how_to_get"]
    imagenet = by_name["imagenet"]
    assert imagenet["status"] == "missing" and imagenet["how_to_get"] == (
        "hf download clip-benchmark/wds_imagenet1k --repo-type dataset --include '*.txt' --include 'test/*' "
        f"--local-dir {data_root / 'wds_imagenet1k'}")
    assert "class folders" in by_name["birdsnap"]["how_to_get"]
    assert f"missing   imagenet         {imagenet['how_to_get']}" in printed

    cifar = json.loads((out / "cifar10" / "results.json").read_text())
    assert cifar["dataset"]["concepts"]["class_concepts"]["automobile"] == "car"
    assert by_name["cifar10"]["metrics"]["top1"] == cifar["metrics"]["top1"]
    coco = json.loads((out / "coco" / "results.json").read_text())
    assert coco["task"] == "retrieval" and coco["dataset"]["captions_per_image"] == 5  # the paper's five
    assert coco["dataset"]["num_captions"] == 60 and coco["concepts"]["list"] == "coco" and coco["metrics"]["per_concept"]

    # a rerun loads no model and evaluates nothing (a failed dataset would be tried again: the broken folder
    # goes); a result written with other settings, or lost, is redone
    (data_root / "cub").rmdir()
    stamps = {name: (out / name / "results.json").stat().st_mtime_ns for name in ("let-it-wag", "cifar10", "coco")}
    monkeypatch.setattr(runner, "load_model", lambda options: pytest.fail("a complete suite loaded the model"))
    again = run_suite(_options(tiny_open_clip, out), data_root, hub=False)
    assert again["summary"] == {"evaluated": 0, "reused": 3, "missing": 19, "failed": 0}
    assert stamps == {name: (out / name / "results.json").stat().st_mtime_ns for name in stamps}
    monkeypatch.undo()
    cifar["config"]["seed"] = 7
    (out / "cifar10" / "results.json").write_text(json.dumps(cifar))
    (out / "coco" / "results.json").unlink()  # as after a kill during the dataset
    redone = run_suite(_options(tiny_open_clip, out), data_root, hub=False)
    assert {e["name"] for e in redone["datasets"] if e["status"] == "evaluated"} == {"cifar10", "coco"}
    assert json.loads((out / "cifar10" / "results.json").read_text())["config"]["seed"] == 0

    report = tmp_path / "report"
    assert main(["--log-level", "WARNING", "analyze", "--results", str(out), "--table", "paper:laion400m",
                 "--bootstrap", "50", "--out", str(report)]) == 0
    analysis = json.loads((report / "analysis.json").read_text())
    scopes = {(fit["task"], fit["metric"], fit["dataset_scope"]) for fit in analysis["fits"]}
    assert ("classification", "per_class_accuracy", "cifar10") in scopes
    assert ("classification", "per_class_accuracy", "let-it-wag") in scopes
    assert ("classification", "per_class_accuracy", "pooled") in scopes  # the paper's pool: CIFAR-10 here
    for direction in ("text_to_image", "image_to_text"):
        for k in (1, 5, 10):
            assert ("retrieval", f"{direction}_recall@{k}", "coco") in scopes
            assert ("retrieval", f"{direction}_recall@{k}", "pooled") in scopes
    cifar_fit = next(f for f in analysis["fits"] if f["dataset_scope"] == "cifar10")
    assert cifar_fit["n_concepts"] == 4 and analysis["join"]["methods"]["rename"] >= 1  # automobile -> car
    joined = (report / "joined.csv").read_text()
    assert '"automobile","car","rename"' in joined
    lacking = {item["dataset"] for item in analysis["suites"][0]["not_evaluated"]}
    assert "cub" in lacking and "imagenet" in lacking and "cifar10" not in lacking
    assert "wds_imagenet1k" in (report / "index.html").read_text()  # the report says how to get what is missing
    drawn = [figure["title"] for figure in analysis["figures"]]
    assert any("text_to_image_recall@10" in title for title in drawn)
    assert not any("recall@1 " in title for title in drawn)


def test_suite_refuses_what_it_cannot_do(tiny_open_clip, data_root, tmp_path, capsys):
    out = tmp_path / "runs"
    assert _suite_cli(tiny_open_clip, data_root, out, "--dataset", "some/set") == 2
    assert "--suite chooses the datasets" in capsys.readouterr().err
    assert _suite_cli(tiny_open_clip, tmp_path / "nowhere", out) == 2
    assert "--data-root" in capsys.readouterr().err
