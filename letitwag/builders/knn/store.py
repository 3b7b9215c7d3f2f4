"""A kNN index on disk: faiss vectors, metadata rows and a config, read memory-mapped.

Layout of an index directory (``letitwag.knn-index/1``)::

    INDEX/index.json        format, model spec + metadata, dim, count, metric, synthetic flag
    INDEX/image.index       faiss IndexFlatIP over L2-normalised float32 vectors (exact search)
    INDEX/metadata.parquet  one row per vector, in index order: id, image_path, url, caption, license

Why this shape: it mirrors clip-retrieval's ``image.index`` + metadata so the protocol maps
one to one, and ``index.json`` is written last, so a directory without it is an unfinished
build, never a half index. The vectors are memory-mapped (``IO_FLAG_MMAP_IFC``): several server
workers share one copy in the page cache and start in milliseconds.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from letitwag.errors import UserInputError
from letitwag.io import atomic_write_json, atomic_write_with

logger = logging.getLogger(__name__)

INDEX_FORMAT = "letitwag.knn-index/1"
CONFIG_FILE = "index.json"
VECTORS_FILE = "image.index"
METADATA_FILE = "metadata.parquet"
METADATA_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("image_path", pa.string()),
        ("url", pa.string()),
        ("caption", pa.string()),
        ("license", pa.string()),
    ]
)


class KnnIndexError(UserInputError):
    """An index directory that cannot be served; the message says what to do."""


def write_index(directory: str | Path, vectors: np.ndarray, metadata: pa.Table, config: dict) -> Path:
    """Write a complete index atomically (vectors, metadata, then ``index.json`` as the marker).

    ``vectors`` are float32 ``[N, D]`` and must already be L2-normalised (cosine = inner product).
    ``metadata`` has one row per vector; missing optional columns become nulls, ``id`` is set
    to the row number.
    """
    import faiss

    directory = Path(directory)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != metadata.num_rows:
        raise ValueError(f"{len(vectors)} vectors for {metadata.num_rows} metadata rows")
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    atomic_write_with(directory / VECTORS_FILE, lambda tmp: faiss.write_index(index, str(tmp)))
    columns = {"id": pa.array(np.arange(len(vectors), dtype=np.int64))}
    for field in METADATA_SCHEMA:
        if field.name != "id":
            columns[field.name] = (
                metadata[field.name].cast(field.type) if field.name in metadata.column_names else pa.nulls(len(vectors), field.type)
            )
    table = pa.table(columns, schema=METADATA_SCHEMA)
    atomic_write_with(directory / METADATA_FILE, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    full_config = dict(config, format=INDEX_FORMAT, dim=int(vectors.shape[1]), count=int(len(vectors)),
                       metric="inner_product", index_type="Flat")
    atomic_write_json(directory / CONFIG_FILE, full_config)
    logger.info("wrote index %s: %d vectors of dimension %d", directory, len(vectors), vectors.shape[1])
    return directory


def read_config(directory: str | Path) -> dict:
    """The ``index.json`` of a finished index; ``UserInputError`` naming the fix otherwise."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise KnnIndexError(f"{directory}: no such index directory; build one with `letitwag knn build`")
    if not path.exists():
        raise KnnIndexError(f"{directory}: no {CONFIG_FILE} (an unfinished build?); rerun `letitwag knn build` to finish it")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise KnnIndexError(f"{path}: unreadable index config ({error}); rebuild the index") from None
    name, _, version = str(config.get("format", "")).partition("/")
    if name != INDEX_FORMAT.split("/")[0] or version.split(".")[0] != "1":
        raise KnnIndexError(f"{path}: format {config.get('format')!r} is not {INDEX_FORMAT}; rebuild the index")
    return config


@dataclass
class KnnIndex:
    """An opened index: memory-mapped faiss vectors plus metadata rows in index order."""

    name: str
    directory: Path
    config: dict
    vectors: object  # faiss.Index
    metadata: pa.Table

    @property
    def dim(self) -> int:
        return int(self.config["dim"])

    def __len__(self) -> int:
        return int(self.vectors.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Inner-product top-``k`` for a batch ``[B, D]``; ids are -1 past the index size."""
        return self.vectors.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(self)))

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids`` (for de-duplication)."""
        return self.vectors.reconstruct_batch(np.asarray(ids, dtype=np.int64))

    def rows(self, ids: list[int]) -> list[dict]:
        """Metadata dicts of ``ids`` in that order (without the ``id`` column)."""
        taken = self.metadata.take(pa.array(ids, type=pa.int64()))
        return taken.to_pylist()


# faiss (1.15) scans with one vector product per query below this many queries per call, and with a
# matrix product (BLAS) above it. Its default, 128,000 queries, means a server's batches of a few to
# 64 queries never reach the matrix product: each query then streams the whole flat index through
# memory on its own, ~8 ms for 100k x 512 on one core, against ~1.2 ms per query in a batch of
# 64 (benchmarks/bench_knn.py). From 3 queries on, one shared pass over the vectors is cheaper.
BLAS_MIN_QUERIES = 3


def set_search_threads(threads: int) -> None:
    """faiss's threads for searches made on the calling thread.

    OpenMP's thread count is a per-thread setting: a search thread started later gets the
    process default (all cores), so each server worker would run as many OpenMP threads as
    there are cores and the workers would spin against each other. Call this on the thread
    that searches.
    """
    import faiss

    faiss.omp_set_num_threads(threads)


def open_index(directory: str | Path, name: str | None = None) -> KnnIndex:
    """Open a finished index read-only with its vectors memory-mapped."""
    import faiss

    faiss.cvar.distance_compute_blas_threshold = BLAS_MIN_QUERIES
    directory = Path(directory)
    config = read_config(directory)
    vectors_path, metadata_path = directory / VECTORS_FILE, directory / METADATA_FILE
    for path in (vectors_path, metadata_path):
        if not path.exists():
            raise KnnIndexError(f"{path}: missing; the index directory is incomplete, rebuild it")
    try:
        vectors = faiss.read_index(str(vectors_path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError as error:
        raise KnnIndexError(f"{vectors_path}: not a faiss index ({str(error).splitlines()[0]}); rebuild it") from None
    metadata = pq.read_table(metadata_path).drop_columns(["id"])
    if vectors.ntotal != metadata.num_rows or vectors.d != int(config["dim"]):
        raise KnnIndexError(
            f"{directory}: {vectors.ntotal} vectors of dim {vectors.d} but {metadata.num_rows} metadata rows "
            f"and dim {config['dim']} in {CONFIG_FILE}; rebuild the index"
        )
    return KnnIndex(name or directory.name, directory, config, vectors, metadata)
