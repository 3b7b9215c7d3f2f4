"""Zero-shot image-text retrieval: recall definitions, ranks, layouts, caches, concepts, the CLI.

Models are the tiny RANDOM-WEIGHT open_clip (plumbing only): the numbers mean nothing, the
checks are that every layout gives the same ranks and that every metric follows from the ranks.
"""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from dataset_helpers import png
from peer_clip_benchmark import write_webdataset, write_wds_retrieval
from letitwag.cli import main
from letitwag.errors import UserInputError
from letitwag.harness.options import EvaluationOptions
from letitwag.harness.retrieval import positive_ranks
from letitwag.harness.retrieval_metrics import retrieval_metrics, retrieval_metrics_from_predictions
from letitwag.harness.runner import evaluate


def test_recall_follows_the_clip_definition_from_ranks():
    # three images; image 0 has captions 0-2, image 7 captions 3-4, image 9 caption 5
    image_index = np.array([0, 0, 0, 7, 7, 9])
    t2i = np.array([1, 4, 12, 2, 6, 1])
    i2t = np.array([9, 3, 30, 11, 10, 1])  # image 0's best caption ranks 3, image 7's 10, image 9's 1
    concepts = [["dog"], ["dog", "frisbee"], [], ["dog"], ["cat"], ["frisbee"]]
    metrics = retrieval_metrics(image_index, t2i, i2t, concepts, bootstrap_samples=0, min_concept_images=2,
                                frequency_counts={"toy": {"dog": 5000, "frisbee": 40, "cat": 3}})
    assert (metrics["num_captions"], metrics["num_images"]) == (6, 3)
    assert metrics["text_to_image_recall@1"] == pytest.approx(2 / 6)
    assert metrics["text_to_image_recall@5"] == pytest.approx(4 / 6)
    assert metrics["text_to_image_recall@10"] == pytest.approx(5 / 6)
    assert metrics["image_to_text_recall@1"] == pytest.approx(1 / 3)  # at least one positive in the top k
    assert metrics["image_to_text_recall@5"] == pytest.approx(2 / 3)
    assert metrics["image_to_text_recall@10"] == pytest.approx(3 / 3)
    # per concept: captions that mention it (text->image), images whose captions mention it (image->text)
    dog = metrics["per_concept"]["dog"]
    assert dog["text_to_image_recall@1"] == pytest.approx(1 / 3) and dog["text_to_image_recall@5"] == pytest.approx(1)
    assert dog["image_to_text_recall@5"] == pytest.approx(1 / 2) and dog["image_to_text_recall@10"] == pytest.approx(1)
    assert metrics["concept_support"]["dog"] == {"captions": 3, "images": 2}
    assert metrics["concept_support"]["frisbee"] == {"captions": 2, "images": 2}  # images 0 and 9
    assert metrics["concepts_below_min_images"] == ["cat"] and "cat" not in metrics["per_concept"]
    bins = metrics["by_frequency_bin"]["text_to_image_recall@1"]["toy"]
    assert [(b["bin"], b["num_concepts"], b["num_samples"]) for b in bins] == [(1, 1, 2), (3, 1, 3)]
    assert bins[0]["recall"] == pytest.approx(1 / 2)  # frisbee: captions 1 (rank 4) and 5 (rank 1)
    assert metrics["frequency_unmatched"] == {"toy": []}
    untagged = retrieval_metrics(image_index, t2i, i2t, None, bootstrap_samples=0)
    assert "per_concept" not in untagged and untagged["text_to_image_recall@1"] == metrics["text_to_image_recall@1"]


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    image_index = np.repeat(np.arange(200), 5)
    t2i, i2t = rng.integers(1, 40, 1000), rng.integers(1, 400, 1000)
    first = retrieval_metrics(image_index, t2i, i2t, bootstrap_samples=300, seed=3)
    assert first["ci95"] == retrieval_metrics(image_index, t2i, i2t, bootstrap_samples=300, seed=3)["ci95"]
    for name, (low, high) in first["ci95"].items():
        assert low <= first[name] <= high and high - low < 0.2, name
    with pytest.raises(UserInputError, match="ranks start at 1"):
        retrieval_metrics(image_index, t2i - 1, i2t)


