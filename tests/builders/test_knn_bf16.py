"""The bfloat16 first pass of exact kNN search: answers equal a float64 brute force, proven or not.

Bf16Scan runs on any CPU (torch emulates bfloat16 where the instructions are missing, only
slower), so these tests hold everywhere; ``open_index`` enables it only where it is native.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from letitwag.builders.knn import store
from letitwag.builders.knn.bf16_scan import Bf16Scan
from letitwag.builders.knn.store import KnnIndex, rescored_top_k


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def flat_index(vectors: np.ndarray, with_bf16: bool) -> KnnIndex:
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    metadata = pa.table({"id": np.arange(len(vectors))})
    return KnnIndex("t", None, {"index_type": "flat"}, index, metadata, Bf16Scan(index) if with_bf16 else None)


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact float64 scores; equal scores order by the smaller id."""
    scores = queries.astype(np.float64) @ vectors.astype(np.float64).T
    ids = np.broadcast_to(np.arange(len(vectors)), scores.shape)
    order = np.lexsort((ids, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


@pytest.mark.parametrize("batch", [1, 2, 7, 64])
def test_answers_equal_an_exact_brute_force(batch):
    rng = np.random.default_rng(batch)
    vectors = unit(rng.standard_normal((6000, 96)))
    queries = np.concatenate([vectors[:batch // 2] + 0.05 * rng.standard_normal((batch // 2, 96)),
                              rng.standard_normal((batch - batch // 2, 96))]).astype(np.float32)
    index = flat_index(vectors, with_bf16=True)
    candidates, ceiling = index.bf16.candidates(queries, 104)
    kth = rescored_top_k(queries, candidates, vectors[candidates], 40)[0][:, -1]
    assert (kth > ceiling).all()  # distinct vectors: the bound proves every answer exact
    scores, ids, stored = index.search_and_reconstruct(queries, 40)
    expected_scores, expected_ids = brute_force(vectors, queries, 40)
    assert np.array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-6)
    assert np.array_equal(stored, vectors[ids])


def test_near_duplicates_fall_back_and_stay_exact():
    """An index of exact copies: no candidate margin can separate them, so float32 decides."""
    rng = np.random.default_rng(0)
    base = unit(rng.standard_normal((30, 64)))
    vectors = np.repeat(base, 200, axis=0)  # 6,000 vectors, each row 200 times
    queries = base[:5] + np.float32(0.01)
    index = flat_index(vectors, with_bf16=True)
    candidates, ceiling = index.bf16.candidates(queries, 104)
    assert ceiling.shape == (5,)
    kth = rescored_top_k(queries, candidates, vectors[candidates], 40)[0][:, -1]
    assert not (kth > ceiling).any()  # no answer proven: every query takes the float32 path
    scores, ids, _ = index.search_and_reconstruct(queries, 40)
    expected_scores, expected_ids = brute_force(vectors, queries, 40)
    assert np.array_equal(ids, expected_ids)
    float32_scores, float32_ids, _ = flat_index(vectors, with_bf16=False).search_and_reconstruct(queries, 40)
    assert np.array_equal(ids, float32_ids)


def test_the_bound_holds_for_every_vector():
    """Every pass score is within the bound of the exact score (the property the proof rests on)."""
    import torch

    rng = np.random.default_rng(1)
    vectors = unit(rng.standard_normal((4000, 512)) + 0.3)  # a shared cone, as CLIP embeddings have
    queries = (rng.standard_normal((16, 512)) * 3).astype(np.float32)  # not normalised
    index = flat_index(vectors, with_bf16=True)
    passes = (index.bf16.copy @ torch.from_numpy(queries).to(torch.bfloat16).T).float().numpy().T
    exact = queries.astype(np.float64) @ vectors.astype(np.float64).T
    own = index.bf16.error_bound(queries, passes)
    assert (np.abs(exact - passes) <= own).all()


def test_open_index_adds_the_copy_only_where_asked_and_native(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    vectors = unit(rng.standard_normal((500, 32)))
    store.write_index(tmp_path / "idx", vectors, pa.table({"caption": [str(i) for i in range(500)]}),
                      {"model": None, "synthetic": True})
    assert store.open_index(tmp_path / "idx").bf16 is None  # not asked: tools and tests scan in float32
    monkeypatch.setattr(store, "bf16_dot_products_native", lambda: False)
    assert store.open_index(tmp_path / "idx", bf16_scan=True).bf16 is None  # emulated bfloat16 is slower
    monkeypatch.setattr(store, "bf16_dot_products_native", lambda: True)
    index = store.open_index(tmp_path / "idx", bf16_scan=True)
    assert index.bf16 is not None and len(index.bf16) == 500
    queries = vectors[:9] + np.float32(0.02)
    assert np.array_equal(index.search(queries, 20)[1], store.open_index(tmp_path / "idx").search(queries, 20)[1])
    monkeypatch.setattr(store, "BF16_MAX_BYTES", 500 * 32 * 2 - 1)
    assert store.open_index(tmp_path / "idx", bf16_scan=True).bf16 is None  # too large to copy
