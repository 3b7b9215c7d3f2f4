"""Exact inner-product search with an int8 first pass, proven exact query by query.

Why: an exact (flat) index answers each batch by streaming every vector through a matrix
product; at real CLIP widths that pass is the server's main cost (100,000 x 768 float32 is
307 MB a pass, 17-23 ms on one core for a batch of 1-4 queries). On CPUs with int8 dot-product
instructions (VNNI, AMX), oneDNN's quantized matrix product (the kernel PyTorch's x86 int8
inference uses) reads a quarter of the bytes: 3-4 ms for the same batches on the same core
(``benchmarks/bench_knn.py`` reports the server's figures). Elsewhere (int8 products emulated
through 16-bit intermediates that saturate) this module is not used.

int8 rounds, so the pass only proposes candidates; their float64 scores from the stored float32
vectors decide the order, and a bound on the pass's error decides which vectors could still
belong to the top ``k``. Each stored vector ``x`` is kept as int8 codes times its own scale
(``x~``), each batch of queries as uint8 codes around a zero point times one scale (``q~``), so:

* operands: ``q.x - q~.x~ = q.(x - x~) + (q - q~).x~``, at most
  ``|q| * max|x - x~| + |q - q~| * max|x~|`` (Cauchy-Schwarz; the stored residual norms are
  measured when the codes are made, the query's when it is quantized, none assumed);
* accumulation: integer products summed in int32 are exact (``dim`` below 65,000); turning the
  sum into a float32 score costs a few float32 roundings of terms of at most
  ``(255 + 128) * 127 * dim`` code units (``_OUTPUT_ROUNDINGS`` of them are allowed for).

A vector in the exact top ``k`` has a true score of at least the ``k``-th best exact score ``T``
found among any candidates, so its pass score is at least ``T - bound``: every vector whose pass
score reaches that is re-scored, and the answer is exact by construction, whatever the data (an
index full of near-duplicates only makes the re-scored set larger). Because the bound rests on
what the kernel computes, it is checked against float64 on the index itself when the codes are
made; a kernel that breaks it (saturating arithmetic) is refused and the index scans in float32.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

_FLOAT32_UNIT = 2.0**-24
_OUTPUT_ROUNDINGS = 8  # float32 roundings allowed between the int32 sum and the score (oneDNN uses 2-3)
_ZERO_POINT = 128  # queries are uint8 codes: q~ = scale * (code - 128)
_CODE_MAX = 127
_MAX_DIM = 65_000  # (255 + 128) * 127 * dim must stay below 2**31 for exact int32 sums
_CHUNK_ROWS = 65_536
_CHECK_ROWS = 4096  # stored vectors the start-up check compares with float64
_CHECK_BATCHES = (1, 3, 16)  # batch sizes the kernel may treat differently


def int8_dot_products_native() -> bool:
    """Whether this CPU multiplies int8 in hardware and PyTorch has oneDNN's quantized matrix product."""
    try:
        import torch
    except ImportError:
        return False
    cpu = torch.cpu
    has_instructions = bool(getattr(cpu, "_is_vnni_supported", lambda: False)()
                            or getattr(cpu, "_is_amx_tile_supported", lambda: False)())
    onednn = getattr(torch.ops, "onednn", None)
    return (has_instructions and torch.backends.mkldnn.is_available()
            and hasattr(onednn, "qlinear_prepack") and hasattr(onednn, "qlinear_pointwise"))


def pack(codes: torch.Tensor):
    """oneDNN's packed layout of int8 codes ``[N, D]`` (any batch size)."""
    import torch

    return torch.ops.onednn.qlinear_prepack(codes, None)


def quantized_product(unsigned: torch.Tensor, scale: float, zero_point: int, packed, scales: torch.Tensor,
                      zero_points: torch.Tensor) -> torch.Tensor:
    """``scale * (unsigned - zero_point) @ (codes * scales[:, None]).T`` as float32 ``[B, N]``.

    ``zero_points`` are the codes' (all zero: symmetric codes).
    """
    import torch

    return torch.ops.onednn.qlinear_pointwise(unsigned, scale, zero_point, packed, scales, zero_points, None,
                                              1.0, 0, torch.float32, "none", [], "")


class Int8ScanError(RuntimeError):
    """The int8 kernel broke the error bound on this index (the caller scans in float32 instead)."""


