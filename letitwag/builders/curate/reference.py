"""Step 4: remove candidates that overlap reference test sets (e.g. ImageNet val).

The paper removed overlap with existing benchmarks so that Let it Wag! measures generalisation
rather than memorised test images. A reference set is given as:

- an image folder (hashed here with the same pHash; with ``--model`` also embedded),
- a hash file: ``.parquet``/``.csv``/``.json`` with a ``phash`` column of 16-hex-digit hashes
  (imagededup's ``encode_images`` output, a ``{name: hash}`` JSON, is accepted too),
- an embedding file: ``.npy`` of L2-normalised vectors from the same ``--model``.

A candidate is rejected when its pHash is within ``reference_distance`` bits of a reference
hash, or its embedding's cosine similarity to a reference vector is >= ``reference_cosine``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from letitwag.builders.curate.phash import from_hex, pairs_within, phash_image
from letitwag.builders.curate.steps import StepOutcome
from letitwag.errors import UserInputError

LOGGER = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def _hash_file(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".parquet":
            values = pq.read_table(path, columns=["phash"])["phash"].to_pylist()
        elif path.suffix == ".csv":
            values = pd.read_csv(path, usecols=["phash"], dtype=str)["phash"].tolist()
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
            values = list(data.values()) if isinstance(data, dict) else [row["phash"] for row in data]
        return from_hex(values)
    except (KeyError, ValueError, TypeError, OSError) as error:
        raise UserInputError(f"{path}: cannot read pHashes ({error}); give a 'phash' column of 16 hex digits") from None


def _folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _folder_hashes(folder: Path) -> np.ndarray:
    from PIL import Image

    hashes = []
    for path in _folder_images(folder):
        try:
            with Image.open(path) as image:
                hashes.append(phash_image(image))
        except Exception:  # noqa: BLE001 - an unreadable reference image cannot match anything
            LOGGER.warning("reference image %s cannot be decoded; skipped", path)
            continue
    return np.array(hashes, dtype=np.uint64)


def reference_overlap(frame: pd.DataFrame, curation) -> StepOutcome:
    config = curation.config
    outcome = StepOutcome()
    hashes = from_hex(frame["phash"])
    vectors = None
    for spec in config.reference:
        path = Path(spec)
        if not path.exists():
            raise UserInputError(f"reference set {spec}: no such folder or file")
        embeddings = None
        if path.is_dir():
            reference_hashes = _folder_hashes(path)
            if config.model:
                embeddings = curation.embeddings.encode_paths(_folder_images(path))
        elif path.suffix == ".npy":
            if not config.model:
                raise UserInputError(f"reference set {spec}: an embedding file needs --model (the same encoder)")
            reference_hashes = np.zeros(0, np.uint64)
            embeddings = np.load(path, allow_pickle=False).astype(np.float32)
        else:
            reference_hashes = _hash_file(path)
        first, second, distance = pairs_within(hashes, config.reference_distance, other=reference_hashes)
        for i, j, d in zip(first, second, distance):
            outcome.reject(frame.index[i], f"overlaps reference set {path.name} (image {j}, pHash distance {d})")
        if embeddings is not None and len(embeddings):
            if vectors is None:
                vectors = curation.embeddings.rows(frame)
            if embeddings.shape[1] != vectors.shape[1]:
                raise UserInputError(f"reference set {spec}: vectors of size {embeddings.shape[1]}, the model gives "
                                     f"{vectors.shape[1]}; embed the reference set with the same --model")
            for start in range(0, len(vectors), 4096):
                similarity = vectors[start:start + 4096] @ embeddings.T
                best, where = similarity.max(axis=1), similarity.argmax(axis=1)
                for offset in np.nonzero(best >= config.reference_cosine)[0]:
                    outcome.reject(frame.index[start + offset], f"overlaps reference set {path.name} "
                                   f"(image {where[offset]}, cosine {best[offset]:.3f} >= {config.reference_cosine})")
    return outcome
