"""Which faiss index to build for N vectors of width D under a memory budget (autofaiss's rules).

Why not autofaiss itself: every autofaiss release since 1.10.1 requires numpy < 2, pandas < 3
and fire < 0.7, which conflict with this project's pins; the one that resolves (1.10.0, 2021)
predates numpy 2. Its selection rules are small and documented, so they are applied here with
faiss's own ``index_factory``:

* an exact ``Flat`` index while it is small enough to scan per query (``FLAT_MAX_VECTORS``) and
  fits the budget: recall 1 by construction;
* otherwise inverted lists of product-quantised codes, ``IVF{nlist},PQ{m}x8``, ``nlist`` a power
  of two near 4 sqrt(N) (faiss's guideline is 4-16 sqrt(N)), capped so that k-means stays a few
  minutes on a small machine; from 1,000 lists a vector's list is found through an HNSW graph
  over the centroids (``IVF{nlist}_HNSW32``, as autofaiss does): assigning 10M vectors to 4,096
  centroids exhaustively is 40 TFLOP, through the graph about a tenth. PQ codes alone cap recall@40 near 0.7 on CLIP-like data (nearby
  neighbours fall into the same codes), so, budget allowing, the candidates are re-ranked with
  finer scalar-quantised copies of the vectors (``SQ8``: one byte per dimension, ``SQ4``: half a
  byte), faiss's ``IndexRefine``: the first of ``PLANS`` whose size
  ``N * (m + 8 + refine bytes) + nlist * D * 4`` fits ``--max-index-memory`` wins. Lists and
  refine codes are written on disk and memory-mapped at serve time;
* ``HNSW32`` (graph over the full vectors) only on request: the fastest to query, but its
  vectors plus graph must fit the budget (``N * (4 D + 2 * 32 * 4)`` bytes).

The search depth (``nprobe`` / ``efSearch``) is not guessed: the build measures recall against
exact search and picks the smallest depth that reaches the target (``letitwag.builders.knn.recall``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from letitwag.errors import UserInputError

INDEX_TYPES = ("auto", "flat", "ivfpq", "hnsw")
FLAT_MAX_VECTORS = 200_000
MIN_IVF_VECTORS = 10_000  # below this PQ's 256-centroid codebooks cannot be trained well
# (refine codec, its bytes per dimension, PQ code sizes to try), most accurate first: behind a
# re-ranking stage the PQ codes only pick candidates, so they stay small.
PLANS = (("SQ8", 1.0, (64, 32, 16, 8)), ("SQ4", 0.5, (64, 32, 16, 8)),
         (None, 0, (256, 128, 64, 48, 32, 24, 16, 8)))
REFINE_K_FACTORS = (8, 16, 32)  # re-rank 8 k PQ candidates (320 for 40 results), more if recall needs it
ID_BYTES = 8
HNSW_NEIGHBOURS = 32
MAX_NLIST = 4_096  # k-means over 4k centroids of 512-d trains in about a minute on 2 cores; 16k would take 16x
TRAIN_POINTS_PER_LIST = 50  # faiss warns under 39; autofaiss uses 31-100
HNSW_QUANTIZER_FROM = 1_000  # autofaiss's rule: from 1000 lists, find a vector's lists with an HNSW graph


@dataclass(frozen=True)
class IndexPlan:
    """The index to build: its kind, faiss factory string, training sample and estimated size."""

    kind: str
    factory: str
    train_size: int
    estimated_bytes: int
    reason: str
    refine: str | None = None

    def to_json(self) -> dict:
        return {"kind": self.kind, "factory": self.factory, "refine": self.refine, "train_size": self.train_size,
                "estimated_bytes": self.estimated_bytes, "reason": self.reason}


def parse_memory(text: str) -> int:
    """``"4G"``, ``"512M"``, ``"1.5GB"``, ``"2000000000"`` -> bytes (powers of 1024 for K/M/G/T)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)i?B?\s*", str(text), flags=re.IGNORECASE)
    if not match:
        raise UserInputError(f"--max-index-memory {text!r}: give a size such as 4G, 512M or 2000000000")
    number, unit = float(match.group(1)), match.group(2).upper()
    return int(number * 1024 ** " KMGT".index(unit or " "))


def _nlist(count: int) -> int:
    return int(min(MAX_NLIST, max(64, 2 ** round(math.log2(4 * math.sqrt(count))))))


def _flat(count: int, dim: int, reason: str) -> IndexPlan:
    return IndexPlan("flat", "Flat", 0, count * dim * 4, reason)


def _hnsw(count: int, dim: int, budget: int) -> IndexPlan:
    size = count * (dim * 4 + 2 * HNSW_NEIGHBOURS * 4)
    if size > budget:
        raise UserInputError(f"an HNSW index of {count:,} x {dim} needs ~{size / 2**30:.1f} GiB, above "
                             f"--max-index-memory {budget / 2**30:.1f} GiB; raise it or use --index-type ivfpq")
    return IndexPlan("hnsw", f"HNSW{HNSW_NEIGHBOURS}", 0, size, "HNSW on request")


def _ivfpq(count: int, dim: int, budget: int) -> IndexPlan:
    if count < MIN_IVF_VECTORS:
        raise UserInputError(f"{count:,} vectors are too few to train product quantisers "
                             f"(at least {MIN_IVF_VECTORS:,}); use --index-type flat")
    nlist = _nlist(count)
    for refine, refine_bytes, m in ((r, b, m) for r, b, sizes in PLANS for m in sizes):
        size = int(count * (m + ID_BYTES + refine_bytes * dim)) + nlist * dim * 4
        if m < dim and dim % m == 0 and size <= budget:
            detail = f"re-ranked with {refine} codes" if refine else "no re-ranking (raise the budget for it)"
            quantizer = f"IVF{nlist}_HNSW32" if nlist >= HNSW_QUANTIZER_FROM else f"IVF{nlist}"
            return IndexPlan("ivfpq", f"{quantizer},PQ{m}x8", min(count, nlist * TRAIN_POINTS_PER_LIST), size,
                             f"{m}-byte PQ codes, {detail}: fits {budget / 2**30:.2f} GiB", refine)
    raise UserInputError(f"even {PLANS[-1][2][-1]}-byte codes for {count:,} vectors exceed --max-index-memory "
                         f"{budget / 2**30:.2f} GiB; raise it")


def choose_index(count: int, dim: int, index_type: str = "auto", max_memory: int = 8 * 2**30) -> IndexPlan:
    """The plan for ``count`` vectors of width ``dim`` (see the module docstring for the rules)."""
    if index_type not in INDEX_TYPES:
        raise UserInputError(f"--index-type {index_type!r}: use one of {', '.join(INDEX_TYPES)}")
    if index_type == "flat":
        return _flat(count, dim, "flat on request (exact)")
    if index_type == "hnsw":
        return _hnsw(count, dim, max_memory)
    if index_type == "ivfpq":
        return _ivfpq(count, dim, max_memory)
    if count <= FLAT_MAX_VECTORS and count * dim * 4 <= max_memory:
        return _flat(count, dim, f"exact: {count:,} vectors fit the budget and scan quickly")
    if count < MIN_IVF_VECTORS:
        raise UserInputError(f"{count:,} vectors of width {dim} exceed --max-index-memory as a flat index and are too "
                             "few to compress; raise --max-index-memory")
    return _ivfpq(count, dim, max_memory)
