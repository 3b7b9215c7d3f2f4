"""An RGB image's pixels without Pillow's copies: a zero-copy view, and its packed RGB bytes.

Why: validation hashes every image's pixels (sha256 of the packed ``R G B`` bytes) and resizes
them for the pHash. ``Image.tobytes()`` encodes the image in ~64 KiB pieces and joins them: two
copies and a fresh ~1 MB allocation per photo (part of the 207 -> 320-331 images/s of
``benchmarks/bench_curate.py``, together with ``phash_resize``). Pillow
(11.2+) exports an image through the Arrow C data interface without copying; its RGB rows
are stored as ``R G B X`` words, so one compiled pass packs them into a buffer this thread
reuses. Images Pillow cannot export in one piece (very large ones, older Pillow) take
``tobytes()``; both give the same bytes.
"""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
from numba import njit
from PIL import Image

_SCRATCH = threading.local()


def rgb_view(image: Image.Image) -> np.ndarray:
    """``(H, W, C)`` uint8 pixels of an RGB image, channels 0-2 being R, G, B (C is 4 for
    Pillow's zero-copy view, 3 for a copy). Valid while ``image`` is alive and unchanged."""
    if image.mode != "RGB":
        raise ValueError(f"rgb_view needs an RGB image, not {image.mode}")
    width, height = image.size
    try:
        exported = pa.array(image)
        words = exported.buffers()[-1]
        complete = getattr(exported.type, "list_size", None) == 4 and words is not None \
            and words.size >= height * width * 4
    except (AttributeError, TypeError, ValueError, pa.ArrowException):  # no export, or rows not one block
        complete = False
    if not complete:  # also any layout other than the 4-byte words this reads
        return np.frombuffer(image.tobytes(), dtype=np.uint8).reshape(height, width, 3)
    return np.frombuffer(words, dtype=np.uint8)[: height * width * 4].reshape(height, width, 4)


@njit(cache=True, nogil=True)
def _pack(words, out):
    height, width = words.shape[0], words.shape[1]
    position = 0
    for row in range(height):
        for x in range(width):
            out[position] = words[row, x, 0]
            out[position + 1] = words[row, x, 1]
            out[position + 2] = words[row, x, 2]
            position += 3


def packed_rgb(pixels: np.ndarray) -> memoryview:
    """The ``R G B`` bytes of ``rgb_view`` pixels, row by row (``Image.tobytes()``'s bytes).

    A 4-channel view is packed into this thread's scratch buffer: the result is valid until
    the thread's next call."""
    if pixels.shape[2] == 3:
        return memoryview(np.ascontiguousarray(pixels)).cast("B")
    size = pixels.shape[0] * pixels.shape[1] * 3
    scratch = getattr(_SCRATCH, "buffer", None)
    if scratch is None or scratch.size < size:
        scratch = _SCRATCH.buffer = np.empty(max(size, 1 << 20), dtype=np.uint8)
    _pack(pixels, scratch)
    return memoryview(scratch[:size])
