"""The int8 first pass of exact kNN search: answers equal a float64 brute force, whatever the data.

The pass needs int8 dot-product instructions (VNNI or AMX; elsewhere oneDNN's int8 products
saturate and ``open_index`` never uses them): those tests skip with that reason on other CPUs,
where the float32 path they are compared with (``test_knn_server``, ``test_knn_store``) is the
only one. The refusal of a kernel that breaks the bound is tested everywhere.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from letitwag.builders.knn import int8_scan, store
from letitwag.builders.knn.int8_scan import Int8Scan
from letitwag.builders.knn.store import KnnIndex

native = pytest.mark.skipif(not int8_scan.int8_dot_products_native(),
                            reason="this CPU has no int8 dot-product instructions (VNNI/AMX): the server scans in float32")


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def flat_index(vectors: np.ndarray, with_int8: bool) -> KnnIndex:
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    metadata = pa.table({"id": np.arange(len(vectors))})
    config = {"index_type": "flat", "dim": vectors.shape[1]}
    return KnnIndex("t", None, config, index, metadata, Int8Scan(index) if with_int8 else None)


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact float64 scores; equal scores order by the smaller id."""
    scores = queries.astype(np.float64) @ vectors.astype(np.float64).T
    ids = np.broadcast_to(np.arange(len(vectors)), scores.shape)
    order = np.lexsort((ids, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def assert_exact(index: KnnIndex, vectors: np.ndarray, queries: np.ndarray, k: int) -> None:
    scores, ids, stored = index.search_and_reconstruct(queries, k)
    expected_scores, expected_ids = brute_force(vectors, queries, k)
    assert np.array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-6)
    assert np.array_equal(stored, vectors[ids])


@native
@pytest.mark.parametrize("batch", [1, 2, 7, 64])
def test_answers_equal_an_exact_brute_force(batch):
    rng = np.random.default_rng(batch)
    vectors = unit(rng.standard_normal((6000, 96)))
    queries = np.concatenate([vectors[:batch // 2] + 0.05 * rng.standard_normal((batch // 2, 96)),
                              rng.standard_normal((batch - batch // 2, 96))]).astype(np.float32)
    assert_exact(flat_index(vectors, with_int8=True), vectors, queries, 40)


@native
def test_a_first_round_that_falls_short_gets_a_second(monkeypatch):
    """With no slack for the pass's typical error, the first round misses vectors the bound allows."""
    rng = np.random.default_rng(3)
    vectors = unit(rng.standard_normal((5000, 256)))
    queries = unit(rng.standard_normal((8, 256)))
    index = flat_index(vectors, with_int8=True)
    index.int8.observed_error = -float(index.int8.scores(queries)[1].min())  # first round: the top k by pass only
    rounds = []
    original = store.at_least
    monkeypatch.setattr(store, "at_least", lambda *args: rounds.append(len(args[1])) or original(*args))
    assert_exact(index, vectors, queries, 40)
    assert len(rounds) == 2 and rounds[1] >= 1


@native
def test_near_duplicates_stay_exact_on_either_path(monkeypatch):
    """200 copies of each vector: a wide re-scored set, or float32 where it would be too wide."""
    rng = np.random.default_rng(0)
    base = unit(rng.standard_normal((30, 64)))
    vectors = np.repeat(base, 200, axis=0)  # 6,000 vectors, each row 200 times
    queries = base[:5] + np.float32(0.01)
    index = flat_index(vectors, with_int8=True)
    assert_exact(index, vectors, queries, 40)
    monkeypatch.setattr(store, "INT8_MAX_CANDIDATES", 100)
    used = []
    original = index._exact_float32
    monkeypatch.setattr(index, "_exact_float32", lambda *args: used.append(len(args[0])) or original(*args))
    assert_exact(index, vectors, queries, 40)
    assert used == [5]
    distinct = unit(rng.standard_normal((3000, 64)))
    vectors = np.concatenate([vectors, distinct])
    index = flat_index(vectors, with_int8=True)
    original = index._exact_float32
    monkeypatch.setattr(index, "_exact_float32", lambda *args: used.append(len(args[0])) or original(*args))
    mixed = np.concatenate([distinct[:1], queries[:2], distinct[1:3]])  # a distinct vector finds itself alone
    assert_exact(index, vectors, mixed, 1)
    assert used == [5, 2]


@native
def test_the_bound_holds_for_every_vector():
    """Every pass score is within the bound of the exact score (the property the proof rests on)."""
    rng = np.random.default_rng(1)
    vectors = unit(rng.standard_normal((4000, 512)) + 0.3)  # a shared cone, as CLIP embeddings have
    queries = (rng.standard_normal((16, 512)) * 3).astype(np.float32)  # not normalised
    index = flat_index(vectors, with_int8=True)
    passes, bound = index.int8.scores(queries)
    exact = queries.astype(np.float64) @ vectors.astype(np.float64).T
    assert (np.abs(exact - passes) <= bound[:, None]).all()
    assert 0 <= index.int8.observed_error <= bound.max()


def write_small_index(directory) -> np.ndarray:
    vectors = unit(np.random.default_rng(2).standard_normal((500, 32)))
    store.write_index(directory, vectors, pa.table({"caption": [str(i) for i in range(500)]}),
                      {"model": None, "synthetic": True})
    return vectors


@native
def test_open_index_adds_the_codes_only_where_asked_native_and_small(tmp_path, monkeypatch):
    vectors = write_small_index(tmp_path / "idx")
    assert store.open_index(tmp_path / "idx").int8 is None  # not asked: tools and tests scan in float32
    index = store.open_index(tmp_path / "idx", int8_scan=True)
    assert index.int8 is not None and len(index.int8) == 500
    queries = vectors[:9] + np.float32(0.02)
    assert np.array_equal(index.search(queries, 20)[1], store.open_index(tmp_path / "idx").search(queries, 20)[1])
    monkeypatch.setattr(store, "INT8_MAX_BYTES", 500 * 32 - 1)
    assert store.open_index(tmp_path / "idx", int8_scan=True).int8 is None  # too large to keep in memory


def test_no_codes_without_the_instructions(tmp_path, monkeypatch):
    write_small_index(tmp_path / "idx")
    monkeypatch.setattr(store, "int8_dot_products_native", lambda: False)
    assert store.open_index(tmp_path / "idx", int8_scan=True).int8 is None


def saturating_product(unsigned, scale, zero_point, codes, scales, zero_points):
    """int8 products as CPUs without VNNI form them: pairs summed in int16, saturating."""
    pairs = unsigned.long()[:, None, :] * codes.long()[None, :, :]
    pairs = pairs.reshape(*pairs.shape[:2], -1, 2).sum(dim=-1).clamp(-(2**15), 2**15 - 1)
    sums = pairs.sum(dim=-1) - zero_point * codes.long().sum(dim=1)
    return (sums.double() * scale * scales.double()).float()


def test_a_kernel_that_breaks_the_bound_is_refused(tmp_path, monkeypatch, caplog):
    """Saturating int8 arithmetic would break the proof: the start-up check on the index catches it."""
    write_small_index(tmp_path / "idx")
    monkeypatch.setattr(store, "int8_dot_products_native", lambda: True)
    monkeypatch.setattr(int8_scan, "pack", lambda codes: codes.clone())
    monkeypatch.setattr(int8_scan, "quantized_product", saturating_product)
    with caplog.at_level("WARNING"):
        assert store.open_index(tmp_path / "idx", int8_scan=True).int8 is None
    assert "int8 pass is not used" in caplog.text and "above its bound" in caplog.text


def test_the_check_accepts_exact_integer_arithmetic(tmp_path, monkeypatch):
    """The same emulation without saturation (what VNNI computes) passes the check: the check is not vacuous."""
    write_small_index(tmp_path / "idx")
    monkeypatch.setattr(int8_scan, "pack", lambda codes: codes.clone())

    def exact_product(unsigned, scale, zero_point, codes, scales, zero_points):
        sums = (unsigned.long() - zero_point) @ codes.long().T
        return (sums.double() * scale * scales.double()).float()

    monkeypatch.setattr(int8_scan, "quantized_product", exact_product)
    scan = Int8Scan(store.open_index(tmp_path / "idx").vectors)
    assert 0 < scan.observed_error
