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

import collections
import dataclasses
import datetime
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

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
from letitwag.frequency.text.forms import (
    CONCEPT_WORDS,
    FORMS_SOURCES,
    WordForms,
    english_noun_forms,
    word_forms,
)
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
# what local counting workers start with: the module of the map function and, where it runs the
# compiled kernel, the kernel (this driver module and its engine/table imports stay out of them);
# ``paper`` workers also import spaCy (~3 s) once, in the fork server
_WORKER_PRELOAD = {"phrase": (TextCountTask.__module__, "letitwag.frequency.text.kernel_preload"),
                   "bag": (TextCountTask.__module__,),
                   "paper": ("letitwag.frequency.text.paper", "letitwag.frequency.text.kernel_preload", "spacy")}
MODES = tuple(_WORKER_PRELOAD)
# Tagging a caption costs ~1,000x matching it: ``paper`` shards are smaller, so both cores of a small
# corpus work and a resumed run redoes less (all captions tagged: ~30 s per shard per core with
# en_core_web_sm, a few minutes with en_core_web_lg)
DEFAULT_PAPER_SHARD_ROWS = 16_384


@dataclass
class _Plan:
    """How one mode counts: its map task and partials, and how the merged partial becomes counts."""

    task: Callable[[Any], bytes]
    parameters: dict
    decode: Callable[[bytes], Any]
    merge: Callable[[Any, Any], Any]
    empty: Any
    # merged partial -> (documents, occurrences, provenance details, the postings rows to keep)
    finish: Callable[[Any], tuple[np.ndarray, np.ndarray, dict, Callable[[pa.Table], np.ndarray] | None]]
    use_aliases: bool


