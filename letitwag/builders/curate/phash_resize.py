"""The pHash's 32x32 greyscale input, computed with Pillow's exact arithmetic but compiled.

Why: imagededup's pHash starts with ``image.resize((32, 32), LANCZOS).convert("L")`` on the
RGB image, and Pillow resamples one tap at a time in scalar C. The same fixed-point arithmetic
compiled with numba, summing taps in SIMD lanes, gives identical bytes faster (with it,
``benchmarks/bench_curate.py`` went from 207 to 320-331 images/s and ``bench_dedup.py``'s exact
mode from 2.73x to 3.64x imagededup), because it follows
Pillow's definition (facts, not code, carried over from ``libImaging/Resample.c`` and
``Convert.c``):

* Lanczos-3 weights ``sinc(t) * sinc(t / 3)`` at ``t = (x - center + 0.5) / scale`` for the
  source pixels ``x`` within ``3 * scale`` of each output's centre, normalised to sum 1, then
  scaled by 2^22 and rounded half away from zero to integers;
* a horizontal pass over only the rows the vertical pass reads, then a vertical pass over its
  bytes: each output is ``(2^21 + sum(pixel * weight)) >> 22`` clamped to 0..255;
* greyscale ``(19595 R + 38470 G + 7471 B + 32768) >> 16``.

Every partial sum is an integer below 2^31, so float64 accumulation in any order (the SIMD
order included) is exact. Shapes Pillow resamples in another order or path (height shrinking
over twice as much as width, or over 100x taller than wide, or a side already 32) and modes
other than RGB are left to Pillow itself. Each process checks the kernel against the installed
Pillow once before trusting it; the tests compare both on many random sizes and contents.
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache

import numpy as np
from numba import njit
from PIL import Image

from letitwag.builders.curate.pixels import rgb_view

LOGGER = logging.getLogger(__name__)

HASH_SIZE = 32  # imagededup's PHash target_size
_PRECISION_BITS = 22  # Pillow's fixed-point weights for 8-bit images: 32 - 8 - 2
_LANCZOS_SUPPORT = 3.0


@njit(cache=True, nogil=True)
def _sinc(value):
    if value == 0.0:
        return 1.0
    value = value * math.pi
    return math.sin(value) / value


@njit(cache=True, nogil=True)
def _fixed_point_weights(in_size, out_size, first, count, weights):
    """Fills ``first``, ``count`` and ``weights`` (see ``resample_weights``); no fast-math:
    the weights are summed and rounded in Pillow's order."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = _LANCZOS_SUPPORT * filter_scale
    inverse_scale = 1.0 / filter_scale
    unit = float(1 << _PRECISION_BITS)
    raw = np.zeros(weights.shape[1], dtype=np.float64)
    for out in range(out_size):
        center = (out + 0.5) * scale
        low = max(int(center - support + 0.5), 0)
        taps = min(int(center + support + 0.5), in_size) - low
        total = 0.0
        for tap in range(taps):
            position = (tap + low - center + 0.5) * inverse_scale
            raw[tap] = _sinc(position) * _sinc(position / 3) if -3.0 <= position < 3.0 else 0.0
            total += raw[tap]
        for tap in range(taps):
            weight = raw[tap] / total if total != 0.0 else raw[tap]
            weights[out, tap] = float(int(weight * unit - 0.5)) if weight < 0 else float(int(weight * unit + 0.5))
        first[out], count[out] = low, taps


