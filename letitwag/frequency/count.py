"""Text frequency of concepts in a caption corpus: the Python API behind ``letitwag frequency count``.

``count_text`` plans caption shards (``letitwag.frequency.text.readers``), runs ``TextCountTask``
(``letitwag.frequency.text.partials``: all a worker imports) on each through the sharded engine
(``letitwag.engine``: local process pool or Ray, resumable after ``kill -9``) and merges the
per-shard counts in shard order into a ``FrequencyTable`` (``count_type`` ``text``). Because
the merge order is fixed and the table holds no timestamps, local and Ray runs, and resumed and
uninterrupted runs, write byte-identical ``text.parquet`` files; times and shard reuse go to
``text.provenance.json``.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from letitwag import __version__
from letitwag.concepts import ConceptList, load_concepts
from letitwag.engine.executors import make_executor
from letitwag.engine.run import iter_partials, merged, run_shards
from letitwag.engine.shards import Shard, fingerprint, shard_key
from letitwag.engine.store import ShardStore, write_failure_reason
from letitwag.errors import UserInputError
from letitwag.frequency.text.forms import FORMS_SOURCES, english_noun_forms, word_forms
from letitwag.frequency.text.matcher import TextMatcher
from letitwag.frequency.text.partials import (
    TextCountTask,
    TextPartial,
    counts_decoder,
    read_partial_table,
)
from letitwag.frequency.text.readers import (
    DEFAULT_SHARD_ROWS,
    plan_caption_slices,
    source_fingerprints,
)
from letitwag.io import atomic_path
from letitwag.postings import POSTINGS_SCHEMA
from letitwag.tables import FrequencyTable

logger = logging.getLogger(__name__)

TABLE_NAME = "text.parquet"
POSTINGS_NAME = "text_postings.parquet"
SHARDS_DIR = "shards"
# what local counting workers start with: the module of the map function and, for ``phrase``
# mode, the compiled kernel (this driver module and its engine/table imports stay out of them)
_WORKER_PRELOAD = {"phrase": (TextCountTask.__module__, "letitwag.frequency.text.kernel_preload"),
                   "bag": (TextCountTask.__module__,)}


def count_text(
    captions: Sequence[str | Path],
    concepts: ConceptList | str | Path,
    out_dir: str | Path,
    *,
    mode: str = "phrase",
    forms: str = "noun",
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
    if forms not in FORMS_SOURCES:
        raise UserInputError(f"unknown word-form source {forms!r}; use {' or '.join(FORMS_SOURCES)}")
    out_dir = Path(out_dir)
    shard_rows = DEFAULT_SHARD_ROWS if shard_rows is None else shard_rows
    # first: local workers' fork server loads the compiled kernel while the matcher is built here
    engine = make_executor(executor, workers, ray_address, preload=_WORKER_PRELOAD[mode])
    pieces = plan_caption_slices(captions, text_column=text_column, id_column=id_column, shard_rows=shard_rows)
    matcher = TextMatcher(concepts, mode=mode, longest_match=longest_match, use_aliases=use_aliases,
                          forms=word_forms(forms))
    task = TextCountTask(matcher, postings)
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

    decode = counts_decoder(len(concepts))
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
    nouns = english_noun_forms()
    ambiguous = [nouns.pos_ambiguous(concept.surface_forms() if use_aliases else concept.surface_forms()[:1])
                 for concept in concepts]
    table = FrequencyTable.from_counts(concepts, total.documents.tolist(), total.occurrences.tolist(), name, "text",
                                       total.rows, provenance, pos_ambiguous=ambiguous)
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
    for partial in iter_partials(store, shards, read_partial_table):
        lists = partial.column("sample_ids").combine_chunks()
        parents = pc.list_parent_indices(lists)
        concept_index = partial.column("concept_index").combine_chunks().take(parents)
        yield pa.table({"sample_id": pc.list_flatten(lists), "concept_id": concept_ids.take(concept_index)},
                       schema=POSTINGS_SCHEMA)
