"""Perceptual hash (pHash) bit-compatible with imagededup's ``PHash``, and a fast Hamming search.

Why imagededup's definition: the paper de-duplicated Let it Wag! with
``imagededup.methods.PHash().find_duplicates(max_distance_threshold=10)``; using the same
64 bits keeps our thresholds meaningful and lets hashes computed by either tool be compared.
The definition (facts, not code, carried over): non-RGB images go RGBA then RGB, a 32x32
Lanczos resize, then greyscale ``L``; a 2-D DCT-II (``scipy.fftpack.dct`` on rows then
columns, unnormalised); the top-left 8x8 coefficients; a bit is 1 where the coefficient is
``>=`` the median of those 64 minus the DC term; bits packed row-major, most significant
first, written as 16 hex digits.

Why it is faster than imagededup here: the 32x32 resize is compiled (``phash_resize``, same
bytes as Pillow), the DCT and median run batched in numpy, a JPEG can be
hashed from a reduced-size decode (``Image.draft``, opt-in: it approximates the exact hash,
the benchmark reports its bit agreement), and the pair search is a blocked XOR + popcount over
all pairs (``numpy.bitwise_count``), never a Python loop over pairs.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from PIL import Image
from scipy.fftpack import dct

from letitwag.builders.curate.phash_resize import HASH_SIZE, greyscale_hash_input

COEFFICIENTS = 8
# what the fork server of hashing and validation workers imports first (see worker_preload)
WORKER_PRELOAD = ("letitwag.builders.curate.worker_preload",)


def hash_input(image: Image.Image, pixels: np.ndarray | None = None) -> np.ndarray:
    """The 32x32 ``uint8`` greyscale array imagededup hashes for ``image`` (an RGB image's
    ``pixels.rgb_view`` may come along in ``pixels`` when the caller has it)."""
    if image.mode != "RGB":
        image, pixels = image.convert("RGBA").convert("RGB"), None
    return greyscale_hash_input(image, pixels)


def hash_inputs_to_phashes(arrays: np.ndarray) -> np.ndarray:
    """pHashes (``uint64``) of a stack of 32x32 greyscale arrays ``[N, 32, 32]``."""
    stack = np.asarray(arrays).reshape(-1, HASH_SIZE, HASH_SIZE).astype(np.float64)
    coefficients = dct(dct(stack, axis=1), axis=2)[:, :COEFFICIENTS, :COEFFICIENTS].reshape(len(stack), -1)
    medians = np.median(coefficients[:, 1:], axis=1)
    bits = coefficients >= medians[:, None]
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def phash_image(image: Image.Image, pixels: np.ndarray | None = None) -> int:
    """The pHash of one PIL image, as an int (``pixels`` as for ``hash_input``)."""
    return int(hash_inputs_to_phashes(hash_input(image, pixels)[None])[0])


def open_for_hash(path_or_file, draft_size: int | None = None) -> Image.Image:
    """Open an image for hashing; with ``draft_size`` a JPEG decodes at the smallest DCT scale
    keeping both sides >= ``draft_size`` (much faster; approximate, see the module docstring)."""
    image = Image.open(path_or_file)
    if draft_size and image.format == "JPEG":
        image.draft("RGB", (draft_size, draft_size))
    image.load()
    return image


def to_hex(value: int) -> str:
    return f"{int(value):016x}"


def from_hex(values: Iterable[str]) -> np.ndarray:
    """Hex hashes (imagededup's strings) to a ``uint64`` array."""
    return np.array([int(v, 16) for v in values], dtype=np.uint64)


def pairs_within(hashes: np.ndarray, max_distance: int, other: np.ndarray | None = None,
                 block: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs at Hamming distance <= ``max_distance``: ``(i, j, distance)``.

    Within ``hashes`` (``other`` None) each pair once, ``i < j`` (only the upper triangle is
    computed); against ``other`` every (query ``i``, reference ``j``) pair. Blocked so memory
    stays ``block x len(other)`` bytes.
    """
    queries = np.ascontiguousarray(hashes, dtype=np.uint64)
    within = other is None
    targets = queries if within else np.ascontiguousarray(other, dtype=np.uint64)
    found_i, found_j, found_d = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.uint8)]
    for start in range(0, len(queries), block):
        chunk = queries[start:start + block]
        offset = start if within else 0
        distance = np.bitwise_count(chunk[:, None] ^ targets[None, offset:])
        close = distance <= max_distance
        if within:  # drop the diagonal and the lower half of the diagonal block
            close[:, : len(chunk)] &= np.triu(np.ones((len(chunk), len(chunk)), dtype=bool), k=1)
        rows, cols = np.nonzero(close)
        found_i.append(rows + start)
        found_j.append(cols + offset)
        found_d.append(distance[rows, cols])
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d).astype(np.uint8)


def _hash_paths(paths: list[str], draft_size: int | None) -> list[int | None]:
    hashes: list[int | None] = []
    for path in paths:
        try:
            with open_for_hash(path, draft_size) as image:
                hashes.append(phash_image(image))
        except (OSError, ValueError, Image.DecompressionBombError):
            hashes.append(None)
    return hashes


def hash_files(paths: list, workers: int = 2, draft_size: int | None = None, chunk: int = 64) -> list[int | None]:
    """pHashes of image files (``None`` for unreadable ones), in ``workers`` processes.

    Workers come from the project's fork server (``worker_context``), which has loaded the
    compiled resize once (``worker_preload``): each worker starts hashing at once, instead of
    paying the interpreter start of ``spawn`` or numba's start-up itself.

    ``draft_size=None`` gives imagededup's exact bits; a size (e.g. 128) decodes JPEGs at a
    reduced DCT scale first: several times faster, with a few bits differing on some images.
    """
    from concurrent.futures import ProcessPoolExecutor

    from letitwag.engine.executors import worker_context

    names = [str(p) for p in paths]
    pieces = [names[i:i + chunk] for i in range(0, len(names), chunk)]
    if workers <= 1:
        return [h for piece in pieces for h in _hash_paths(piece, draft_size)]
    with ProcessPoolExecutor(workers, mp_context=worker_context(WORKER_PRELOAD)) as pool:
        return [h for part in pool.map(_hash_paths, pieces, [draft_size] * len(pieces)) for h in part]


def near_duplicate_files(paths: list, max_distance: int = 10, workers: int = 2, draft_size: int | None = None,
                         margin: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``(i, j, distance)`` of image files within ``max_distance`` bits of exact pHash.

    With ``draft_size`` JPEGs are first hashed from a reduced decode (fast, approximate). A pair
    whose fast distance is at most ``max_distance - margin`` is kept and one beyond
    ``max_distance + margin`` dropped without more work; only the pairs in between are decided
    on exact hashes, so only their images are decoded in full. The result equals the exact
    search whenever no image's fast hash is more than ``margin / 2`` bits off its exact hash;
    a smaller margin re-hashes fewer images and may differ on a few borderline pairs (the
    benchmark reports the pair agreement and the per-image bit differences). Kept pairs report
    their fast distance, re-decided ones their exact distance.
    """
    names = [str(p) for p in paths]
    first_pass = hash_files(names, workers=workers, draft_size=draft_size)
    valid = np.array([i for i, h in enumerate(first_pass) if h is not None], dtype=np.int64)
    hashes = np.array([first_pass[i] for i in valid], dtype=np.uint64)
    if draft_size is None:
        first, second, distance = pairs_within(hashes, max_distance)
        return valid[first], valid[second], distance
    first, second, fast_distance = pairs_within(hashes, max_distance + margin)
    sure = fast_distance.astype(np.int64) + margin <= max_distance
    band_first, band_second = first[~sure], second[~sure]
    involved = np.unique(np.concatenate([band_first, band_second]))
    exact = np.zeros(len(valid), dtype=np.uint64)
    readable = np.zeros(len(valid), dtype=bool)
    for position, value in zip(involved.tolist(), hash_files([names[valid[i]] for i in involved], workers=workers)):
        if value is not None:
            exact[position], readable[position] = value, True
    band_distance = np.bitwise_count(exact[band_first] ^ exact[band_second]).astype(np.uint8)
    confirmed = readable[band_first] & readable[band_second] & (band_distance <= max_distance)
    first = np.concatenate([first[sure], band_first[confirmed]])
    second = np.concatenate([second[sure], band_second[confirmed]])
    distance = np.concatenate([fast_distance[sure], band_distance[confirmed]])
    order = np.lexsort((second, first))
    return valid[first[order]], valid[second[order]], distance[order]
