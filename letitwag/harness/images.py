"""Read dataset images in DataLoader workers; a corrupt image is flagged, never fatal.

Why here and not in ``datasets``: the image column is read undecoded so each sample's bytes
can be hashed (for the dataset fingerprint) and a broken file can be counted and skipped.

Two paths (``--decode``): ``cpu`` decodes every image in the workers with PIL and the model's
own preprocessing (``collate_rows`` stacks the pixels); ``gpu`` leaves the JPEGs the device
decodes as bytes (``letitwag.pixels.jpeg.device_route``) and decodes only the others in the
workers, and ``collate_for_device`` packs a batch's bytes into one buffer the DataLoader pins.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np

from letitwag.pixels.decoder import byte_views, pack_bytes
from letitwag.pixels.jpeg import device_route

logger = logging.getLogger(__name__)

HASH_BYTES = 32


def _image_bytes(value) -> bytes | None:
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        if value.get("path") and Path(value["path"]).is_file():
            return Path(value["path"]).read_bytes()
    return None


def decode_with_preprocess(data: bytes, preprocess):
    """The CPU path: PIL decode, RGB, the model's own preprocessing; None when undecodable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return preprocess(image.convert("RGB"))
    except Exception as error:  # noqa: BLE001 - any decode failure marks the sample corrupt
        logger.debug("undecodable image (%s)", error)
        return None


class Row(NamedTuple):
    """One sample as a worker returns it: ``payload`` is pixels (CPU path), JPEG ``bytes`` for the
    device, or None (corrupt or missing); ``route`` says why a ``--decode gpu`` sample took the
    CPU path (None otherwise)."""

    position: int
    index: int
    label: int
    content: bytes
    payload: object
    route: str | None


class ImageRows:
    """Map-style dataset over selected rows (``Row`` each).

    ``dataset`` is anything indexable by row (a ``datasets.Dataset``, ``wds.WdsRows``); without a
    label column (retrieval) every label is -1. With ``device_decode``, JPEGs the device decodes
    come back as bytes."""

    def __init__(self, dataset, image_column: str, label_column: str | None, indices: np.ndarray, preprocess,
                 device_decode: bool = False):
        self.dataset = dataset
        self.image_column = image_column
        self.label_column = label_column
        self.indices = indices
        self.preprocess = preprocess
        self.device_decode = device_decode

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> Row:
        index = int(self.indices[position])
        row = self.dataset[index]
        label = row[self.label_column] if self.label_column is not None else None
        label = -1 if label is None else int(label)
        data = _image_bytes(row[self.image_column])
        content = hashlib.sha256(data or b"").digest()
        if data is None:
            return Row(position, index, label, content, None, "missing" if self.device_decode else None)
        route = device_route(data) if self.device_decode else None
        if self.device_decode and route is None:
            return Row(position, index, label, content, data, None)
        pixels = decode_with_preprocess(data, self.preprocess)
        if pixels is None:
            logger.debug("row %d: undecodable image", index)
        return Row(position, index, label, content, pixels, route)


def decode_worker_init(_worker_id: int) -> None:
    """Keep decode workers off the model's compute threads: one intra-op thread, lower priority.

    Why: on a small CPU, workers that each spin up a full torch thread pool (or run at the
    same priority) steal the cores the forward pass is using; decoding only needs one thread.
    """
    import os

    import torch

    torch.set_num_threads(1)
    try:
        os.nice(5)
    except OSError:  # not permitted on some systems; decoding still works
        pass


def _bookkeeping(rows: list[Row]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    positions = np.array([r.position for r in rows], dtype=np.int64)
    indices = np.array([r.index for r in rows], dtype=np.int64)
    labels = np.array([r.label for r in rows], dtype=np.int64)
    hashes = np.frombuffer(b"".join(r.content for r in rows), dtype=np.uint8).reshape(len(rows), HASH_BYTES)
    return positions, indices, labels, hashes


def collate_rows(rows: list[Row]):
    """Stack decodable samples' pixels; keep every sample's bookkeeping."""
    import torch

    ok = np.array([r.payload is not None for r in rows], dtype=bool)
    pixels = torch.stack([r.payload for r in rows if r.payload is not None]) if ok.any() else None
    return (*_bookkeeping(rows), ok, pixels)


class DeviceBatch(NamedTuple):
    """A batch for the device path: the JPEGs' bytes packed in ``blob`` (``offsets``, rows
    ``jpeg_rows``), the worker-decoded samples' ``pixels`` (rows ``pixel_rows``), and per row the
    reason it took the CPU path (``routes``). The DataLoader pins the tensors."""

    positions: np.ndarray
    indices: np.ndarray
    labels: np.ndarray
    hashes: np.ndarray
    blob: object  # uint8 tensor
    offsets: np.ndarray
    jpeg_rows: np.ndarray
    pixels: object  # float tensor [k, 3, H, W] or None
    pixel_rows: np.ndarray
    routes: list

    def jpegs(self) -> list:
        """One uint8 tensor view per JPEG (into the pinned blob)."""
        return byte_views(self.blob, self.offsets)


def collate_for_device(rows: list[Row]) -> DeviceBatch:
    import torch

    jpeg_rows = np.array([i for i, r in enumerate(rows) if isinstance(r.payload, bytes)], dtype=np.int64)
    pixel_rows = np.array([i for i, r in enumerate(rows) if r.payload is not None and not isinstance(r.payload, bytes)],
                          dtype=np.int64)
    blob, offsets = pack_bytes([rows[i].payload for i in jpeg_rows])
    pixels = torch.stack([rows[i].payload for i in pixel_rows]) if len(pixel_rows) else None
    return DeviceBatch(*_bookkeeping(rows), blob, offsets, jpeg_rows, pixels, pixel_rows, [r.route for r in rows])
