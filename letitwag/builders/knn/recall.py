"""Recall of an approximate index against exact search, and the search depth that reaches a target.

Why at build time: a compressed index trades recall for memory and speed, and how much depends
on the data. The build keeps an exact top-k for a few query sets (``ExactTopK``, updated shard by
shard while the vectors stream past for indexing, so it costs no extra read), then measures
``recall@k = |approximate top k  ∩  exact top k| / k`` averaged over queries (autofaiss's
"k-recall@k") at each search depth and records the numbers in ``index.json``.

Queries drawn from the indexed vectors themselves are "leave one out": their own id is dropped
from both lists, so a query does not count finding itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NPROBE_LADDER = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024)
EF_SEARCH_LADDER = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024)
MAX_TUNED_NPROBE = 64  # past this, a larger re-ranking factor is tried first


@dataclass
class QuerySet:
    """Named unit query vectors; ``self_ids`` is each query's own index id (-1 when not indexed)."""

    name: str
    vectors: np.ndarray
    self_ids: np.ndarray
    source: str


class ExactTopK:
    """Running exact inner-product top-``k`` of fixed queries over vectors seen chunk by chunk."""

    def __init__(self, queries: np.ndarray, k: int) -> None:
        self.queries = np.ascontiguousarray(queries, dtype=np.float32)
        self.k = k
        self.scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        self.ids = np.full((len(queries), k), -1, dtype=np.int64)

    def update(self, vectors: np.ndarray, first_id: int) -> None:
        """Fold in ``vectors`` whose ids start at ``first_id``."""
        import faiss

        scores, ids = faiss.knn(self.queries, np.ascontiguousarray(vectors), min(self.k, len(vectors)),
                                metric=faiss.METRIC_INNER_PRODUCT)
        self.merge(scores, np.where(ids >= 0, ids + first_id, -1))

    def merge(self, scores: np.ndarray, ids: np.ndarray) -> None:
        """Fold in another partial top list (same queries)."""
        all_scores = np.concatenate([self.scores, scores], axis=1)
        all_ids = np.concatenate([self.ids, ids], axis=1)
        order = np.argsort(-all_scores, axis=1, kind="stable")[:, : self.k]
        self.scores = np.take_along_axis(all_scores, order, axis=1)
        self.ids = np.take_along_axis(all_ids, order, axis=1)


def _without_self(ids: np.ndarray, self_ids: np.ndarray, k: int) -> np.ndarray:
    """Each row's ids without the query's own id, first ``k`` kept (rows fetched with k + 1)."""
    kept = np.full((len(ids), k), -1, dtype=np.int64)
    for row, (found, own) in enumerate(zip(ids, self_ids)):
        others = found[(found != own) & (found >= 0)][:k]
        kept[row, : len(others)] = others
    return kept


def recall_at_k(found: np.ndarray, exact: np.ndarray, self_ids: np.ndarray, k: int) -> float:
    """Mean over queries of |found top k ∩ exact top k| / k (leave-one-out for indexed queries)."""
    found, exact = _without_self(found, self_ids, k), _without_self(exact, self_ids, k)
    hits = [len(np.intersect1d(a[a >= 0], b[b >= 0])) / max(1, int((b >= 0).sum())) for a, b in zip(found, exact)]
    return float(np.mean(hits))


def ladder_for(index) -> tuple[str, tuple[int, ...]]:
    """The search-depth parameter of ``index`` and the values to try (empty for exact indices)."""
    import faiss

    if isinstance(index, faiss.IndexRefine):
        index = index.base_index
    if faiss.try_extract_index_ivf(index) is not None:
        if "HNSW" in type(faiss.extract_index_ivf(index).quantizer).__name__:
            return "nprobe+quantizer", tuple(v for v in NPROBE_LADDER if v <= faiss.extract_index_ivf(index).nlist)
        nlist = faiss.extract_index_ivf(index).nlist
        return "nprobe", tuple(v for v in NPROBE_LADDER if v <= nlist)
    if "HNSW" in type(index).__name__:
        return "efSearch", EF_SEARCH_LADDER
    return "", ()


def tune_depth(index, tune: QuerySet, exact_ids: np.ndarray, k: int, target: float,
               k_factors: tuple[int, ...] = (0,)) -> tuple[dict, dict]:
    """Cheapest search setting whose recall on ``tune`` reaches ``target`` (else the best); (params, curve).

    Depths are tried in increasing order; for a re-ranked index each re-ranking factor in
    ``k_factors`` (``k_factor_rf``, 0 = not re-ranked) in turn, a larger one only when the
    smaller could not reach the target up to ``MAX_TUNED_NPROBE`` lists.
    """
    import faiss

    name, ladder = ladder_for(index)
    if not name:
        return {}, {}
    space = faiss.ParameterSpace()
    curve: dict = {}
    best: tuple[float, dict] = (-1.0, {})
    for k_factor in k_factors:
        params = {"k_factor_rf": k_factor} if k_factor else {}
        steps = ladder if k_factor == k_factors[-1] else tuple(v for v in ladder if v <= MAX_TUNED_NPROBE)
        for value in steps:
            trial = params | ({"nprobe": value, "quantizer_efSearch": 2 * value} if name == "nprobe+quantizer"
                              else {name: value})
            space.set_index_parameters(index, ",".join(f"{key}={v}" for key, v in trial.items()))
            _, found = index.search(tune.vectors, k + 1)
            recall = round(recall_at_k(found, exact_ids, tune.self_ids, k), 4)
            curve[",".join(f"{key}={v}" for key, v in trial.items())] = recall
            if recall > best[0]:
                best = (recall, trial)
            if recall >= target:
                return trial, curve
    return best[1], curve


def measure(index, query_set: QuerySet, exact_ids: np.ndarray, k: int) -> float:
    """Recall@k of ``index`` (with its current search parameters) on one query set."""
    _, found = index.search(query_set.vectors, k + 1)
    return recall_at_k(found, exact_ids, query_set.self_ids, k)
