"""On-disk caches: zero-shot classifiers and image features in resumable chunks.

Why: encoding images dominates a run. Features are stored per (model, dataset rows) in chunk
files written atomically, so a rerun reuses them and a run killed with ``kill -9`` resumes at
the first missing chunk; finished chunks are never recomputed or half-written.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from letitwag.io import atomic_write_json, atomic_write_with

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    return Path("~/.cache/letitwag").expanduser()


def digest(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def model_identity(encoder) -> str:
    """Everything that changes the features: weights identity, precision, device type, transform."""
    meta = encoder.metadata()
    keep = ("spec", "adapter", "name", "pretrained", "resolved_checkpoint", "revision",
            "checkpoint_bytes", "checkpoint_mtime_ns", "init_seed", "library_version")
    return digest({
        "version": CACHE_VERSION,
        "model": {k: meta.get(k) for k in keep},
        "precision": encoder.precision,
        "device_type": str(encoder.device).split(":")[0],
        "preprocess": repr(encoder.preprocess),
    })


def _save_npz(path: Path, arrays: dict) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    atomic_write_with(path, write)


def _load_npz(path: Path) -> dict | None:
    """A cached file's arrays, or None if it is unreadable (it is then recomputed)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError) as error:
        logger.warning("ignoring unreadable cache file %s (%s)", path, error)
        return None


class ClassifierCache:
    """Class weight matrices keyed by (model, prompt set hash, class names)."""

    def __init__(self, root: Path | None):
        self.root = root / "classifiers" if root else None

    def path(self, model_key: str, prompt_hash: str, class_names: list[str]) -> Path | None:
        if self.root is None:
            return None
        return self.root / f"{digest([model_key, prompt_hash, class_names])[:40]}.npz"

    def load(self, path: Path | None) -> np.ndarray | None:
        if path is None or not path.is_file():
            return None
        data = _load_npz(path)
        return data["weights"] if data else None

    def save(self, path: Path | None, weights: np.ndarray) -> None:
        if path is not None:
            _save_npz(path, {"weights": weights})


class FeatureChunkStore:
    """Image features of one (model, dataset rows, sample selection) in numbered chunk files."""

    def __init__(self, root: Path | None, model_key: str, dataset_key: str, indices: np.ndarray, chunk_size: int):
        self.chunk_size = chunk_size
        self.indices = indices
        self.num_chunks = (len(indices) + chunk_size - 1) // chunk_size
        selection = hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()
        key = digest([model_key, dataset_key, selection, chunk_size])
        self.folder = root / "features" / key[:40] if root else None
        if self.folder is not None:
            atomic_write_json(self.folder / "manifest.json", {
                "version": CACHE_VERSION, "model_key": model_key, "dataset_key": dataset_key,
                "selection_sha256": selection, "chunk_size": chunk_size, "num_samples": int(len(indices)),
            })

    def positions(self, chunk: int) -> range:
        return range(chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, len(self.indices)))

    def _path(self, chunk: int) -> Path:
        return self.folder / f"chunk-{chunk:06d}.npz"

    def load(self, chunk: int) -> dict | None:
        if self.folder is None or not self._path(chunk).is_file():
            return None
        data = _load_npz(self._path(chunk))
        if data is not None and not np.array_equal(data["indices"], self.indices[list(self.positions(chunk))]):
            logger.warning("cache chunk %s holds other samples; recomputing it", self._path(chunk))
            return None
        return data

    def save(self, chunk: int, arrays: dict) -> None:
        if self.folder is not None:
            _save_npz(self._path(chunk), arrays)