def test_ranks_equal_a_full_sort():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(23, 8)).astype(np.float32)
    captions = rng.normal(size=(61, 8)).astype(np.float32)
    owner = np.sort(rng.integers(0, 23, 61))
    t2i, i2t = positive_ranks(images, captions, owner)
    scores = captions @ images.T
    for c in range(61):
        assert t2i[c] == 1 + list(np.argsort(-scores[c])).index(owner[c])
        assert i2t[c] == 1 + list(np.argsort(-scores[:, owner[c]])).index(c)


@pytest.fixture(scope="module")
def coco_like(tmp_path_factory):
    """12 images with 5 COCO-like captions each, in the webdataset layout, in a folder named like
    CLIP_benchmark's COCO export (so the bundled ``coco`` concept list applies)."""
    return write_wds_retrieval(tmp_path_factory.mktemp("wds") / "wds_mscoco_captions", images=12, seed=2,
                               size=(40, 36), shards=2)


def _run(model, dataset, out, extra=None, **options):
    options = {"workers": 0, "batch_size": 4, "bootstrap_samples": 50, "chunk_size": 8, **options}
    return evaluate(EvaluationOptions(model=model, task="retrieval", dataset=str(dataset), out=out,
                                      cache_dir=out.parent / "cache", extra=extra or {}, **options))


def _table(results):
    return pq.read_table(f"{results['out_dir']}/predictions.parquet").to_pydict()


