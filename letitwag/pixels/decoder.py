"""Decode JPEG bytes in batches on the evaluation device, falling back per image to the CPU path.

``--decode auto|cpu|gpu`` (``resolve_decode``): ``cpu`` is the model's own PIL preprocessing in
DataLoader workers; ``gpu`` sends JPEG bytes to the device, where ``torchvision.io.decode_jpeg``
decodes a batch at once (nvJPEG on CUDA) and ``TensorPreprocess`` resizes, crops and normalises
it as the model's preprocessing does. On a CPU device ``gpu`` runs the same tensor path with
torchvision's CPU decoder (the path's CPU twin, used by the tests). ``auto`` is ``gpu`` on a
CUDA device whose GPU decoder works and whose model preprocessing the tensor path reproduces,
else ``cpu``. Features from the two paths differ slightly (nvJPEG's IDCT and chroma upsampling
are not libjpeg's), so the mode is part of the feature cache's identity.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

from letitwag.errors import UserInputError
from letitwag.pixels.preprocess import TensorPreprocess
from letitwag.pixels.recipe import PixelRecipe, UnsupportedPreprocess, recipe_from_preprocess

logger = logging.getLogger(__name__)

DECODE_MODES = ("auto", "cpu", "gpu")


@dataclass(frozen=True)
class DecodeChoice:
    """The resolved ``--decode``: ``mode`` (``cpu`` | ``gpu``), the recipe (gpu), and why ``cpu`` if
    ``gpu`` was possible to ask for but not used."""

    mode: str
    recipe: PixelRecipe | None = None
    reason: str | None = None

    def describe(self) -> dict:
        """What results and provenance record."""
        described = {"mode": self.mode}
        if self.reason:
            described["cpu_reason"] = self.reason
        return described


def _tiny_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


def device_decoder_problem(device: str) -> str | None:
    """None when ``decode_jpeg`` works on ``device`` (tried on a tiny JPEG), else why not."""
    import torch

    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError as error:
        return f"torchvision's image decoder is not importable ({error})"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        return f"device {device}: no CUDA device is available"
    if not str(device).startswith(("cuda", "cpu")):
        return f"device {device}: torchvision decodes JPEGs on CUDA devices and the CPU only"
    try:
        data = torch.frombuffer(bytearray(_tiny_jpeg()), dtype=torch.uint8)
        decode_jpeg([data], mode=ImageReadMode.RGB, device=device)
    except (RuntimeError, ValueError) as error:
        return f"torchvision cannot decode JPEGs on {device} ({str(error).splitlines()[0][:200]})"
    return None


def resolve_decode(requested: str, device: str, preprocess) -> DecodeChoice:
    """``--decode`` for this device and model preprocessing (see the module docstring)."""
    if requested not in DECODE_MODES:
        raise UserInputError(f"--decode {requested!r}: choose one of {', '.join(DECODE_MODES)}")
    if requested == "cpu":
        return DecodeChoice("cpu")
    if requested == "auto" and not str(device).startswith("cuda"):
        return DecodeChoice("cpu")
    try:
        recipe = recipe_from_preprocess(preprocess)
    except UnsupportedPreprocess as error:
        reason = f"the model's preprocessing is not reproduced on tensors: {error}"
    else:
        reason = device_decoder_problem(device)
        if reason is None:
            return DecodeChoice("gpu", recipe)
    log = logger.warning if requested == "gpu" else logger.info
    log("decoding images on the CPU: %s", reason)
    return DecodeChoice("cpu", None, reason)


class DeviceDecoder:
    """Callable: JPEG byte tensors (CPU, ideally pinned) -> (``float32 [k, 3, h, w]`` on ``device``
    for the ``k`` decodable ones in order, ``ok`` mask over the inputs).

    A batch that nvJPEG rejects is retried image by image; an image the device cannot decode
    goes through ``cpu_fallback`` (bytes -> the model's CPU-preprocessed tensor, or None when
    the image is corrupt). ``counts`` tallies ``device``, ``device_failed`` and ``corrupt``.
    """

    def __init__(self, recipe: PixelRecipe, device: str, cpu_fallback: Callable[[bytes], object],
                 counts: Counter | None = None, exact: bool | None = None) -> None:
        # float64 resampling on a CPU gives PIL's pixels exactly (the CPU twin); GPUs sum in float32
        exact = not str(device).startswith("cuda") if exact is None else exact
        self.preprocess = TensorPreprocess(recipe, exact=exact)
        self.device = device
        self.cpu_fallback = cpu_fallback
        self.counts: Counter = counts if counts is not None else Counter()

    def decode(self, blobs: list) -> list:
        """Decoded ``uint8 [3, H, W]`` images on the device, None where the device failed."""
        from torchvision.io import ImageReadMode, decode_jpeg

        if not blobs:
            return []
        try:
            return list(decode_jpeg(blobs, mode=ImageReadMode.RGB, device=self.device))
        except RuntimeError:
            pass  # one bad image fails the whole batch: find it
        decoded = []
        for blob in blobs:
            try:
                decoded.append(decode_jpeg([blob], mode=ImageReadMode.RGB, device=self.device)[0])
            except RuntimeError as error:
                logger.debug("device decode failed (%s); using the CPU path", str(error).splitlines()[0][:200])
                decoded.append(None)
        return decoded

    def __call__(self, blobs: list):
        import torch

        decoded = self.decode(blobs)
        ok = np.array([image is not None for image in decoded], dtype=bool)
        device_rows = np.flatnonzero(ok)
        self.counts["device"] += len(device_rows)
        if len(device_rows):
            pixels = self.preprocess([image for image in decoded if image is not None])
        else:
            pixels = torch.empty((0, 3, *self.preprocess.recipe.output_size), device=self.device)
        fallback_rows, fallback_pixels = [], []
        for row in np.flatnonzero(~ok):
            self.counts["device_failed"] += 1
            tensor = self.cpu_fallback(blobs[row].numpy().tobytes())
            if tensor is None:
                self.counts["corrupt"] += 1
                continue
            ok[row] = True
            fallback_rows.append(int(row))
            fallback_pixels.append(tensor)
        if fallback_pixels:
            pixels = place_rows([(device_rows, pixels), (np.asarray(fallback_rows), torch.stack(fallback_pixels))],
                                np.flatnonzero(ok), self.device)
        return pixels, ok


def pack_bytes(datas) -> tuple[object, np.ndarray]:
    """Encoded images in one uint8 tensor (one copy; pinning it pins them all) and their offsets."""
    import torch

    blob = torch.frombuffer(bytearray().join(datas), dtype=torch.uint8) if datas else torch.zeros(0, dtype=torch.uint8)
    return blob, np.cumsum([0] + [len(data) for data in datas]).astype(np.int64)


def byte_views(blob, offsets: np.ndarray) -> list:
    """``blob[offsets[i]:offsets[i + 1]]`` for each image."""
    return [blob[int(start) : int(stop)] for start, stop in zip(offsets[:-1], offsets[1:])]


def place_rows(parts: list[tuple[np.ndarray, object]], rows: np.ndarray, device):
    """Merge ``(row numbers, pixels)`` parts into one ``[len(rows), ...]`` batch in ``rows`` order."""
    import torch

    parts = [(part_rows, pixels) for part_rows, pixels in parts if len(part_rows)]
    if len(parts) == 1:
        return parts[0][1].to(device, non_blocking=True)
    template = parts[0][1]
    batch = torch.empty((len(rows), *template.shape[1:]), dtype=template.dtype, device=device)
    slot = {int(row): index for index, row in enumerate(rows)}
    for part_rows, pixels in parts:
        index = torch.tensor([slot[int(row)] for row in part_rows], device=device)
        batch.index_copy_(0, index, pixels.to(device, non_blocking=True))
    return batch
