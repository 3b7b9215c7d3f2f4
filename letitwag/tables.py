"""Frequency tables: how often each concept occurs in a pretraining corpus.

One format for the tables the engine computes and for the paper's bundled tables, so that
mining, analysis and the harness never care where a table came from.

A table is a parquet file with the columns of ``TABLE_SCHEMA`` and a JSON sidecar
``<name>.provenance.json`` (tool version, inputs and their fingerprints, parameters, counted
skips, date). ``documents`` counts samples that mention a concept (the paper's frequency);
``occurrences`` counts mentions (null where unknown, as for the paper's tables).
``pos_ambiguous`` (text tables written by ``letitwag frequency count``) marks concepts with a
word that is also a verb, adjective or adverb form or a stop word, where the fast modes' counts
and a tagger's (``--mode paper``) may part; it is null where unknown (image and matched tables, the paper's tables,
tables written before the column existed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from letitwag.concepts import ConceptList, display_name, normalize_text
from letitwag.errors import UserInputError
from letitwag.io import atomic_write_json, atomic_write_with

TABLE_FORMAT = "letitwag.frequency-table/1"

TABLE_SCHEMA = pa.schema(
    [
        ("concept_id", pa.string()),
        ("name", pa.string()),
        ("corpus", pa.string()),
        ("count_type", pa.string()),
        ("documents", pa.int64()),
        ("occurrences", pa.int64()),
        ("corpus_size", pa.int64()),
        ("pos_ambiguous", pa.bool_()),
    ]
)
# Columns a table may lack (older files): added as nulls when read.
OPTIONAL_COLUMNS = ("pos_ambiguous",)

# The paper's count types by the name users know them by. ``matched`` (image-text) is the
# paper's main frequency; ``text`` is its lemmatised caption search; ``image`` its RAM++ tags.
PAPER_COUNT_TYPES = {
    "matched": "integrated_tlemmatized_i0.7",
    "text": "lemmatized",
    "image": "rampp0.7",
    "text_lowercased": "lowercased",
}

PAPER_CORPORA = ("cc3m", "cc12m", "yfcc15m", "laion400m", "synthci30m", "laion_aesthetics",
                 "laion200m_train_test_sim_normalized")


class TableError(UserInputError):
    """A table that cannot be used; the message names the file and what to do."""


def provenance_path(table_path: str | Path) -> Path:
    path = Path(table_path)
    return path.with_name(path.name.removesuffix(".parquet") + ".provenance.json")


@dataclass
class FrequencyTable:
    """Per-concept counts for one or more (corpus, count type) pairs."""

    table: pa.Table
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [name for name in TABLE_SCHEMA.names if name not in self.table.column_names]
        required = [name for name in missing if name not in OPTIONAL_COLUMNS]
        if required:
            raise TableError(f"frequency table lacks column(s) {', '.join(required)}")
        for name in missing:
            self.table = self.table.append_column(TABLE_SCHEMA.field(name), pa.nulls(self.table.num_rows,
                                                                                    TABLE_SCHEMA.field(name).type))

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_counts(
        cls,
        concepts: ConceptList,
        documents: Iterable[int],
        occurrences: Iterable[int] | None,
        corpus: str,
        count_type: str,
        corpus_size: int | None,
        provenance: dict | None = None,
        pos_ambiguous: Iterable[bool] | None = None,
    ) -> "FrequencyTable":
        docs = list(documents)
        occ = list(occurrences) if occurrences is not None else [None] * len(docs)
        ambiguous = list(pos_ambiguous) if pos_ambiguous is not None else [None] * len(docs)
        if len(docs) != len(concepts) or len(occ) != len(concepts) or len(ambiguous) != len(concepts):
            raise TableError("counts and concepts differ in length")
        table = pa.table(
            {
                "concept_id": [c.id for c in concepts],
                "name": [c.name for c in concepts],
                "corpus": [corpus] * len(docs),
                "count_type": [count_type] * len(docs),
                "documents": docs,
                "occurrences": occ,
                "corpus_size": [corpus_size] * len(docs),
                "pos_ambiguous": ambiguous,
            },
            schema=TABLE_SCHEMA,
        )
        return cls(table, dict(provenance or {}, format=TABLE_FORMAT))

    @classmethod
    def read(cls, path: str | Path) -> "FrequencyTable":
        """Read a table file, or a bundled paper table given as ``paper:<corpus>[:<count type>]``."""
        spec = str(path)
        if spec.startswith("paper:"):
            parts = spec.split(":")
            return paper_table(parts[1], parts[2] if len(parts) > 2 else "matched")
        path = Path(path)
        if not path.exists():
            raise TableError(f"{path}: no such frequency table (or use paper:<corpus>[:<count type>])")
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as error:
            raise TableError(f"{path}: not a readable parquet table ({error})") from None
        sidecar = provenance_path(path)
        provenance = json.loads(sidecar.read_text()) if sidecar.exists() else {}
        try:
            return cls(table, provenance)
        except TableError as error:
            raise TableError(f"{path}: {error}; write tables with letitwag frequency count") from None

    def write(self, path: str | Path) -> Path:
        """Write parquet + provenance sidecar atomically; returns the parquet path."""
        path = Path(path)
        atomic_write_with(path, lambda tmp: pq.write_table(self.table, tmp, compression="zstd"))
        atomic_write_json(provenance_path(path), self.provenance)
        return path

    # -- queries ---------------------------------------------------------------------------
    def select(self, corpus: str | None = None, count_type: str | None = None) -> "FrequencyTable":
        """Rows of one corpus and/or count type (``text``/``image``/``matched`` resolve for paper tables)."""
        table = self.table
        if corpus is not None:
            table = table.filter(pc.equal(table["corpus"], corpus))
        if count_type is not None:
            wanted = count_type
            present = set(table.column("count_type").to_pylist())
            if wanted not in present and PAPER_COUNT_TYPES.get(wanted) in present:
                wanted = PAPER_COUNT_TYPES[wanted]
            if wanted not in present:
                raise TableError(
                    f"count type {count_type!r} not in table (has: {', '.join(sorted(present)) or 'nothing'})"
                )
            table = table.filter(pc.equal(table["count_type"], wanted))
        return FrequencyTable(table, self.provenance)

    def pairs(self) -> list[tuple[str, str]]:
        """The (corpus, count type) pairs in the table."""
        rows = self.table.select(["corpus", "count_type"]).group_by(["corpus", "count_type"]).aggregate([])
        return sorted(zip(rows["corpus"].to_pylist(), rows["count_type"].to_pylist()))

    def rarest(self, n: int = 20) -> pa.Table:
        """The ``n`` rows with the fewest documents (ties by concept id, so the order is stable)."""
        return self.table.sort_by([("documents", "ascending"), ("concept_id", "ascending")]).slice(0, n)

    def most_frequent(self, n: int = 20) -> pa.Table:
        return self.table.sort_by([("documents", "descending"), ("concept_id", "ascending")]).slice(0, n)

    def lookup(self, query: str) -> pa.Table:
        """Rows whose concept id or display name matches ``query`` (case/punctuation-insensitive)."""
        wanted = normalize_text(query)
        names = [normalize_text(n) for n in self.table.column("name").to_pylist()]
        ids = [normalize_text(display_name(i)) for i in self.table.column("concept_id").to_pylist()]
        mask = pa.array([a == wanted or b == wanted for a, b in zip(names, ids)])
        return self.table.filter(mask)

    def counts(self) -> dict[str, int]:
        """concept id -> documents, for a table holding one (corpus, count type) pair."""
        if len(self.pairs()) > 1:
            raise TableError("table holds several (corpus, count type) pairs; select one first")
        return dict(zip(self.table["concept_id"].to_pylist(), self.table["documents"].to_pylist()))


def paper_corpus_sizes() -> dict[str, int]:
    """Corpus sizes implied by the paper's misalignment metrics (its 'fixed conservative' size)."""
    from letitwag.data import read_bundled_json

    return {name: info["corpus_size_fixed"] for name, info in read_bundled_json("paper_misalignment.json").items()}


