"""A kNN index on disk: faiss vectors, metadata rows and a config, read memory-mapped.

Layout of an index directory (``letitwag.knn-index/1.1``)::

    INDEX/index.json        format, model spec + metadata, dim, count, metric, index_type
                            (flat | ivfpq | hnsw), faiss factory string, search_params
                            (nprobe / efSearch), recall against exact search, synthetic flag
    INDEX/image.index       the faiss index over L2-normalised vectors (inner product = cosine)
    INDEX/image.ivfdata     ivfpq only: the inverted lists (faiss OnDiskInvertedLists)
    INDEX/refine.index      ivfpq with re-ranking: SQ8/SQ4 codes of every vector (faiss
                            IndexScalarQuantizer), wrapped with image.index in an IndexRefine
    INDEX/metadata.arrow    one row per vector, in index order: id, image_path, url, caption,
                            license (Arrow IPC file; indices of format 1.0 have metadata.parquet)

Why this shape: it mirrors clip-retrieval's ``image.index`` + metadata so the protocol maps
one to one, and ``index.json`` is written last, so a directory without it is an unfinished
build, never a half index. Everything is memory-mapped at serve time: flat and HNSW vectors
with ``IO_FLAG_MMAP_IFC``, inverted lists with ``IO_FLAG_ONDISK_SAME_DIR``, the metadata as an
uncompressed Arrow file. Several server workers share one copy in the page cache, start in
seconds and an index larger than memory is paged in as queries touch it.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from letitwag.builders.knn.int8_scan import Int8Scan, Int8ScanError, at_least, int8_dot_products_native, kth_pass_scores
from letitwag.errors import UserInputError
from letitwag.io import atomic_write_json, atomic_write_with

logger = logging.getLogger(__name__)

INDEX_FORMAT = "letitwag.knn-index/1.1"
CONFIG_FILE = "index.json"
VECTORS_FILE = "image.index"
LISTS_FILE = "image.ivfdata"
REFINE_FILE = "refine.index"
METADATA_FILE = "metadata.arrow"
LEGACY_METADATA_FILE = "metadata.parquet"
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


def metadata_table(metadata: pa.Table, first_id: int) -> pa.Table:
    """``metadata`` in the index's schema: ids from ``first_id``, known columns cast, others dropped.

    LAION's metadata names the licence ``LICENSE``; it is read as ``license``.
    """
    rows = metadata.num_rows
    names = {name.lower(): name for name in metadata.column_names}
    columns = {"id": pa.array(np.arange(first_id, first_id + rows, dtype=np.int64))}
    for field in METADATA_SCHEMA:
        if field.name != "id":
            source = names.get(field.name)
            columns[field.name] = metadata[source].cast(field.type) if source else pa.nulls(rows, field.type)
    return pa.table(columns, schema=METADATA_SCHEMA)


def write_metadata(directory: Path, tables: Iterable[pa.Table]) -> int:
    """Stream ``tables`` (already in the index schema, in id order) into ``metadata.arrow``; the row count."""
    import pyarrow.ipc as ipc

    written = 0

    def write(tmp: Path) -> None:
        nonlocal written
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, METADATA_SCHEMA) as writer:
            for table in tables:
                writer.write_table(table, max_chunksize=65_536)
                written += table.num_rows

    atomic_write_with(directory / METADATA_FILE, write)
    return written


def codes_file_header(empty_index, count: int) -> bytes:
    """What faiss writes before the codes of a trained ``IndexFlatCodes`` (Flat, SQ8, ...) of ``count`` vectors.

    Why write codes ourselves: faiss can only write an index it holds in memory, and 10M x 512
    float32 vectors are 20 GB. faiss serialises such an index as a header (``ntotal`` at byte 8),
    the length of the codes (in bytes, or in floats for ``IndexFlat``) and the codes themselves,
    ``code_size`` bytes per vector. So the header of the trained, empty index with those two
    numbers patched lets a build write each vector's codes (``index.sa_encode``) straight into
    place at ``len(header) + id * code_size``, and faiss reads or memory-maps the file as its
    own (checked against ``faiss.write_index`` in the tests).
    """
    import struct

    import faiss

    header = bytearray(faiss.serialize_index(empty_index).tobytes())
    if empty_index.ntotal != 0 or header[-8:] != bytes(8):
        raise ValueError("codes_file_header needs an empty IndexFlatCodes")
    one = faiss.clone_index(empty_index)
    one.add(np.zeros((1, empty_index.d), dtype=np.float32))
    per_vector = struct.unpack_from("<Q", faiss.serialize_index(one).tobytes(), len(header) - 8)[0]
    header[8:16] = struct.pack("<q", count)
    header[-8:] = struct.pack("<Q", count * per_vector)
    return bytes(header)


def write_config(directory: Path, config: dict, *, dim: int, count: int, index_type: str) -> dict:
    """``index.json``, written last: its presence marks a finished index."""
    full = dict(config, format=INDEX_FORMAT, dim=int(dim), count=int(count), metric="inner_product",
                index_type=index_type)
    atomic_write_json(directory / CONFIG_FILE, full)
    return full


def write_index(directory: str | Path, vectors: np.ndarray, metadata: pa.Table, config: dict) -> Path:
    """Write a complete exact index atomically (vectors, metadata, then ``index.json`` as the marker).

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
    write_metadata(directory, [metadata_table(metadata, 0)])
    write_config(directory, dict(config, factory="Flat", recall={"exact": True}), dim=vectors.shape[1],
                 count=len(vectors), index_type="flat")
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
    int8: Int8Scan | None = None  # exact indices on CPUs with int8 dot products (``open_index``)

    @property
    def dim(self) -> int:
        return int(self.config["dim"])

    def __len__(self) -> int:
        return int(self.vectors.ntotal)

    @property
    def exact(self) -> bool:
        return str(self.config.get("index_type", "flat")).lower() == "flat"

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Inner-product top-``k`` for a batch ``[B, D]``; ids are -1 past the index size."""
        similarities, ids, _ = self.search_and_reconstruct(queries, k)
        return similarities, ids

    def search_and_reconstruct(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``search`` plus the stored (for ivfpq: decoded) vector of every result, for de-duplication.

        Inverted-list indices decode results from the lists they were found in, so no id-to-list
        map (80 MB per 10M vectors, built at every start) is needed. An exact index re-scores its
        candidates in float64: faiss sums a batch of 3+ queries with a matrix product and a smaller
        one with vector products, whose float32 roundings differ, and a query's answer must not
        depend on which other queries shared its batch.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, len(self))
        if not self.exact:
            return self.vectors.search_and_reconstruct(queries, k)
        if self.int8 is None or k == 0:
            scores, ids, stored = self._exact_float32(queries, k)
            return scores.astype(np.float32), ids, stored
        scores, ids, stored = self._exact_int8(queries, k)
        return scores.astype(np.float32), ids, stored

    def _exact_int8(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The int8 pass, then float64 scores for every vector that could be in the top ``k``.

        First round: every vector within the bound (and the largest error the start-up check saw)
        of the ``k``-th best pass score. Its ``k``-th best exact score ``T`` then says what is
        needed: all vectors with a pass score of at least ``T - bound``; queries whose first round
        fell short of that get a second, which is sufficient by construction (``int8_scan``).
        """
        passes, bound = self.int8.scores(queries)
        floors = kth_pass_scores(passes, k) - bound - self.int8.observed_error
        scores = np.empty((len(queries), k))
        ids = np.empty((len(queries), k), dtype=np.int64)
        stored = np.empty((len(queries), k, self.dim), dtype=np.float32)
        rows = np.arange(len(queries))
        while len(rows):
            candidates, counts = at_least([passes[row] for row in rows], floors[rows])  # views, no copy
            wide = counts > INT8_MAX_CANDIDATES  # near-duplicates by the thousand: float32 decides those
            if wide.any():
                scores[rows[wide]], ids[rows[wide]], stored[rows[wide]] = self._exact_float32(queries[rows[wide]], k)
                if wide.all():
                    break
                rows, candidates = rows[~wide], candidates[~wide, : counts[~wide].max()]
            vectors = self.vectors.reconstruct_batch(np.maximum(candidates, 0).reshape(-1))
            found = rescored_top_k(queries[rows], candidates, vectors.reshape(*candidates.shape, -1), k)
            scores[rows], ids[rows], stored[rows] = found
            needed = found[0][:, -1] - bound[rows]
            short = needed < floors[rows]
            floors[rows[short]] = needed[short]
            rows = rows[short]
        return scores, ids, stored

    def _exact_float32(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """faiss's float32 search with a margin of candidates, re-scored (float64 scores)."""
        _, ids, stored = self.vectors.search_and_reconstruct(queries, min(k + RESCORE_MARGIN, len(self)))
        return rescored_top_k(queries, ids, stored, k)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids`` (flat and HNSW indices)."""
        return self.vectors.reconstruct_batch(np.asarray(ids, dtype=np.int64))

    def rows(self, ids: list[int]) -> list[dict]:
        """Metadata dicts of ``ids`` in that order (without the ``id`` column).

        One-row slices, not ``Table.take``: take over a memory-mapped table of many chunks copies
        whole columns (12 ms per query at 1M rows, growing with the index), a slice costs microseconds.
        """
        if not ids:
            return []
        return pa.concat_tables([self.metadata.slice(i, 1) for i in ids]).to_pylist()


def rescored_top_k(queries: np.ndarray, ids: np.ndarray, stored: np.ndarray,
                   k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best ``k`` of each query's candidates by float64 score: ``(scores, ids, stored vectors)``.

    Equal scores order by the smaller id; missing candidates (id -1) come last.
    """
    scores = np.einsum("bd,bkd->bk", queries.astype(np.float64), stored.astype(np.float64))
    scores[ids < 0] = -np.inf
    order = np.lexsort((ids, -scores), axis=1)[:, :k]
    take = lambda array: np.take_along_axis(array, order, axis=1)  # noqa: E731
    return take(scores), take(ids), np.take_along_axis(stored, order[:, :, None], axis=1)


# faiss (1.15) scans with one vector product per query below this many queries per call, and with a
# matrix product (BLAS) above it. Its default, 128,000 queries, means a server's batches of a few to
# 64 queries never reach the matrix product: each query then streams the whole flat index through
# memory on its own, ~8 ms for 100k x 512 on one core, against ~1.2 ms per query in a batch of
# 64 (benchmarks/bench_knn.py). From 3 queries on, one shared pass over the vectors is cheaper.
BLAS_MIN_QUERIES = 3
RESCORE_MARGIN = 8  # extra candidates an exact index re-scores, so near-ties at rank k settle the same way
# a query whose int8 pass leaves more vectors than this within reach of its top k (an index of
# near-duplicates) is searched in float32 instead: re-scoring them all would cost more
INT8_MAX_CANDIDATES = 4096
# each server worker holds the int8 codes in memory: larger indices scan in float32
INT8_MAX_BYTES = 2 * 1024**3


def set_search_threads(threads: int) -> None:
    """faiss's threads, and torch's where an int8 pass runs, for searches on the calling thread.

    OpenMP's thread count is a per-thread setting: a search thread started later gets the
    process default (all cores), so each server worker would run as many OpenMP threads as
    there are cores and the workers would spin against each other (with torch's int8 pass,
    p99 latency in ``benchmarks/bench_knn.py`` rose 3-7x). Call this on the thread that searches.
    """
    import faiss

    faiss.omp_set_num_threads(threads)
    torch = sys.modules.get("torch")
    if torch is not None:  # an int8 pass (``Int8Scan``) runs on torch's intra-op threads
        torch.set_num_threads(threads)


def read_vectors(directory: Path, config: dict):
    """The faiss index of ``directory``, memory-mapped (lists on disk for ivfpq), search parameters set."""
    import faiss

    index_type = str(config.get("index_type", "flat")).lower()
    refine = bool((config.get("plan") or {}).get("refine"))
    needed = [directory / VECTORS_FILE] + ([directory / LISTS_FILE] if index_type == "ivfpq" else [])
    needed += [directory / REFINE_FILE] if refine else []
    for path in needed:
        if not path.exists():
            raise KnnIndexError(f"{path}: missing; the index directory is incomplete, rebuild it")
    flags = faiss.IO_FLAG_ONDISK_SAME_DIR if index_type == "ivfpq" else faiss.IO_FLAG_MMAP_IFC
    try:
        index = faiss.read_index(str(needed[0]), flags | faiss.IO_FLAG_READ_ONLY)
        if index_type == "ivfpq":
            # OnDiskInvertedLists starts prefetch threads (32 by default) on every search; the lists
            # are memory-mapped, so the page cache prefetches and those threads only cost CPU.
            faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists).prefetch_nthread = 0
        if refine:
            codes = faiss.read_index(str(directory / REFINE_FILE), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
            index = faiss.IndexRefine(index, codes)
    except RuntimeError as error:
        raise KnnIndexError(f"{directory}: not a faiss index ({str(error).splitlines()[0]}); rebuild it") from None
    params = ",".join(f"{key}={value}" for key, value in (config.get("search_params") or {}).items())
    if params:
        faiss.ParameterSpace().set_index_parameters(index, params)
    return index


def open_index(directory: str | Path, name: str | None = None, int8_scan: bool = False) -> KnnIndex:
    """Open a finished index read-only, memory-mapped, with its recorded search parameters.

    ``int8_scan``: an exact index also gets int8 codes for its first pass when this CPU has int8
    dot products and the codes fit ``INT8_MAX_BYTES`` (servers; see ``int8_scan``).
    """
    import faiss

    faiss.cvar.distance_compute_blas_threshold = BLAS_MIN_QUERIES
    directory = Path(directory)
    config = read_config(directory)
    metadata_path = directory / METADATA_FILE
    if not metadata_path.exists() and (directory / LEGACY_METADATA_FILE).exists():
        metadata_path = directory / LEGACY_METADATA_FILE
    if not metadata_path.exists():
        raise KnnIndexError(f"{metadata_path}: missing; the index directory is incomplete, rebuild it")
    vectors = read_vectors(directory, config)
    metadata = _read_metadata(metadata_path)
    if vectors.ntotal != metadata.num_rows or vectors.d != int(config["dim"]):
        raise KnnIndexError(
            f"{directory}: {vectors.ntotal} vectors of dim {vectors.d} but {metadata.num_rows} metadata rows "
            f"and dim {config['dim']} in {CONFIG_FILE}; rebuild the index"
        )
    index = KnnIndex(name or directory.name, directory, config, vectors, metadata)
    if int8_scan and index.exact and vectors.ntotal * vectors.d <= INT8_MAX_BYTES and int8_dot_products_native():
        try:
            index.int8 = Int8Scan(vectors)
        except Int8ScanError as error:
            logger.warning("%s: the int8 pass is not used (%s); exact search scans in float32", index.name, error)
        else:
            logger.info("%s: exact search scans int8 codes first (%.0f MB), each answer proven exact",
                        index.name, index.int8.nbytes() / 1e6)
    return index


def _read_metadata(path: Path) -> pa.Table:
    """The metadata without its ``id`` column; an Arrow file is memory-mapped, not read."""
    if path.suffix == ".parquet":
        return pq.read_table(path).drop_columns(["id"])
    import pyarrow.ipc as ipc

    return ipc.open_file(pa.memory_map(str(path), "r")).read_all().drop_columns(["id"])