def count_text(
    captions: Sequence[str | Path],
    concepts: ConceptList | str | Path,
    out_dir: str | Path,
    *,
    mode: str = "phrase",
    forms: str = "noun",
    concept_words: str = "lemma",
    longest_match: bool = False,
    use_aliases: bool = True,
    spacy_model: str | None = None,
    unknown_words: str = "require",
    tag_every_caption: bool = False,
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

    ``mode``: ``phrase`` / ``bag`` (fast, ``forms``: ``noun`` or ``lookup``; ``concept_words``:
    with noun forms, ``lemma`` reads a concept word through its noun lemma as the paper did,
    "men" as "man", or ``as-written``) or ``paper`` (a
    spaCy pipeline, ``spacy_model``, tags the captions that may count, all of them with
    ``tag_every_caption``; ``unknown_words``: ``require`` or the paper's ``drop``).
    Finished shards under ``out_dir/shards/`` are reused by a rerun with the same inputs and
    parameters, so an interrupted run resumes where it stopped.
    """
    started = datetime.datetime.now(datetime.timezone.utc)
    clock = time.perf_counter()
    concepts = concepts if isinstance(concepts, ConceptList) else load_concepts(concepts)
    if len(concepts) == 0:
        raise UserInputError("the concept list is empty; give at least one concept")
    if mode not in MODES:
        raise UserInputError(f"unknown matching mode {mode!r}; use {', '.join(MODES)}")
    if forms not in FORMS_SOURCES:
        raise UserInputError(f"unknown word-form source {forms!r}; use {' or '.join(FORMS_SOURCES)}")
    if concept_words not in CONCEPT_WORDS:
        raise UserInputError(f"unknown --concept-words {concept_words!r}; use {' or '.join(CONCEPT_WORDS)}")
    if mode == "paper" and (longest_match or forms != "noun" or concept_words != "lemma"):
        raise UserInputError("--longest-match, --forms and --concept-words are for the fast modes; --mode paper reads "
                             "words with its spaCy pipeline")
    if forms == "lookup" and concept_words != "lemma":
        raise UserInputError("--concept-words as-written is for --forms noun; --forms lookup reads every concept word "
                             "through its lookup lemma")
    out_dir = Path(out_dir)
    if shard_rows is None:
        shard_rows = DEFAULT_PAPER_SHARD_ROWS if mode == "paper" else DEFAULT_SHARD_ROWS
    # first: local workers' fork server loads the compiled kernel while the matcher is built here
    engine = make_executor(executor, workers, ray_address, preload=_WORKER_PRELOAD[mode])
    pieces = plan_caption_slices(captions, text_column=text_column, id_column=id_column, shard_rows=shard_rows)
    if mode == "paper":
        plan = _paper_plan(concepts, spacy_model, unknown_words, not tag_every_caption, postings)
    else:
        plan = _fast_plan(concepts, mode, word_forms(forms, concept_words), longest_match, use_aliases, postings)
    parameters = plan.parameters
    shards = [
        Shard(
            key=shard_key(piece.label, piece.format, piece.source, piece.split, piece.start, piece.stop),
            spec=piece,
            fingerprint=fingerprint(dataclasses.asdict(piece), parameters, __version__),
        )
        for piece in pieces
    ]
    store = ShardStore(out_dir / SHARDS_DIR)
    report = run_shards(shards, plan.task, store, engine, description="counting shards")

    total = merged(store, shards, plan.decode, plan.merge) if shards else plan.empty
    documents, occurrences, details, keep_postings = plan.finish(total)
    name = corpus_name or _default_corpus_name(captions)
    try:
        postings_path = (_write_postings(out_dir / POSTINGS_NAME, store, shards, concepts, keep_postings)
                         if postings else None)
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
        **details,
        "execution": report.summary(),
        "postings": str(postings_path) if postings_path else None,
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "wall_seconds": round(time.perf_counter() - clock, 3),
    }
    nouns = english_noun_forms(concept_words)
    ambiguous = [nouns.pos_ambiguous(concept.surface_forms() if plan.use_aliases else concept.surface_forms()[:1])
                 for concept in concepts]
    table = FrequencyTable.from_counts(concepts, documents.tolist(), occurrences.tolist(), name, "text",
                                       total.rows, provenance, pos_ambiguous=ambiguous)
    try:
        path = table.write(out_dir / TABLE_NAME)
    except OSError as error:
        raise _output_error(out_dir / TABLE_NAME, error) from None
    logger.info("wrote %s: %d concepts, %d samples, %d shard(s) computed, %d reused", path, len(concepts),
                total.rows, len(report.computed), len(report.reused))
    return table


def _fast_plan(concepts: ConceptList, mode: str, forms: WordForms, longest_match: bool, use_aliases: bool,
               postings: bool) -> _Plan:
    matcher = TextMatcher(concepts, mode=mode, longest_match=longest_match, use_aliases=use_aliases, forms=forms)
    task = TextCountTask(matcher, postings)
    empty = TextPartial(np.zeros(len(concepts), np.int64), np.zeros(len(concepts), np.int64))
    return _Plan(task, task.parameters(), counts_decoder(len(concepts)), TextPartial.merge, empty,
                 lambda total: (total.documents, total.occurrences, {}, None), use_aliases)


def _paper_plan(concepts: ConceptList, spacy_model: str | None, unknown_words: str, prefilter: bool,
                postings: bool) -> _Plan:
    """The paper's counting: concept terms from the pipeline, tagging in the workers; which terms
    a concept needs is settled once every shard is in (``unknown_words="drop"``)."""
    from letitwag.frequency.text import paper
    from letitwag.frequency.text.pipelines import default_pipeline, describe_pipeline, load_pipeline

    if unknown_words not in paper.UNKNOWN_WORDS:
        raise UserInputError(f"unknown --unknown-words {unknown_words!r}; use {' or '.join(paper.UNKNOWN_WORDS)}")
    pipeline = describe_pipeline(spacy_model or default_pipeline())
    terms = paper.PaperTerms.from_pipeline(concepts, load_pipeline(pipeline["spacy_model"]))
    task = paper.PaperCountTask(concepts, terms, pipeline, unknown_words, postings, prefilter=prefilter)

    def finish(total: paper.PaperPartial):
        documents, required = paper.resolve_paper_counts(terms, total, unknown_words)
        details = {"paper": {"captions_tagged": total.tagged, "terms": terms.described(concepts)}}
        if unknown_words == "drop":
            details["paper"]["dropped_terms"] = paper.dropped_terms(terms, concepts, required)

        def keep(partial: pa.Table) -> np.ndarray:
            wanted = required[partial.column("concept_index").to_numpy()]
            return (wanted != 0) & ((partial.column("present_mask").to_numpy() & wanted) == wanted)

        return documents, documents.copy(), details, keep

    return _Plan(task, task.parameters(), paper.PaperPartial.decode, paper.PaperPartial.merge,
                 paper.PaperPartial(collections.Counter()), finish, use_aliases=False)


def _output_error(path: Path, error: OSError) -> UserInputError:
    """A failed final write (disk full, ...) as one line: the atomic writer left the old file, if any."""
    return UserInputError(f"{path}: cannot write it ({write_failure_reason(error)}); free space or fix permissions "
                          "and rerun the same command: finished shards are kept")


def _default_corpus_name(captions: Sequence[str | Path]) -> str:
    first = str(captions[0]).removeprefix("hf:").rstrip("/")
    return Path(first).stem or first


def _write_postings(path: Path, store: ShardStore, shards: list[Shard], concepts: ConceptList,
                    keep: Callable[[pa.Table], np.ndarray] | None) -> Path:
    """Stream every shard's postings, in shard order, into one parquet (memory: one shard at a time)."""
    concept_ids = pa.array(concepts.ids, pa.string())
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, POSTINGS_SCHEMA, compression="zstd") as writer:
        for table in _postings_tables(store, shards, concept_ids, keep):
            writer.write_table(table)
    return path


def _postings_tables(store: ShardStore, shards: list[Shard], concept_ids: pa.Array,
                     keep: Callable[[pa.Table], np.ndarray] | None) -> Iterator[pa.Table]:
    """Each partial's (sample id, concept id) rows; ``keep``: which partial rows count."""
    for partial in iter_partials(store, shards, read_partial_table):
        if keep is not None:
            partial = partial.filter(pa.array(keep(partial)))
        lists = partial.column("sample_ids").combine_chunks()
        parents = pc.list_parent_indices(lists)
        concept_index = partial.column("concept_index").combine_chunks().take(parents)
        yield pa.table({"sample_id": pc.list_flatten(lists), "concept_id": concept_ids.take(concept_index)},
                       schema=POSTINGS_SCHEMA)