def paper_table(corpus: str, count_type: str = "matched", downstream: str | None = None) -> FrequencyTable:
    """A bundled table of the paper: counts of every concept of every downstream list in ``corpus``.

    ``count_type`` is ``matched``/``text``/``image``/``text_lowercased`` or any raw paper name
    (``rampp0.5``, ``integrated_tlemmatized_i0.6``, ...). Concepts that appear in several
    downstream lists appear once (their counts agree across lists in the release).
    """
    from letitwag.data import read_bundled_table

    raw = read_bundled_table("paper_frequencies.parquet")
    raw_type = PAPER_COUNT_TYPES.get(count_type, count_type)
    pretraining = pc.cast(raw["pretraining"], pa.string())
    types = pc.cast(raw["count_type"], pa.string())
    rows = raw.filter(pc.and_(pc.equal(pretraining, corpus), pc.equal(types, raw_type)))
    if downstream is not None:
        rows = rows.filter(pc.equal(pc.cast(rows["downstream"], pa.string()), downstream))
    if rows.num_rows == 0:
        available = sorted(set(zip(pretraining.to_pylist(), types.to_pylist())))
        corpora = sorted({c for c, _ in available})
        kinds = sorted({t for c, t in available if c == corpus})
        if corpus not in corpora:
            raise TableError(f"no bundled paper table for corpus {corpus!r}; corpora: {', '.join(corpora)}")
        raise TableError(f"no bundled {corpus} table of count type {count_type!r}; count types: {', '.join(kinds)}")
    seen: dict[str, int] = {}
    for concept, count in zip(rows["concept"].to_pylist(), rows["count"].to_pylist()):
        if concept.strip():  # the release's COCO lists hold one empty-string concept
            seen.setdefault(concept, count)
    size = paper_corpus_sizes().get(corpus)
    table = pa.table(
        {
            "concept_id": list(seen),
            "name": [display_name(c) for c in seen],
            "corpus": [corpus] * len(seen),
            "count_type": [raw_type] * len(seen),
            "documents": list(seen.values()),
            "occurrences": [None] * len(seen),
            "corpus_size": [size] * len(seen),
            "pos_ambiguous": [None] * len(seen),
        },
        schema=TABLE_SCHEMA,
    )
    provenance = {
        "format": TABLE_FORMAT,
        "source": "bundled paper table (bethgelab/frequency_determines_performance, MIT)",
        "corpus": corpus,
        "count_type": raw_type,
        "downstream": downstream or "all",
    }
    return FrequencyTable(table, provenance)


