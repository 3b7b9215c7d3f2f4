"""CLIP_benchmark's webdataset layout and plain image folders for classification.

Fixtures are written by the test in the exact layouts (``peer_clip_benchmark.write_webdataset``:
``<root>/<split>/nshards.txt`` + ``N.tar``, ``classnames.txt``, ``zeroshot_classification_templates.txt``).
The model is the tiny RANDOM-WEIGHT open_clip (plumbing only).
"""

import io
import shutil
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest

from dataset_helpers import png
from peer_clip_benchmark import write_webdataset, write_wds_classification
from letitwag.errors import UserInputError
from letitwag.harness.data import open_dataset
from letitwag.harness.options import EvaluationOptions
from letitwag.harness.runner import evaluate
from letitwag.harness.wds import WdsRows, download_from_hub, index_shards

TEMPLATES = ["a photo of a {c}.", "a blurry photo of the {c}.", "art of the {c}."]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def wds_classification(tmp_path_factory):
    return write_wds_classification(tmp_path_factory.mktemp("wds") / "wds_toy", images=18, classes=4,
                                    templates=TEMPLATES, seed=5, size=(48, 40), shards=3)


def _run(model, dataset, out, **options):
    return evaluate(EvaluationOptions(model=model, dataset=str(dataset), out=out, cache_dir=out.parent / "cache",
                                      workers=0, batch_size=4, bootstrap_samples=20, **options))


def _predictions(results):
    return pq.read_table(f"{results['out_dir']}/predictions.parquet").to_pydict()


