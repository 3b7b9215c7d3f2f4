"""Decode dataset images in DataLoader workers; a corrupt image is flagged, never fatal.

Why here and not in ``datasets``: the image column is read undecoded so each sample's bytes
can be hashed (for the dataset fingerprint) and a broken file can be counted and skipped.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

HASH_BYTES = 32


def _image_bytes(value) -> bytes | None:
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        if value.get("path") and Path(value["path"]).is_file():
            return Path(value["path"]).read_bytes()
    return None


class ImageRows:
    """Map-style dataset over selected rows: ``(position, row index, label, sha256, pixels|None)``.

    ``dataset`` is anything indexable by row (a ``datasets.Dataset``, ``wds.WdsRows``); without a
    label column (retrieval) every label is -1."""

    def __init__(self, dataset, image_column: str, label_column: str | None, indices: np.ndarray, preprocess):
        self.dataset = dataset
        self.image_column = image_column
        self.label_column = label_column
        self.indices = indices
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        from PIL import Image

        index = int(self.indices[position])
        row = self.dataset[index]
        label = row[self.label_column] if self.label_column is not None else None
        label = -1 if label is None else int(label)
        data = _image_bytes(row[self.image_column])
        content = hashlib.sha256(data or b"").digest()
        pixels = None
        if data is not None:
            try:
                with Image.open(io.BytesIO(data)) as image:
                    image.load()
                    pixels = self.preprocess(image.convert("RGB"))
            except Exception as error:  # noqa: BLE001 - any decode failure marks the sample corrupt
                logger.debug("row %d: undecodable image (%s)", index, error)
        return position, index, label, content, pixels


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


def collate_rows(rows):
    """Stack decodable samples' pixels; keep every sample's bookkeeping."""
    import torch

    positions = np.array([r[0] for r in rows], dtype=np.int64)
    indices = np.array([r[1] for r in rows], dtype=np.int64)
    labels = np.array([r[2] for r in rows], dtype=np.int64)
    hashes = np.frombuffer(b"".join(r[3] for r in rows), dtype=np.uint8).reshape(len(rows), HASH_BYTES)
    ok = np.array([r[4] is not None for r in rows], dtype=bool)
    pixels = torch.stack([r[4] for r in rows if r[4] is not None]) if ok.any() else None
    return positions, indices, labels, hashes, ok, pixels
