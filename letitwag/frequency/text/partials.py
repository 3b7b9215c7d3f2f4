"""The map side of text counting: ``TextCountTask`` and the partial it writes per shard.

Why a module of its own: it is all a counting worker runs, so the workers' fork server imports
this (the readers, the matcher, numpy and pyarrow) and not the driver's engine, table and
provenance code. ``letitwag.frequency.count`` plans the shards, runs this task on them and
merges the partials (``counts_decoder``, ``TextPartial.merge``) into the frequency table.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from letitwag.arrow_buffers import primitive_array
from letitwag.frequency.text.matcher import TextMatcher
from letitwag.frequency.text.readers import CaptionSlice, ReadStats, read_caption_slice

PARTIAL_FORMAT = "letitwag.text-partial/1"
_METADATA_KEY = b"letitwag"


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
        "concept_index": primitive_array(present),
        "documents": primitive_array(documents[present]),
        "occurrences": primitive_array(occurrences[present]),
    }
    if hit_concepts is not None:
        concepts = np.concatenate(hit_concepts) if hit_concepts else np.zeros(0, dtype=np.int32)
        rank = np.zeros(int(present.max()) + 1 if len(present) else 0, dtype=np.int32)
        rank[present] = np.arange(len(present), dtype=np.int32)
        columns["sample_ids"] = group_postings(len(present), hit_ids, rank[concepts])
    metadata = {"format": PARTIAL_FORMAT, "rows": stats.rows, "skipped": dict(sorted(stats.skipped.items()))}
    return write_partial(columns, metadata)


def write_partial(columns: dict[str, pa.Array], metadata: dict) -> bytes:
    """A partial as bytes: an Arrow IPC file (zstd) with ``metadata`` as JSON in its schema."""
    table = pa.table(columns).replace_schema_metadata({_METADATA_KEY: json.dumps(metadata).encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def group_postings(n_groups: int, hit_ids: list[pa.Array], hit_groups: np.ndarray) -> pa.Array:
    """Sample ids per group (a partial's row: ``hit_groups`` in ``0..n_groups-1``, one per id), in
    reading order (a stable sort by group keeps row order)."""
    ids = pa.concat_arrays(hit_ids) if hit_ids else pa.array([], pa.string())
    order = np.argsort(hit_groups, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(hit_groups, minlength=n_groups))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), ids.take(pa.array(order)))


def read_partial_table(data: bytes) -> pa.Table:
    """A stored partial as the Arrow table it was written from."""
    return pa.ipc.open_file(pa.py_buffer(data)).read_all()


def partial_metadata(table: pa.Table) -> dict:
    """The rows read, skips (and any mode's extras) stored in a partial's schema."""
    return json.loads(table.schema.metadata[_METADATA_KEY])


def counts_decoder(n_concepts: int):
    """The driver's decoder of stored partials into ``TextPartial`` (for ``n_concepts`` concepts)."""

    def decode(data: bytes) -> TextPartial:
        table = read_partial_table(data)
        metadata = partial_metadata(table)
        index = table.column("concept_index").to_numpy()
        documents = np.zeros(n_concepts, dtype=np.int64)
        occurrences = np.zeros(n_concepts, dtype=np.int64)
        documents[index] = table.column("documents").to_numpy()
        occurrences[index] = table.column("occurrences").to_numpy()
        return TextPartial(documents, occurrences, metadata["rows"], collections.Counter(metadata["skipped"]))

    return decode
