"""Exact inner-product search with a bfloat16 first pass, proven exact query by query.

Why: an exact (flat) index answers each batch by streaming every vector through a matrix
product; at real CLIP widths that pass is the server's main cost (100,000 x 768 float32 is
307 MB a pass). On CPUs with bfloat16 dot-product instructions (AVX512_BF16, AMX) the same pass
over a bfloat16 copy reads half the bytes at twice the arithmetic rate. Elsewhere (bfloat16
emulated, slower than float32) this module is not used.

bfloat16 rounds, so the pass only proposes candidates; their float64 scores from the stored
float32 vectors decide the order, and a bound on the pass's error decides whether that order is
the exact top ``k``. For a query ``q`` and a stored vector ``x`` with bfloat16 copies ``q~``, ``x~``:

* operands: ``q.x - q~.x~ = q.(x - x~) + (q - q~).x~``, at most ``|q| * max|x - x~| + |q - q~| * max|x~|``
  (Cauchy-Schwarz; both residual norms are measured when the copy is made, not assumed);
* accumulation: products of two bfloat16 numbers are exact in float32, and summing ``dim`` of
  them in float32 errs by at most ``(dim - 1) * 2**-24 * |q~| * max|x~|``, plus what flushing
  subnormals may drop (``2 * dim * 2**-126``);
* the result is rounded to bfloat16: a vector left out of the candidates had a pass score that
  rounds to at most ``t``, the lowest candidate's, so before rounding at most ``t + 2**-8 * |t|``.

So a vector outside the candidates has a true score of at most ``t + 2**-8 * |t| + bound(q)``.
When the ``k``-th best exact candidate score is above that, no vector left out can enter the top
``k``: the answer is exact. Otherwise (near-ties over the whole candidate margin, as in indices
full of near-duplicates) the caller searches that query in float32 instead.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

_FLOAT32_UNIT = 2.0**-24
_BF16_HALF_ULP = 2.0**-8  # relative: half a unit in the last place of an 8-bit significand
_FLUSHED = 2.0**-126  # what a bfloat16 instruction may flush to zero, per operation
_CHUNK_ROWS = 65_536


def bf16_dot_products_native() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (else bfloat16 is slower than float32)."""
    try:
        import torch
    except ImportError:
        return False
    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


class Bf16Scan:
    """A bfloat16 copy of a flat index's vectors (in memory) and the first pass over it."""

    def __init__(self, faiss_index) -> None:
        """Copy ``faiss_index``'s vectors in chunks, measuring the rounding residuals as it goes."""
        import torch

        count, self.dim = faiss_index.ntotal, faiss_index.d
        self.copy = torch.empty((count, self.dim), dtype=torch.bfloat16)
        self.max_residual = 0.0  # max |x - x~|
        self.max_norm = 0.0  # max |x~|
        for start in range(0, count, _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, count)
            chunk = np.ascontiguousarray(faiss_index.reconstruct_n(start, stop - start), dtype=np.float32)
            rounded = torch.from_numpy(chunk).to(torch.bfloat16)
            back = rounded.float().numpy().astype(np.float64)
            self.max_residual = max(self.max_residual, float(np.linalg.norm(chunk - back, axis=1).max()))
            self.max_norm = max(self.max_norm, float(np.linalg.norm(back, axis=1).max()))
            self.copy[start:stop] = rounded

    def __len__(self) -> int:
        return self.copy.shape[0]

    def nbytes(self) -> int:
        return self.copy.numel() * 2

    def error_bound(self, queries: np.ndarray, pass_scores: np.ndarray) -> np.ndarray:
        """How far a true score may lie above a pass score, per query (``pass_scores`` ``[B]`` or ``[B, ...]``)."""
        import torch

        queries64 = np.asarray(queries, dtype=np.float64)
        rounded64 = torch.from_numpy(np.asarray(queries, dtype=np.float32)).to(torch.bfloat16).double().numpy()
        rounded_norm = np.linalg.norm(rounded64, axis=1)
        operands = (np.linalg.norm(queries64, axis=1) * self.max_residual
                    + np.linalg.norm(queries64 - rounded64, axis=1) * self.max_norm)
        accumulation = (self.dim - 1) * _FLOAT32_UNIT / (1 - self.dim * _FLOAT32_UNIT) * rounded_norm * self.max_norm
        per_query = operands + accumulation + 2 * self.dim * _FLUSHED
        pass_scores = np.asarray(pass_scores, dtype=np.float64)
        per_query = per_query.reshape(-1, *([1] * (pass_scores.ndim - 1)))
        return per_query + _BF16_HALF_ULP * np.abs(pass_scores)

    def candidates(self, queries: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``count`` best vectors of each query by pass score, and the ceiling of the rest.

        Returns ``(ids [B, count], ceiling [B])``: no vector left out of a query's candidates has a
        true score above its ceiling, so a top ``k`` whose ``k``-th exact score is above it is exact.
        """
        import torch

        rounded = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(torch.bfloat16)
        # [N, D] @ [D, B]: the stored copy stays the left operand in its own layout (as the right,
        # transposed operand the library re-packs all of it on every call)
        top = torch.topk(self.copy @ rounded.T, min(count, len(self)), dim=0, largest=True, sorted=True)
        lowest = top.values[-1].double().numpy()
        return top.indices.T.numpy().astype(np.int64), lowest + self.error_bound(queries, lowest)