@lru_cache(maxsize=256)
def resample_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pillow's fixed-point Lanczos weights for ``in_size -> out_size``: ``(first, count, weights)``.

    Output ``i`` reads source pixels ``first[i] .. first[i] + count[i] - 1`` with integer
    weights ``weights[i, :count[i]]`` (float64 holding integers, for the exact SIMD sums; zero
    beyond ``count[i]``, up to a row length that is a multiple of 8). Cached: images of one
    size share them.
    """
    width = int(math.ceil(_LANCZOS_SUPPORT * max(in_size / out_size, 1.0))) * 2 + 1
    padded = -(-width // 8) * 8  # zero weights up to a multiple of 8 taps, for whole SIMD steps
    first = np.zeros(out_size, dtype=np.int64)
    count = np.zeros(out_size, dtype=np.int64)
    weights = np.zeros((out_size, padded), dtype=np.float64)
    _fixed_point_weights(in_size, out_size, first, count, weights)
    return first, count, weights


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz"})
def _clip8(total: float) -> int:
    value = int(math.floor(total * (1.0 / (1 << _PRECISION_BITS))))
    return 0 if value < 0 else (255 if value > 255 else value)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz"})
def _greyscale_resize(pixels, x_first, x_count, x_weights, y_first, y_count, y_weights):
    """``pixels`` (H, W, C) uint8, channels 0-2 RGB -> (out_h, out_w) uint8: Pillow's Lanczos, then ``L``."""
    width = pixels.shape[1]
    out_w = x_first.shape[0]
    out_h = y_first.shape[0]
    row_low = y_first[0]
    row_high = y_first[out_h - 1] + y_count[out_h - 1]
    half = float(1 << (_PRECISION_BITS - 1))  # rounds the fixed-point sums to nearest
    taps = x_weights.shape[1]
    line = np.zeros((3, width + taps), dtype=np.float64)  # zeros past the edge meet zero weights
    across = np.empty((row_high - row_low, out_w * 3), dtype=np.float64)
    for row in range(row_low, row_high):
        for x in range(width):
            for channel in range(3):
                line[channel, x] = pixels[row, x, channel]
        for out in range(out_w):
            low = x_first[out]
            weights = x_weights[out]
            for channel in range(3):
                values = line[channel, low:low + taps]
                total = half
                for tap in range(taps):  # a fixed multiple of 8: no scalar remainder loop
                    total += values[tap] * weights[tap]
                across[row - row_low, out * 3 + channel] = _clip8(total)
    result = np.empty((out_h, out_w), dtype=np.uint8)
    column = np.empty(out_w * 3, dtype=np.float64)
    for out in range(out_h):
        column[:] = half
        low = y_first[out] - row_low
        for tap in range(y_count[out]):
            weight = y_weights[out, tap]
            for position in range(out_w * 3):
                column[position] += across[low + tap, position] * weight
        for x in range(out_w):
            red = _clip8(column[x * 3])
            green = _clip8(column[x * 3 + 1])
            blue = _clip8(column[x * 3 + 2])
            result[out, x] = (red * 19595 + green * 38470 + blue * 7471 + 0x8000) >> 16
    return result


def _uses_vertical_pass_first(width: int, height: int) -> bool:
    """Pillow >= 13 resamples first vertically when height shrinks over twice as much as width;
    the kernel only does horizontal-then-vertical, so those shapes go to Pillow."""
    return height > HASH_SIZE and height - HASH_SIZE > 2 * (width - HASH_SIZE)


def _kernel_applies(image: Image.Image) -> bool:
    width, height = image.size
    return (image.mode == "RGB" and HASH_SIZE not in (width, height)  # Pillow skips a pass there
            and not _uses_vertical_pass_first(width, height))  # which also covers Pillow's 100x-tall path


def _kernel(image: Image.Image, pixels: np.ndarray | None) -> np.ndarray:
    width, height = image.size
    pixels = rgb_view(image) if pixels is None else np.ascontiguousarray(pixels)
    return _greyscale_resize(pixels, *resample_weights(width, HASH_SIZE), *resample_weights(height, HASH_SIZE))


def _pillow(image: Image.Image) -> np.ndarray:
    return np.asarray(image.resize((HASH_SIZE, HASH_SIZE), Image.LANCZOS).convert("L"), dtype=np.uint8)


@lru_cache(maxsize=1)
def kernel_matches_pillow() -> bool:
    """Whether the compiled resize gives the installed Pillow's bytes on a few seeded images.

    Why checked at run time: the arithmetic is Pillow's, not a published standard, and a Pillow
    release may change it (13.0 changed the pass order); on any difference every image goes to
    Pillow, slower but always imagededup's hash on this installation.
    """
    rng = np.random.default_rng(0)
    for width, height in ((640, 480), (480, 640), (45, 37), (300, 20), (7, 5)):
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
        if not np.array_equal(_kernel(image, None), _pillow(image)):
            LOGGER.warning("the compiled pHash resize differs from Pillow %s on a %dx%d image; "
                           "using Pillow's resize (slower)", Image.__version__, width, height)
            return False
    return True


def greyscale_hash_input(image: Image.Image, pixels: np.ndarray | None = None) -> np.ndarray:
    """``np.asarray(image.resize((32, 32), LANCZOS).convert("L"))``, compiled where that is exact.

    ``pixels`` may pass the image's ``pixels.rgb_view`` when the caller already has it.
    """
    if _kernel_applies(image) and kernel_matches_pillow():
        return _kernel(image, pixels)
    return _pillow(image)

