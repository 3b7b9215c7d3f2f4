"""Image embeddings of curation rows with a pluggable encoder, cached per chunk for resume.

Why cached by (model spec, rows): encoding is the slowest part of curation on a CPU; after a
``kill -9`` the finished chunks are loaded back, and the outlier, relevance and reference
steps share one set of vectors. Vectors are ``.npy`` files read with ``allow_pickle=False``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from letitwag.io import atomic_path, text_sha256

LOGGER = logging.getLogger(__name__)


class EmbeddingCache:
    """Loads the encoder on first use and embeds rows (image paths relative to ``out_dir``)."""

    def __init__(self, model: str, device: str, batch_size: int, chunk_size: int, out_dir: Path, work_dir: Path):
        self.model, self.device, self.batch_size, self.chunk_size = model, device, batch_size, chunk_size
        self.out_dir = out_dir
        self.cache_dir = work_dir / f"embeddings-{text_sha256(model)[:12]}"
        self._encoder = None

    @property
    def encoder(self):
        if self._encoder is None:
            from letitwag.models import load_encoder

            self._encoder = load_encoder(self.model, device=self.device)
        return self._encoder

    def encode_paths(self, paths: list[Path]) -> np.ndarray:
        """Unit vectors ``[N, D]`` (float32) of image files, in batches."""
        import torch

        vectors = []
        for start in range(0, len(paths), self.batch_size):
            batch = []
            for path in paths[start:start + self.batch_size]:
                with Image.open(path) as image:
                    batch.append(self.encoder.preprocess(image.convert("RGB")))
            vectors.append(self.encoder.encode_images(torch.stack(batch)).cpu().numpy().astype(np.float32))
        return np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32)

    def rows(self, frame: pd.DataFrame) -> np.ndarray:
        """Vectors of ``frame``'s rows, aligned with ``frame.index`` (computed or read from the cache)."""
        ordered = frame.sort_index()
        pieces = {}
        chunks = range(0, len(ordered), self.chunk_size)
        for start in tqdm(chunks, desc=f"embed ({self.model})", unit="chunk", disable=len(chunks) < 2):
            part = ordered.iloc[start:start + self.chunk_size]
            key = text_sha256(",".join(map(str, part.index)) + "|" + ",".join(part["image_path"]))[:20]
            path = self.cache_dir / f"{key}.npy"
            if path.exists():
                vectors = np.load(path, allow_pickle=False)
            else:
                vectors = self.encode_paths([self.out_dir / p for p in part["image_path"]])
                with atomic_path(path) as tmp:
                    with open(tmp, "wb") as handle:
                        np.save(handle, vectors, allow_pickle=False)
            pieces.update(zip(part.index, vectors))
        return np.stack([pieces[row] for row in frame.index]) if len(frame) else np.zeros((0, 0), np.float32)

    def texts(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode_texts(texts).cpu().numpy().astype(np.float32)
