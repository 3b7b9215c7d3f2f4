"""Text frequency of concepts in a caption corpus: the Python API behind ``letitwag frequency count``.

``count_text`` plans caption shards (``letitwag.builders.captions``), runs ``TextCountTask`` on
each through the sharded engine (``letitwag.engine``: local process pool or Ray, resumable
after ``kill -9``) and merges the per-shard counts in shard order into a ``FrequencyTable``
(``count_type`` ``text``). Because the merge order is fixed and the table holds no timestamps,
local and Ray runs, and resumed and uninterrupted runs, write byte-identical ``text.parquet``
files; times and shard reuse go to ``text.provenance.json``.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from letitwag import __version__
from letitwag.arrow_buffers import primitive_array
from letitwag.builders.captions import (
    DEFAULT_SHARD_ROWS,
    CaptionSlice,
    ReadStats,
    plan_caption_slices,
    read_caption_slice,
    source_fingerprints,
)
from letitwag.builders.textmatch import TextMatcher
from letitwag.concepts import ConceptList, load_concepts
from letitwag.engine.executors import make_executor
from letitwag.engine.run import iter_partials, merged, run_shards
from letitwag.engine.shards import Shard, fingerprint, shard_key
from letitwag.engine.store import ShardStore, write_failure_reason
from letitwag.errors import UserInputError
from letitwag.io import atomic_path
from letitwag.postings import POSTINGS_SCHEMA
from letitwag.tables import FrequencyTable

logger = logging.getLogger(__name__)

PARTIAL_FORMAT = "letitwag.text-partial/1"
TABLE_NAME = "text.parquet"
POSTINGS_NAME = "text_postings.parquet"
SHARDS_DIR = "shards"
_METADATA_KEY = b"letitwag"
# what local counting workers start with: this module (what they unpickle the task from) and,
# for ``phrase`` mode, the compiled kernel
_WORKER_PRELOAD = {"phrase": (__name__, "letitwag.builders.phrase_kernel_preload"), "bag": (__name__,)}

@dataclass
class TextPartial:
    """Counts of one shard (or of several, merged): per-concept arrays, rows read, skips by reason."""

    documents: np.ndarray
    occurrences: np.ndarray
    rows: int = 0
    skipped: collections.Counter = field(default_factory=collections.Counter)

    def merge(self, other: "TextPartial") -> "TextPartial":
        """Associative and commutative: sums."""
        return TextPartial(self.documents + other.documents, self.occurrences + other.occurrences,
                           self.rows + other.rows, self.skipped + other.skipped)


class TextCountTask:
    """The map function of text counting: ``task(slice) -> partial bytes``; picklable, stage-specific.

    It carries the matcher built once by the driver: unpickling it in a worker is several
    times faster than building it again (and a Ray cluster gets it through the object store).
    The partial is an Arrow IPC file with one row per concept found in the shard
    (``concept_index``, ``documents``, ``occurrences`` and, with postings, the ``sample_ids``
    that mention it) and the rows read and skips in its schema metadata.
    """

    def __init__(self, matcher: TextMatcher, postings: bool) -> None:
        self.matcher = matcher
        self.postings = postings

    def parameters(self) -> dict:
        """What the partials depend on, for provenance and shard fingerprints."""
        return {**self.matcher.parameters, "postings": self.postings, "partial_format": PARTIAL_FORMAT}

    def __call__(self, piece: CaptionSlice) -> bytes:
        matcher = self.matcher
        n = matcher.n_concepts
        documents = np.zeros(n, dtype=np.int64)
        occurrences = np.zeros(n, dtype=np.int64)
        stats = ReadStats()
        hit_ids: list[pa.Array] = []
        hit_concepts: list[np.ndarray] = []
        for batch in read_caption_slice(piece, stats, with_ids=self.postings):
            counts = matcher.count(batch.column("caption"), with_hits=self.postings)
            documents += counts.documents
            occurrences += counts.occurrences
            if self.postings and len(counts.hit_rows):
                hit_ids.append(batch.column("sample_id").take(primitive_array(counts.hit_rows)))
                hit_concepts.append(np.asarray(counts.hit_concepts, dtype=np.int32))
        return _encode_partial(documents, occurrences, stats, hit_ids, hit_concepts if self.postings else None)


def _encode_partial(documents, occurrences, stats: ReadStats, hit_ids, hit_concepts) -> bytes:
    present = np.flatnonzero(documents).astype(np.int32)
    columns = {
        "concept_index": primitive_array(present.astype(np.int32)),
        "documents": primitive_array(documents[present].astype(np.int64)),
        "occurrences": primitive_array(occurrences[present].astype(np.int64)),
    }
    if hit_concepts is not None:
        columns["sample_ids"] = _group_postings(present, hit_ids, hit_concepts)
    metadata = {"format": PARTIAL_FORMAT, "rows": stats.rows, "skipped": dict(sorted(stats.skipped.items()))}
    table = pa.table(columns).replace_schema_metadata({_METADATA_KEY: json.dumps(metadata).encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _group_postings(present: np.ndarray, hit_ids: list[pa.Array], hit_concepts: list[np.ndarray]) -> pa.Array:
    """Sample ids per present concept, in reading order (a stable sort by concept keeps row order)."""
    ids = pa.concat_arrays(hit_ids) if hit_ids else pa.array([], pa.string())
    concepts = np.concatenate(hit_concepts) if hit_concepts else np.zeros(0, dtype=np.int32)
    order = np.argsort(concepts, kind="stable")
    counts = np.bincount(concepts, minlength=int(present.max()) + 1 if len(present) else 0)[present]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), ids.take(pa.array(order)))


def _read_partial_table(data: bytes) -> pa.Table:
    return pa.ipc.open_file(pa.py_buffer(data)).read_all()


def _decode_counts(n_concepts: int):
    def decode(data: bytes) -> TextPartial:
        table = _read_partial_table(data)
        metadata = json.loads(table.schema.metadata[_METADATA_KEY])
        index = table.column("concept_index").to_numpy()
        documents = np.zeros(n_concepts, dtype=np.int64)
        occurrences = np.zeros(n_concepts, dtype=np.int64)
        documents[index] = table.column("documents").to_numpy()
        occurrences[index] = table.column("occurrences").to_numpy()
        return TextPartial(documents, occurrences, metadata["rows"], collections.Counter(metadata["skipped"]))

    return decode


def count_text(
    captions: Sequence[str | Path],
    concepts: ConceptList | str | Path,
    out_dir: str | Path,
    *,
    mode: str = "phrase",
    longest_match: bool = False,
    use_aliases: bool = True,
    text_column: str | None = None,
    id_column: str | None = None,
    postings: bool = False,
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    shard_rows: int | None = None,
    corpus_name: str | None = None,
) -> FrequencyTable:
    """Count concept mentions in captions; write ``out_dir/text.parquet`` (+ provenance, postings).

    Finished shards under ``out_dir/shards/`` are reused by a rerun with the same inputs and
    parameters, so an interrupted run resumes where it stopped.
    """
    started = datetime.datetime.now(datetime.timezone.utc)
    clock = time.perf_counter()
    concepts = concepts if isinstance(concepts, ConceptList) else load_concepts(concepts)
    if len(concepts) == 0:
        raise UserInputError("the concept list is empty; give at least one concept")
    if mode not in ("phrase", "bag"):
        raise UserInputError(f"unknown matching mode {mode!r}; use phrase or bag")
    out_dir = Path(out_dir)
    shard_rows = DEFAULT_SHARD_ROWS if shard_rows is None else shard_rows
    # first: local workers' fork server loads the compiled kernel while the matcher is built here
    engine = make_executor(executor, workers, ray_address, preload=_WORKER_PRELOAD[mode])
    pieces = plan_caption_slices(captions, text_column=text_column, id_column=id_column, shard_rows=shard_rows)
    task = TextCountTask(TextMatcher(concepts, mode=mode, longest_match=longest_match, use_aliases=use_aliases),
                         postings)
    parameters = task.parameters()
    shards = [
        Shard(
            key=shard_key(piece.label, piece.format, piece.source, piece.split, piece.start, piece.stop),
            spec=piece,
            fingerprint=fingerprint(dataclasses.asdict(piece), parameters, __version__),
        )
        for piece in pieces
    ]
    store = ShardStore(out_dir / SHARDS_DIR)
    report = run_shards(shards, task, store, engine, description="counting shards")

    decode = _decode_counts(len(concepts))
    empty = TextPartial(np.zeros(len(concepts), np.int64), np.zeros(len(concepts), np.int64))
    total = merged(store, shards, decode, TextPartial.merge) if shards else empty
    name = corpus_name or _default_corpus_name(captions)
    try:
        postings_path = _write_postings(out_dir / POSTINGS_NAME, store, shards, concepts) if postings else None
    except OSError as error:
        raise _output_error(out_dir / POSTINGS_NAME, error) from None
    finished = datetime.datetime.now(datetime.timezone.utc)
    provenance = {
        "tool": "letitwag",
        "version": __version__,
        "count_type": "text",
        "corpus": name,
        "corpus_size": total.rows,
        "corpus_size_definition": "samples (rows) read, including those whose caption was skipped",
        "captions_counted": total.rows - sum(total.skipped.values()),
        "skipped": dict(sorted(total.skipped.items())),
        "inputs": source_fingerprints(pieces),
        "concepts": {"name": concepts.name, "count": len(concepts)},
        "parameters": {**parameters, "text_column": text_column, "id_column": id_column, "shard_rows": shard_rows},
        "execution": report.summary(),
        "postings": str(postings_path) if postings_path else None,
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "wall_seconds": round(time.perf_counter() - clock, 3),
    }
    table = FrequencyTable.from_counts(concepts, total.documents.tolist(), total.occurrences.tolist(), name, "text",
                                       total.rows, provenance)
    try:
        path = table.write(out_dir / TABLE_NAME)
    except OSError as error:
        raise _output_error(out_dir / TABLE_NAME, error) from None
    logger.info("wrote %s: %d concepts, %d samples, %d shard(s) computed, %d reused", path, len(concepts),
                total.rows, len(report.computed), len(report.reused))
    return table


def _output_error(path: Path, error: OSError) -> UserInputError:
    """A failed final write (disk full, ...) as one line: the atomic writer left the old file, if any."""
    return UserInputError(f"{path}: cannot write it ({write_failure_reason(error)}); free space or fix permissions "
                          "and rerun the same command: finished shards are kept")


def _default_corpus_name(captions: Sequence[str | Path]) -> str:
    first = str(captions[0]).removeprefix("hf:").rstrip("/")
    return Path(first).stem or first


def _write_postings(path: Path, store: ShardStore, shards: list[Shard], concepts: ConceptList) -> Path:
    """Stream every shard's postings, in shard order, into one parquet (memory: one shard at a time)."""
    concept_ids = pa.array(concepts.ids, pa.string())
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, POSTINGS_SCHEMA, compression="zstd") as writer:
        for table in _postings_tables(store, shards, concept_ids):
            writer.write_table(table)
    return path


def _postings_tables(store: ShardStore, shards: list[Shard], concept_ids: pa.Array) -> Iterator[pa.Table]:
    for partial in iter_partials(store, shards, _read_partial_table):
        lists = partial.column("sample_ids").combine_chunks()
        parents = pc.list_parent_indices(lists)
        concept_index = partial.column("concept_index").combine_chunks().take(parents)
        yield pa.table({"sample_id": pc.list_flatten(lists), "concept_id": concept_ids.take(concept_index)},
                       schema=POSTINGS_SCHEMA)
