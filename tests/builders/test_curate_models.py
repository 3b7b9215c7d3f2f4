"""Model-based steps with a tiny RANDOM-WEIGHT open_clip (plumbing only: scores mean nothing)."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from letitwag.builders.curate import CurateConfig, curate
from letitwag.builders.curate.embeddings import EmbeddingCache
from letitwag.models.tiny import build_tiny_open_clip


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_open_clip(tmp_path_factory.mktemp("tiny-clip"))


def _table(out):
    return pq.read_table(out / "curated.parquet").to_pandas()


def test_outliers_and_relevance_record_scores_and_drop_the_bottom(faulty_candidates, tmp_path, tiny_model):
    candidates, _ = faulty_candidates
    config = CurateConfig(balance=False, workers=1, model=tiny_model, outliers=True, outlier_fraction=0.3,
                          relevance=True, relevance_threshold=-1.0)
    report = curate(candidates, tmp_path / "out", config)
    table = _table(tmp_path / "out")
    outliers = table[table["rejected_by"] == "outliers"]
    assert sorted(outliers["concept_id"].value_counts().to_dict().items()) == [("cat", 3), ("dog", 2)]  # floor(.3n)
    for concept, group in table[table["outlier_score"].notna()].groupby("concept_id"):
        dropped = group[group["rejected_by"] == "outliers"]["outlier_score"]
        assert dropped.max() <= group[group["rejected_by"] != "outliers"]["outlier_score"].min()
    survivors = table[table["kept"]]
    assert survivors["relevance"].between(-1.0001, 1.0001).all() and len(survivors) == 13
    assert {s["step"]: s["rejected"] for s in report["steps"]}["relevance"] == 0
    strict = CurateConfig(balance=False, workers=1, model=tiny_model, relevance=True, relevance_threshold=1.01)
    curate(candidates, tmp_path / "strict", strict)
    assert (_table(tmp_path / "strict")["rejected_by"] == "relevance").sum() == 18
    assert list((tmp_path / "strict" / "_work").glob("embeddings-*/*.npy"))  # cached for resume


def test_reference_sets_by_hash_file_folder_and_embeddings(faulty_candidates, tmp_path, tiny_model):
    candidates, _ = faulty_candidates
    first = CurateConfig(balance=False, workers=1)
    curate(candidates, tmp_path / "plain", first)
    plain = _table(tmp_path / "plain").set_index("candidate_id")
    pq.write_table(pa.table({"phash": [plain.at["dog/3", "phash"]]}), tmp_path / "val_hashes.parquet")
    folder = tmp_path / "val_images"
    folder.mkdir()
    (folder / "a.jpg").write_bytes((candidates / plain.at["cat/9", "image"]["path"].split("candidates/")[-1]).read_bytes())
    cache = EmbeddingCache(tiny_model, "cpu", 8, 8, tmp_path / "plain", tmp_path / "plain" / "_work")
    vectors = cache.encode_paths([tmp_path / "plain" / plain.at["cat/10", "image"]["path"]])
    np.save(tmp_path / "val.npy", vectors)
    config = CurateConfig(balance=False, workers=1, model=tiny_model, reference_cosine=0.9999,
                          reference=(str(tmp_path / "val_hashes.parquet"), str(folder), str(tmp_path / "val.npy")))
    curate(candidates, tmp_path / "out", config)
    table = _table(tmp_path / "out").set_index("candidate_id")
    hits = table[table["rejected_by"] == "reference"]
    assert {"dog/3", "cat/9", "cat/10"} <= set(hits.index)
    assert "val_hashes.parquet" in hits.at["dog/3", "reason"] and "cosine" in hits.at["cat/10", "reason"]