def test_webdataset_classification_equals_the_same_images_in_hub_layout(tiny_open_clip, wds_classification, tmp_path):
    import datasets

    ours = _run(tiny_open_clip, wds_classification["root"], tmp_path / "wds")
    assert ours["dataset"]["class_names"] == wds_classification["classnames"]
    assert ours["prompts"]["set"].endswith("zeroshot_classification_templates.txt")  # shipped templates by default
    assert ours["prompts"]["num_templates"] == len(TEMPLATES)
    assert ours["dataset"]["num_evaluated"] == 18 and ours["dataset"]["split"] == "test"

    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=wds_classification["classnames"])})
    (tmp_path / "hub" / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(
        {"image": [{"bytes": data, "path": None} for data in wds_classification["images"]],
         "label": wds_classification["labels"]}, features=features,
    ).to_parquet(str(tmp_path / "hub" / "data" / "test-00000-of-00001.parquet"))
    (tmp_path / "templates.txt").write_text("\n".join(TEMPLATES) + "\n")
    reference = _run(tiny_open_clip, tmp_path / "hub", tmp_path / "hf", prompts=str(tmp_path / "templates.txt"))
    assert ours["prompts"]["hash"] == reference["prompts"]["hash"]
    a, b = _predictions(ours), _predictions(reference)
    assert a["sample_index"] == b["sample_index"] == list(range(18))
    assert a["label"] == b["label"] == wds_classification["labels"]
    assert a["topk_ids"] == b["topk_ids"]
    assert ours["metrics"]["top1"] == reference["metrics"]["top1"]

    overridden = _run(tiny_open_clip, wds_classification["root"], tmp_path / "simple", prompts="simple")
    assert overridden["prompts"]["set"] == "simple" and overridden["prompts"]["num_templates"] == 1


def _fake_hub_cache(cache, repo, folder):
    """The Hugging Face cache layout snapshot_download reads offline: refs/main -> snapshots/<commit>/."""
    storage = cache / f"datasets--{repo.replace('/', '--')}"
    shutil.copytree(folder, storage / "snapshots" / COMMIT)
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(COMMIT)


def test_hub_id_goes_through_huggingface_hub(tiny_open_clip, wds_classification, tmp_path, monkeypatch):
    from huggingface_hub import constants

    _fake_hub_cache(tmp_path / "hf-cache", "clip-benchmark/wds_toy", wds_classification["root"])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub = _run(tiny_open_clip, "clip-benchmark/wds_toy", tmp_path / "hub")
    local = _run(tiny_open_clip, wds_classification["root"], tmp_path / "local")
    assert hub["dataset"]["revision"] == COMMIT and hub["dataset"]["id"] == "clip-benchmark/wds_toy"
    assert _predictions(hub) == _predictions(local)

    with pytest.raises(UserInputError, match="clip-benchmark/wds_absent.*cannot download it from the Hub"):
        open_dataset("clip-benchmark/wds_absent")
    # a repository elsewhere that is only named wds_* but holds parquet is left to the Hub-layout loader
    (tmp_path / "parquet" / "data").mkdir(parents=True)
    (tmp_path / "parquet" / "data" / "test-00000-of-00001.parquet").write_bytes(b"PAR1")
    _fake_hub_cache(tmp_path / "hf-cache", "someone/wds_parquet", tmp_path / "parquet")
    assert download_from_hub("someone/wds_parquet", None, None) is None
    _fake_hub_cache(tmp_path / "hf-cache", "clip-benchmark/wds_parquet_copy", tmp_path / "parquet")
    with pytest.raises(UserInputError, match="no <split>/nshards.txt"):  # clip-benchmark's own must be in the layout
        download_from_hub("clip-benchmark/wds_parquet_copy", None, None)


def _tar(path, members):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
        directory = tarfile.TarInfo("somedir")
        directory.type = tarfile.DIRTYPE
        archive.addfile(directory)


def test_members_are_grouped_as_webdataset_groups_them(tmp_path):
    red, green = png((200, 0, 0)), png((0, 200, 0))
    _tar(tmp_path / "0.tar", [
        ("a/x.jpg", green), ("a/x.png", red), ("a/x.cls", b"2"),  # png is preferred over jpg
        ("y.JPEG", green), ("y.cls", b" 1\n"),  # extensions are lower-cased
        ("z.cls", b"0"),  # no image: decoded as a corrupt sample
        ("y.cls", b"3"),  # a key seen before but not just before starts a new sample
        ("w.txt", b"first caption\nsecond caption"), ("w.webp", red), ("noextension", b"?"),
    ])
    samples = index_shards([tmp_path / "0.tar"])
    assert samples.keys == ["a/x", "y", "z", "y", "w"]
    assert samples.labels.tolist() == [2, 1, 0, 3, -1]
    assert samples.captions[4] == ["first caption", "second caption"] and samples.captions[0] is None
    rows = WdsRows(samples)
    assert rows[0]["image"]["bytes"] == red and rows[1]["image"]["bytes"] == green and rows[4]["image"]["bytes"] == red
    assert rows[2]["image"]["bytes"] is None and rows[3]["image"]["bytes"] is None


def test_a_sample_without_image_or_label_is_skipped_and_counted(tiny_open_clip, tmp_path):
    samples = [{"png": png((30 * i, 90, 200 - 20 * i)), "cls": str(i % 2).encode()} for i in range(6)]
    samples[2] = {"cls": b"1"}
    samples[4] = {"png": png((1, 2, 3)), "cls": b"7"}  # label outside classnames.txt
    root = write_webdataset(tmp_path / "ds", samples, classnames=["cat", "dog"], templates=["a {c}"])
    results = _run(tiny_open_clip, root, tmp_path / "run")
    assert results["skipped_samples"] == {"corrupt_image": 1, "missing_label": 1}
    assert results["skipped_sample_indices"] == [2, 4]


@pytest.mark.parametrize("case, message", [
    ("multilabel", "multi-label"),
    ("retrieval", "retrieval dataset.*--task retrieval"),
    ("missing_shard", "says 2 shards but .*1.tar is missing"),
    ("not_a_tar", "not a readable uncompressed tar"),
    ("no_classnames", "classnames.txt: missing; pass the class names"),
    ("bad_split", "no split 'validation'"),
])
def test_layout_errors_are_one_clear_line(tmp_path, case, message):
    samples = [{"png": png((10, 20, 30)), "cls": b"0"}]
    root = write_webdataset(tmp_path / "ds", samples, shards=1, classnames=None if case == "no_classnames" else ["a"],
                            dataset_type={"multilabel": "multilabel", "retrieval": "retrieval"}.get(case))
    if case == "missing_shard":
        (root / "test" / "nshards.txt").write_text("2\n")
    if case == "not_a_tar":
        (root / "test" / "0.tar").write_bytes(b"\x1f\x8b compressed or garbage")
    with pytest.raises(UserInputError, match=message):
        open_dataset(str(root), split="validation" if case == "bad_split" else None)


def test_plain_image_folder(tiny_open_clip, tmp_path):
    for label, name in enumerate(["zebra", "cat", "dog"]):
        for index in range(3):
            (tmp_path / "images" / name).mkdir(parents=True, exist_ok=True)
            (tmp_path / "images" / name / f"{index}.png").write_bytes(png((80 * label, 40 * index, 90), (20 + index, 18)))
    results = _run(tiny_open_clip, tmp_path / "images", tmp_path / "run", prompts="simple")
    assert results["dataset"]["class_names"] == ["cat", "dog", "zebra"]  # sorted folder names, as ImageFolder
    labels = _predictions(results)["label"]
    assert sorted(np.bincount(labels).tolist()) == [3, 3, 3] and results["dataset"]["num_evaluated"] == 9
