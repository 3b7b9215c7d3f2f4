"""Precomputed embedding shards: LAION's release and clip-retrieval inference's output.

Why: the operator of a clip-retrieval back-end rarely embeds images themselves; LAION released
its embeddings, and ``clip-retrieval inference`` writes the same layout:

    EMB/img_emb/img_emb_N.npy      [rows, dim] float16 or float32 (text_emb/text_emb_N.npy: captions)
    EMB/metadata/metadata_N.parquet    one row per vector (image_path, caption, url, LICENSE, ...)

``N`` may be zero-padded (clip-retrieval pads to the partition count). ``--embeddings`` may name
``EMB`` or its ``img_emb`` folder; ``--metadata`` defaults to ``EMB/metadata``. Shards pair by
their number; shapes are read from the ``.npy`` headers and parquet footers only, so checking a
10-million-row release costs milliseconds and every disagreement is one line naming the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from letitwag.errors import UserInputError

MODALITY_FOLDERS = {"image": "img_emb", "text": "text_emb"}
_SHARD_NUMBER = re.compile(r"_(\d+)\.(npy|parquet)$")


@dataclass(frozen=True)
class EmbeddingShard:
    """One ``.npy`` of vectors and its metadata parquet; ``start`` is its first row's global id."""

    number: int
    vectors_path: Path
    metadata_path: Path
    rows: int
    dim: int
    dtype: str
    start: int

    def vectors(self) -> np.ndarray:
        """The shard's vectors, memory-mapped (nothing is read until sliced)."""
        return np.load(self.vectors_path, mmap_mode="r", allow_pickle=False)

    def normalised_chunks(self, chunk_rows: int = 65_536) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, float32 unit vectors)`` in bounded chunks: the shard is never all in memory."""
        vectors = self.vectors()
        for start in range(0, self.rows, chunk_rows):
            chunk = np.asarray(vectors[start:start + chunk_rows], dtype=np.float32)
            yield start, normalise(chunk, f"{self.vectors_path} rows {start}..{start + len(chunk) - 1}")


def normalise(vectors: np.ndarray, where: str) -> np.ndarray:
    """L2-normalise rows in place (cosine = inner product); zero or non-finite rows are refused."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    bad = np.flatnonzero(~np.isfinite(norms[:, 0]) | (norms[:, 0] == 0))
    if len(bad):
        raise UserInputError(f"{where}: row {bad[0]} is zero or not finite ({len(bad)} such rows); "
                             "remove them from the shard and rerun")
    vectors /= norms
    return vectors


def _numbered(folder: Path, prefix: str, suffix: str) -> dict[int, Path]:
    found: dict[int, Path] = {}
    for path in folder.glob(f"{prefix}_*{suffix}"):
        match = _SHARD_NUMBER.search(path.name)
        if match and path.name == f"{prefix}_{match.group(1)}{suffix}":
            number = int(match.group(1))
            if number in found:
                raise UserInputError(f"{folder}: {found[number].name} and {path.name} are both shard {number}; "
                                     "keep one of them")
            found[number] = path
    return found


def _vectors_folder(embeddings: Path, modality: str) -> Path:
    sub = MODALITY_FOLDERS[modality]
    if (embeddings / sub).is_dir():
        return embeddings / sub
    if embeddings.is_dir() and any(embeddings.glob(f"{sub}_*.npy")):
        return embeddings
    raise UserInputError(f"{embeddings}: no {sub}/ folder and no {sub}_N.npy files; give --embeddings the folder "
                         f"that holds {sub}/ (LAION and clip-retrieval inference layout) or {sub}/ itself")


def find_shards(embeddings: str | Path, metadata: str | Path | None = None,
                modality: str = "image") -> list[EmbeddingShard]:
    """Pair ``*_emb_N.npy`` with ``metadata_N.parquet`` and check every shape; ``UserInputError`` on any mismatch."""
    import pyarrow.parquet as pq

    embeddings = Path(embeddings)
    if not embeddings.is_dir():
        raise UserInputError(f"{embeddings}: no such folder; give --embeddings the folder of .npy shards")
    folder = _vectors_folder(embeddings, modality)
    if metadata is None:
        metadata = folder.parent / "metadata"
    metadata = Path(metadata)
    if not metadata.is_dir():
        raise UserInputError(f"{metadata}: no such metadata folder; give --metadata the folder of metadata_N.parquet")
    vectors = _numbered(folder, MODALITY_FOLDERS[modality], ".npy")
    tables = _numbered(metadata, "metadata", ".parquet")
    if not vectors:
        raise UserInputError(f"{folder}: no {MODALITY_FOLDERS[modality]}_N.npy shards")
    unpaired = sorted(set(vectors) ^ set(tables))
    if unpaired:
        number = unpaired[0]
        have, lack = (vectors[number], metadata) if number in vectors else (tables[number], folder)
        raise UserInputError(f"{have}: shard {number} has no partner in {lack} ({len(unpaired)} unpaired shard(s)); "
                             "every .npy needs its metadata_N.parquet and the reverse")
    shards, start, first = [], 0, None
    for number in sorted(vectors):
        path = vectors[number]
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as error:
            raise UserInputError(f"{path}: not a readable .npy array ({error}); re-export the shard") from None
        if array.ndim != 2 or array.dtype not in (np.float16, np.float32):
            raise UserInputError(f"{path}: shape {array.shape} dtype {array.dtype}; a shard must be a 2-D float16 "
                                 "or float32 array [rows, dim]")
        try:
            rows = pq.ParquetFile(tables[number]).metadata.num_rows
        except Exception as error:  # pyarrow raises several types for broken footers
            raise UserInputError(f"{tables[number]}: not a readable parquet file ({error})") from None
        if rows != array.shape[0]:
            raise UserInputError(f"{path}: {array.shape[0]} vectors but {tables[number].name} has {rows} rows; "
                                 "each metadata row must describe the vector at the same position")
        first = first or (path, array.shape[1])
        if array.shape[1] != first[1]:
            raise UserInputError(f"{path}: vectors of width {array.shape[1]} but {first[0].name} has width "
                                 f"{first[1]}; all shards of one index must come from one model")
        shards.append(EmbeddingShard(number, path, tables[number], int(rows), int(array.shape[1]),
                                     str(array.dtype), start))
        start += int(rows)
    return shards
