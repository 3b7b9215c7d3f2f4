"""Classification runs name the paper's concept of every class, and list the classes that are none.

Fixtures are CLIP_benchmark's webdataset layout and a plain image folder, in folders named like the
paper's datasets; the model is the tiny RANDOM-WEIGHT open_clip (plumbing only: the numbers mean
nothing, the checks are on the class -> concept join).
"""

import numpy as np
import pytest

from dataset_helpers import png
from peer_clip_benchmark import write_webdataset
from letitwag.harness.options import EvaluationOptions
from letitwag.harness.runner import evaluate
from letitwag.leaderboard.frequencies import class_concepts_for
from letitwag.leaderboard.submission import SubmissionRejected
from letitwag.tables import paper_table

NAMES = ["airplane", "automobile", "ship", "no such class"]  # CLIP_benchmark's CIFAR-10 spelling, plus a stranger


def _run(model, dataset, out, **options):
    return evaluate(EvaluationOptions(model=model, dataset=str(dataset), out=out, cache_dir=out.parent / "cache",
                                      workers=0, batch_size=8, bootstrap_samples=0, **options))


def test_webdataset_classes_join_frequencies_through_the_papers_concepts(tiny_open_clip, tmp_path):
    samples = [{"png": png((60 * label, 90, 200 - 40 * label), (24 + row, 20)), "cls": str(label).encode()}
               for row in range(8) for label in [row % len(NAMES)]]
    root = write_webdataset(tmp_path / "wds_vtab-cifar10", samples, classnames=NAMES, templates=["a photo of a {c}."])
    results = _run(tiny_open_clip, root, tmp_path / "run")

    concepts = results["dataset"]["concepts"]
    assert concepts["list"] == "cifar10"
    assert concepts["class_concepts"] == {"airplane": "airplane", "automobile": "car", "ship": "ship"}
    assert concepts["unmapped"] == ["no such class"]
    assert concepts["match"]["rename"] == 1 and concepts["match"]["exact"] == 2
    metrics = results["metrics"]
    assert metrics["frequency_unmatched"]["laion400m"] == ["no such class"]
    car = paper_table("laion400m").counts()["car"]
    bins = metrics["by_frequency_bin"]["laion400m"]
    car_bin = next(b for b in bins if b["bin"] == int(np.floor(np.log10(max(car, 1)))))
    assert car_bin["num_concepts"] >= 1 and sum(b["num_concepts"] for b in bins) == 3
    # the leaderboard rebuilds the same map from the class names, and refuses a tampered one
    assert class_concepts_for(results, results["dataset"]["class_names"], results["dataset"]["id"], "r") == \
        concepts["class_concepts"]
    concepts["unmapped"] = []
    with pytest.raises(SubmissionRejected, match="dataset.concepts differs from the board's mapping"):
        class_concepts_for(results, results["dataset"]["class_names"], results["dataset"]["id"], "r")

    unmapped_off = _run(tiny_open_clip, root, tmp_path / "off", extra={"concepts": "none"})
    assert unmapped_off["dataset"]["concepts"] is None
    assert "automobile" in unmapped_off["metrics"]["frequency_unmatched"]["laion400m"]


def test_image_folder_classes_map_too(tiny_open_clip, tmp_path):
    root = tmp_path / "cifar10"
    for label, name in enumerate(NAMES):
        for row in range(2):
            path = root / name / f"{row}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png((50 * label, 30 * row, 120), (22, 20 + row)))
    results = _run(tiny_open_clip, root, tmp_path / "folder")
    assert results["dataset"]["class_names"] == sorted(NAMES)
    assert results["dataset"]["concepts"]["class_concepts"]["automobile"] == "car"
    assert results["dataset"]["concepts"]["unmapped"] == ["no such class"]