class Int8Scan:
    """int8 codes of a flat index's vectors, packed for oneDNN, and the first pass over them."""

    def __init__(self, faiss_index) -> None:
        """Quantize ``faiss_index``'s vectors in chunks, measuring residuals, then check the kernel.

        Raises ``Int8ScanError`` when a pass on this index strays beyond the bound.
        """
        import torch

        count, self.dim = faiss_index.ntotal, faiss_index.d
        if self.dim > _MAX_DIM:
            raise Int8ScanError(f"{self.dim} dimensions: int32 sums could overflow")
        codes = torch.empty((count, self.dim), dtype=torch.int8)
        self.scales = torch.empty(count, dtype=torch.float32)
        self.max_residual = 0.0  # max |x - x~|
        self.max_norm = 0.0  # max |x~|
        self.max_scale = 0.0
        for start in range(0, count, _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, count)
            chunk = np.ascontiguousarray(faiss_index.reconstruct_n(start, stop - start), dtype=np.float32)
            scales = np.abs(chunk).max(axis=1) / _CODE_MAX
            scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
            chunk_codes = np.clip(np.rint(chunk / scales[:, None]), -_CODE_MAX, _CODE_MAX).astype(np.int8)
            back = chunk_codes.astype(np.float64) * scales[:, None].astype(np.float64)
            self.max_residual = max(self.max_residual, float(np.linalg.norm(chunk - back, axis=1).max()))
            self.max_norm = max(self.max_norm, float(np.linalg.norm(back, axis=1).max()))
            self.max_scale = max(self.max_scale, float(scales.max()))
            codes[start:stop] = torch.from_numpy(chunk_codes)
            self.scales[start:stop] = torch.from_numpy(scales)
        self.packed = pack(codes)
        self._zero_points = torch.zeros(count, dtype=torch.int32)
        self.observed_error = self._check(faiss_index, min(count, _CHECK_ROWS))

    def __len__(self) -> int:
        return self.scales.shape[0]

    def nbytes(self) -> int:
        return len(self) * (self.dim + 8)

    def scores(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pass scores ``[B, N]`` (float32) and each query's error bound ``[B]`` (float64)."""
        import torch

        queries64 = np.asarray(queries, dtype=np.float64)
        scale = float(np.abs(queries64).max()) / _CODE_MAX or 1.0
        codes = np.clip(np.rint(queries64 / scale), -_CODE_MAX, _CODE_MAX)
        rounded = codes * scale
        operands = (np.linalg.norm(queries64, axis=1) * self.max_residual
                    + np.linalg.norm(queries64 - rounded, axis=1) * self.max_norm)
        output = _OUTPUT_ROUNDINGS * _FLOAT32_UNIT * (255 + _ZERO_POINT) * _CODE_MAX * self.dim * scale * self.max_scale
        unsigned = torch.from_numpy((codes + _ZERO_POINT).astype(np.uint8))
        passes = quantized_product(unsigned, scale, _ZERO_POINT, self.packed, self.scales, self._zero_points)
        return passes.numpy(), operands + output

    def _check(self, faiss_index, rows: int) -> float:
        """The largest pass error seen against the first ``rows`` vectors; ``Int8ScanError`` if beyond the bound."""
        stored = np.ascontiguousarray(faiss_index.reconstruct_n(0, rows), dtype=np.float64)
        rng = np.random.default_rng(0)
        worst = 0.0
        for batch in _CHECK_BATCHES:
            noise = rng.standard_normal((batch, self.dim)) * 0.1 * float(np.abs(stored).max())
            queries = (stored[rng.integers(0, rows, batch)] + noise).astype(np.float32)
            passes, bound = self.scores(queries)
            error = np.abs(passes[:, :rows] - queries.astype(np.float64) @ stored.T)
            if (error > bound[:, None]).any():
                raise Int8ScanError(f"pass error {error.max():.3g} above its bound {bound.min():.3g}")
            worst = max(worst, float(error.max()))
        return worst


def at_least(passes: Sequence[np.ndarray], floors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query (``passes``: one row of pass scores each), the ids whose pass score reaches its floor:
    ``(ids [B, M] padded with -1, counts [B])``."""
    floors32 = np.nextafter(np.asarray(floors, dtype=np.float32), np.float32(-np.inf))  # round down, never up
    found = [np.flatnonzero(passes[row] >= floors32[row]) for row in range(len(floors32))]
    counts = np.array([len(row) for row in found])
    ids = np.full((len(found), int(counts.max(initial=0))), -1, dtype=np.int64)
    for row, row_ids in enumerate(found):
        ids[row, : len(row_ids)] = row_ids
    return ids, counts


def kth_pass_scores(passes: np.ndarray, k: int) -> np.ndarray:
    """Each query's ``k``-th best pass score."""
    position = passes.shape[1] - k
    return np.partition(passes, position, axis=1)[:, position].astype(np.float64)