def paper_counts_by_corpus(count_type: str = "matched") -> dict[str, dict[str, int]]:
    """``corpus -> {concept id: documents}`` from every bundled paper table of ``count_type``."""
    from letitwag.data import read_bundled_table

    corpora = sorted(set(pc.cast(read_bundled_table("paper_frequencies.parquet")["pretraining"], "string").to_pylist()))
    counts: dict[str, dict[str, int]] = {}
    for corpus in corpora:
        try:
            counts[corpus] = paper_table(corpus, count_type).counts()
        except TableError:
            continue  # not every corpus has every count type
    return counts


def counts_for_classes(class_names: list[str], counts: Mapping[str, int],
                       class_concepts: Mapping[str, str] | None = None) -> dict[str, int | None]:
    """Join class ids to counts by exact id, else by normalised display name (e.g. spacing variants).

    The harness bins accuracy with it and the leaderboard recomputes those bins with it, so the two
    can never disagree on which count belongs to which class (the paper's files spell
    ``African rock python`` where Let it Wag! says ``African_rock_python``); ``None`` = no count.
    ``class_concepts`` (``letitwag.concept_map``) names the paper's concept a class is, where the two
    differ (CIFAR-10's ``automobile`` is the paper's ``car``); that concept is then looked up instead.
    """
    by_form = {}
    for concept_id, count in counts.items():
        by_form.setdefault(normalize_text(display_name(concept_id)), count)
    concept_of = class_concepts or {}
    matched: dict[str, int | None] = {}
    for name in class_names:
        key = concept_of.get(name, name)
        if key in counts:
            matched[name] = int(counts[key])
        else:
            found = by_form.get(normalize_text(display_name(key)))
            matched[name] = int(found) if found is not None else None
    return matched
