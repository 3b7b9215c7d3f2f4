"""Publishing: Hub layout that datasets loads, complete card YAML, clean failure at the network boundary."""

import socket

import datasets
import pyarrow.parquet as pq
import pytest
import yaml

from letitwag.builders.curate import CurateConfig, curate
from letitwag.builders.publish import PublishOptions, publish
from letitwag.cli import main


@pytest.fixture
def curated(faulty_candidates, tmp_path):
    candidates, _ = faulty_candidates
    curate(candidates, tmp_path / "curated", CurateConfig(per_class=3, workers=1))
    return tmp_path / "curated"


def test_hub_layout_loads_with_datasets_like_the_hub(curated, tmp_path):
    summary = publish(curated, tmp_path / "hub", PublishOptions(max_shard_bytes=8000, license="mit"))
    shards = sorted((tmp_path / "hub" / "data").glob("test-*.parquet"))
    assert [s.name for s in shards] == [f"test-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    assert len(shards) == summary["shards"] > 1
    data = datasets.load_dataset(str(tmp_path / "hub"), split="test")
    assert data.num_rows == 6 == summary["num_examples"]
    assert data.features["label"].names == ["cat", "dog"]
    assert isinstance(data.features["image"], datasets.Image)
    assert sorted(data["label"]) == [0, 0, 0, 1, 1, 1]
    first = data[0]
    assert first["image"].mode == "RGB" and first["group"] == "common" and len(first["phash"]) == 16
    curated_rows = pq.read_table(curated / "curated.parquet").to_pandas()
    assert set(data["candidate_id"]) == set(curated_rows[curated_rows["kept"]]["candidate_id"])

    text = (tmp_path / "hub" / "README.md").read_text()
    header = yaml.safe_load(text.split("---")[1])
    assert header["license"] == "mit" and header["size_categories"] == ["n<1K"]
    assert header["configs"][0]["data_files"][0] == {"split": "test", "path": "data/test-*"}
    split = header["dataset_info"]["splits"][0]
    assert split["num_examples"] == 6 and split["num_bytes"] == summary["num_bytes"] > 0
    names = header["dataset_info"]["features"][1]["dtype"]["class_label"]["names"]
    assert names == {"0": "cat", "1": "dog"}  # quoted keys, as the Hub writes them
    assert '"max_hamming_distance": 10' in text and "| 3 | near_dedup | True | 19 | 1 |" in text
    assert "udandarao2024zeroshot" in text and "## Motivation" in text
    assert datasets.load_dataset_builder(str(tmp_path / "hub")).info.features == data.features


def test_push_fails_cleanly_without_network(curated, tmp_path, capsys):
    with socket.socket() as probe:  # a loopback port with nothing listening: the Hub is unreachable
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["publish", str(curated), "--out", str(tmp_path / "hub"), "--repo", "org/name", "--push",
                 "--endpoint", f"http://127.0.0.1:{port}"])
    captured = capsys.readouterr()
    assert code == 2
    assert "wrote 6 images of 2 concepts" in captured.out
    assert "push to org/name failed, nothing was uploaded" in captured.err
    assert "pushed:" not in captured.out
    assert main(["publish", str(curated), "--out", str(tmp_path / "h2"), "--push"]) == 2