def _hub_dataset(folder, columns, features):
    import datasets

    (folder / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(columns, features=datasets.Features(features)).to_parquet(
        str(folder / "data" / "test-00000-of-00001.parquet"))
    return folder


def test_every_layout_gives_the_same_ranks(tiny_open_clip, coco_like, tmp_path):
    import datasets

    wds = _run(tiny_open_clip, coco_like["root"], tmp_path / "wds")
    images = [{"bytes": data, "path": None} for data in coco_like["images"]]
    listed = _hub_dataset(tmp_path / "listed", {"image": images, "caption": coco_like["captions"]},
                          {"image": datasets.Image(), "caption": datasets.List(datasets.Value("string"))})
    rows = {"image": [], "text": [], "image_id": []}
    for index, captions in enumerate(coco_like["captions"]):
        for caption in captions:
            rows["image"].append(images[index])
            rows["text"].append(caption)
            rows["image_id"].append(f"coco-{index}")
    features = {"image": datasets.Image(), "text": datasets.Value("string"), "image_id": datasets.Value("string")}
    by_id = _hub_dataset(tmp_path / "by_id", rows, features)
    by_content = _hub_dataset(tmp_path / "by_content", {k: rows[k] for k in ("image", "text")},
                              {k: features[k] for k in ("image", "text")})
    runs = [_run(tiny_open_clip, folder, tmp_path / folder.name, extra={"concepts": "coco"})
            for folder in (listed, by_id, by_content)]
    reference = _table(wds)
    assert len(reference["caption"]) == 60 and reference["caption"][5] == coco_like["captions"][1][0]
    for results in runs:
        table = _table(results)
        assert table["caption"] == reference["caption"]
        assert table["text_to_image_rank"] == reference["text_to_image_rank"]
        assert table["image_to_text_rank"] == reference["image_to_text_rank"]
        assert table["concepts"] == reference["concepts"]
    assert [r["dataset"]["layout"] for r in runs] == ["caption-list", "caption-rows", "caption-rows"]
    assert runs[1]["dataset"]["image_id_column"] == "image_id" and runs[2]["dataset"]["image_id_column"] is None
    assert _table(runs[1])["image_index"][:6] == [0, 0, 0, 0, 0, 5]  # the first row of each image
    # the folder's name selects the bundled COCO list; each caption is tagged by the engine's matcher
    assert wds["concepts"]["list"] == "coco" and wds["concepts"]["matcher"]["mode"] == "phrase"
    with_dog = [i for i, caption in enumerate(reference["caption"]) if " dog " in f" {caption.lower()} "]
    assert with_dog and all("dog" in reference["concepts"][i] for i in with_dog)
    # every metric follows from predictions.parquet alone
    recomputed = retrieval_metrics_from_predictions(tmp_path / "wds" / "predictions.parquet", bootstrap_samples=50,
                                                    seed=0)
    assert recomputed == json.loads((tmp_path / "wds" / "results.json").read_text())["metrics"]


def test_rerun_reuses_caches_and_subsets_keep_whole_images(tiny_open_clip, coco_like, tmp_path):
    first = _run(tiny_open_clip, coco_like["root"], tmp_path / "first")
    again = _run(tiny_open_clip, coco_like["root"], tmp_path / "again")
    assert first["cache"]["caption_features"]["chunks_computed"] == 8  # 60 captions in chunks of 8
    assert again["cache"]["caption_features"] == {**first["cache"]["caption_features"], "chunks_reused": 8,
                                                  "chunks_computed": 0}
    assert again["cache"]["image_features"]["chunks_computed"] == 0
    assert _table(first) == _table(again) and again["profile"]["captions_encoded"] == 0

    subset = _run(tiny_open_clip, coco_like["root"], tmp_path / "subset", limit=5,
                  extra={"captions_per_image": 2, "concepts": "none"})
    table = _table(subset)
    assert subset["dataset"]["num_images"] == 5 and subset["dataset"]["num_captions"] == 10
    assert sorted(set(table["caption_position"])) == [0, 1] and len(set(table["image_index"])) == 5
    assert max(table["text_to_image_rank"]) <= 5 and max(table["image_to_text_rank"]) <= 10
    assert subset["concepts"] is None and set(map(str, table["concepts"])) == {"None"}


def test_undecodable_images_are_skipped_with_their_captions(tiny_open_clip, tmp_path):
    samples = [{"png": png((25 * i, 100, 50)), "txt": f"caption {i} a\ncaption {i} b".encode()} for i in range(6)]
    samples[3]["png"] = b"not an image"
    samples[4] = {"txt": b"an image that was never there"}
    root = write_webdataset(tmp_path / "captions", samples, dataset_type="retrieval")
    results = _run(tiny_open_clip, root, tmp_path / "run")
    assert results["skipped_samples"] == {"corrupt_image": 2, "captions_of_corrupt_images": 3,
                                          "images_without_captions": 0}
    assert results["skipped_sample_indices"] == [3, 4] and results["metrics"]["num_images"] == 4
    assert results["concepts"] is None  # an unknown dataset gets no concept list unless --concepts names one


def test_cli_retrieval_summary_and_errors(tiny_open_clip, coco_like, tmp_path, capsys):
    argv = ["evaluate", "--task", "retrieval", "--model", tiny_open_clip, "--dataset", coco_like["root"], "--out",
            str(tmp_path / "cli"), "--cache-dir", str(tmp_path / "cache"), "--workers", "0", "--bootstrap-samples", "10",
            "--captions-per-image", "3", "--min-concept-images", "3"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary) >= {"text_to_image_recall@1", "image_to_text_recall@10", "out"}
    results = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert results["task"] == "retrieval" and results["metrics"]["num_captions"] == 36
    assert results["metrics"]["min_concept_images"] == 3
    assert all(support["images"] >= 3 for concept, support in results["metrics"]["concept_support"].items()
               if concept in results["metrics"]["per_concept"])

    classification = write_webdataset(tmp_path / "cls", [{"png": png((1, 2, 3)), "cls": b"0"}], classnames=["a"])
    assert main([*argv[:5], "--dataset", str(classification), "--out", str(tmp_path / "bad")]) == 2
    assert "is a classification dataset" in capsys.readouterr().err


def test_a_hub_dataset_with_a_loading_script_is_read_from_its_parquet_export(monkeypatch):
    """The paper's nlphuji sets still ship a loading script, which datasets >= 4 refuses to run."""
    import datasets

    from letitwag.harness.data import PARQUET_EXPORT_REVISION, load_splits

    asked = []

    def load_dataset(target, revision=None):
        asked.append((target, revision))
        if revision != PARQUET_EXPORT_REVISION:
            raise RuntimeError("Dataset scripts are no longer supported, but found flickr_1k.py")
        return datasets.DatasetDict({"test": datasets.Dataset.from_dict({"caption": [["a", "b"]]})})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    assert list(load_splits("nlphuji/flickr_1k_test_image_text_retrieval", None)) == ["test"]
    assert asked == [("nlphuji/flickr_1k_test_image_text_retrieval", None),
                     ("nlphuji/flickr_1k_test_image_text_retrieval", PARQUET_EXPORT_REVISION)]
    with pytest.raises(UserInputError, match="cannot load it .*scripts are no longer supported"):
        load_splits("nlphuji/flickr_1k_test_image_text_retrieval", "main")  # an explicit revision is not changed
