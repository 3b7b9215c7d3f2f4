"""Mine the rarest concepts of a frequency table under explicit, recorded criteria.

Why this exists: the paper picked the 290 Let it Wag! concepts as the least frequent concepts
of its LAION-400M analysis that still had enough test images (its class-balancing script keeps
only classes with more than 450 images); the exact filter was never written down, and the
released list is not the plain bottom-290 of any one bundled table (some released ids are
spelled differently from the downstream lists, many have zero matched counts). Here every
criterion is a parameter, each concept's fate is recorded with the criterion that decided it,
and ties are broken by concept id, so the same table and criteria always give the same list.

Order of the criteria (the first one that fails names the reason a concept was dropped):

1. ``source``      — the concept is in one of the chosen bundled downstream lists (if any given);
2. ``excluded``    — not in the user's exclusion list;
3. ``zero``        — count > 0 when zero counts are excluded;
4. ``min_count`` / ``max_count`` — count within the bounds;
5. ``candidates``  — at least N candidate images in a candidate manifest (if one is given);
6. ``k``           — among the first ``k`` survivors in (count, concept id) order.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Iterable

from letitwag.concepts import Concept, ConceptList, bundled_concepts, display_name
from letitwag.errors import UserInputError
from letitwag.tables import PAPER_CORPORA, FrequencyTable, TableError, paper_table

LOGGER = logging.getLogger(__name__)

CRITERIA_ORDER = ("source", "excluded", "zero", "min_count", "max_count", "candidates", "k")


@dataclass(frozen=True)
class MiningCriteria:
    """Everything that decides which concepts are mined; written into the output as-is."""

    k: int = 290
    count_type: str | None = None
    corpus: str | None = None
    min_count: int | None = None
    max_count: int | None = None
    exclude_zero: bool = False
    sources: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    min_candidates: int | None = None
    tie_break: str = "concept_id ascending"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise UserInputError(f"--k must be at least 1 (got {self.k})")
        if self.min_count is not None and self.max_count is not None and self.min_count > self.max_count:
            raise UserInputError(f"--min-count {self.min_count} is above --max-count {self.max_count}")


@dataclass(frozen=True)
class ConceptDecision:
    """Where one concept ranks and what decided its fate."""

    concept_id: str
    count: int
    rank: int  # 1-based position among all concepts of the table in (count, id) order
    kept: bool
    criterion: str  # the criterion that dropped it, or "k" with kept=True
    detail: str
    sources: tuple[str, ...] = ()
    candidates: int | None = None


@dataclass
class MiningResult:
    """The mined concepts (in class order), every concept's decision, and the inputs' description."""

    concepts: ConceptList
    decisions: dict[str, ConceptDecision]
    criteria: MiningCriteria
    table_description: dict = field(default_factory=dict)

    def explain(self, query: str) -> str:
        """One paragraph on where ``query`` ranks and which criterion kept or dropped it."""
        decision = self.decisions.get(query)
        if decision is None:
            wanted = ConceptList([Concept(i) for i in self.decisions]).find(query)
            decision = self.decisions.get(wanted.id) if wanted else None
        if decision is None:
            raise UserInputError(
                f"concept {query!r} is not in the frequency table ({self.table_description.get('table')}); "
                "check the spelling or use a table that counts it"
            )
        verdict = "KEPT" if decision.kept else f"DROPPED by criterion '{decision.criterion}'"
        candidates = "" if decision.candidates is None else f", {decision.candidates} candidate images"
        sources = ", ".join(decision.sources) or "no bundled list"
        return (
            f"{decision.concept_id}: count {decision.count} "
            f"({self.table_description.get('corpus')}, {self.table_description.get('count_type')}), "
            f"rank {decision.rank} of {len(self.decisions)} (rarest first, ties by concept id); "
            f"in {sources}{candidates}. {verdict}: {decision.detail}"
        )


def _membership(sources: Iterable[str]) -> dict[str, list[str]]:
    """concept id -> the bundled downstream lists it appears in (all lists, sorted)."""
    from letitwag.data import read_bundled_table

    member: dict[str, set[str]] = {}
    for row in read_bundled_table("concept_lists.parquet").select(["downstream", "concept"]).to_pylist():
        member.setdefault(row["concept"], set()).add(row["downstream"])
    for wanted in sources:
        bundled_concepts(wanted)  # raises a clear error for an unknown list name
    return {concept: sorted(lists) for concept, lists in member.items()}


def _single_pair(table: FrequencyTable, criteria: MiningCriteria) -> FrequencyTable:
    selected = table.select(corpus=criteria.corpus, count_type=criteria.count_type)
    pairs = selected.pairs()
    if not pairs:
        raise TableError(f"no rows for corpus {criteria.corpus!r}; the table has {table.pairs()}")
    if len(pairs) > 1:
        raise TableError(
            f"the table holds several (corpus, count type) pairs {pairs}; choose one with --corpus/--count-type"
        )
    return selected


def bundled_counts(concept_ids: Iterable[str], count_type: str) -> dict[str, dict[str, int | None]]:
    """Each concept's count in every bundled pretraining corpus (``None`` where not counted)."""
    ids = list(concept_ids)
    counts: dict[str, dict[str, int | None]] = {concept: {} for concept in ids}
    for corpus in PAPER_CORPORA:
        try:
            table = paper_table(corpus, count_type).counts()
        except TableError:
            LOGGER.debug("no bundled %s table of count type %s", corpus, count_type)
            continue
        for concept in ids:
            counts[concept][corpus] = table.get(concept)
    return counts


def mine(
    table: FrequencyTable,
    criteria: MiningCriteria,
    candidate_counts: dict[str, int] | None = None,
    table_name: str = "",
) -> MiningResult:
    """Apply ``criteria`` to ``table``; ``candidate_counts`` (concept -> images) enables ``min_candidates``."""
    if criteria.min_candidates is not None and candidate_counts is None:
        raise UserInputError("--min-candidates needs a candidate manifest (--candidates DIR)")
    selected = _single_pair(table, criteria)
    corpus, raw_count_type = selected.pairs()[0]
    counts = selected.counts()
    membership = _membership(criteria.sources)
    excluded = set(criteria.exclude)
    ranked = sorted(counts, key=lambda concept: (counts[concept], concept))
    decisions: dict[str, ConceptDecision] = {}
    chosen: list[str] = []
    for rank, concept in enumerate(ranked, start=1):
        count = counts[concept]
        lists = tuple(membership.get(concept, ()))
        images = None if candidate_counts is None else candidate_counts.get(concept, 0)
        failed, detail = _first_failed(criteria, concept, count, lists, images, excluded)
        kept = failed is None and len(chosen) < criteria.k
        if kept:
            chosen.append(concept)
            failed, detail = "k", f"passes every criterion; rarest-{len(chosen)} of the survivors (k={criteria.k})"
        elif failed is None:
            failed, detail = "k", f"passes every criterion but the {criteria.k} rarer survivors fill k"
        decisions[concept] = ConceptDecision(concept, count, rank, kept, failed, detail, lists, images)
    if len(chosen) < criteria.k:
        LOGGER.warning("only %d concepts pass the criteria (asked for k=%d)", len(chosen), criteria.k)
    metadata = bundled_counts(chosen, raw_count_type) if _is_paper_type(raw_count_type) else {}
    concepts = ConceptList(
        (
            Concept(
                concept,
                name=display_name(concept),
                source=(decisions[concept].sources or ("",))[0],
                metadata={
                    "count": counts[concept],
                    "rank": decisions[concept].rank,
                    "counts": metadata.get(concept, {corpus: counts[concept]}),
                    "sources": list(decisions[concept].sources),
                    "candidates": decisions[concept].candidates,
                    "why": decisions[concept].detail,
                },
            )
            for concept in chosen
        ),
        name=f"rarest-{criteria.k}-{corpus}",
    )
    description = {"table": table_name, "corpus": corpus, "count_type": raw_count_type, "concepts": len(counts)}
    return MiningResult(concepts, decisions, criteria, description)


def _is_paper_type(raw_count_type: str) -> bool:
    from letitwag.tables import PAPER_COUNT_TYPES

    return raw_count_type in PAPER_COUNT_TYPES.values() or raw_count_type in PAPER_COUNT_TYPES


def _first_failed(
    criteria: MiningCriteria,
    concept: str,
    count: int,
    lists: tuple[str, ...],
    images: int | None,
    excluded: set[str],
) -> tuple[str | None, str]:
    """The first criterion ``concept`` fails (in ``CRITERIA_ORDER``), with a sentence; ``(None, "")`` if none."""
    if criteria.sources and not set(lists) & set(criteria.sources):
        return "source", f"not in the chosen lists {', '.join(criteria.sources)} (it is in: {', '.join(lists) or 'none'})"
    if concept in excluded:
        return "excluded", "on the exclusion list"
    if criteria.exclude_zero and count == 0:
        return "zero", "count is 0 and zero counts are excluded"
    if criteria.min_count is not None and count < criteria.min_count:
        return "min_count", f"count {count} < min count {criteria.min_count}"
    if criteria.max_count is not None and count > criteria.max_count:
        return "max_count", f"count {count} > max count {criteria.max_count}"
    if criteria.min_candidates is not None and (images or 0) < criteria.min_candidates:
        return "candidates", f"{images or 0} candidate images < required {criteria.min_candidates}"
    return None, ""


def candidate_counts_from_manifest(directory: str) -> dict[str, int]:
    """Candidate images per concept in a candidate manifest directory."""
    from letitwag.builders.manifest import read_candidates

    manifest = read_candidates(directory)
    return dict(Counter(manifest.table["concept_id"].to_pylist()))


def result_document(result: MiningResult) -> dict:
    """The concept-list JSON with the criteria and a summary of every criterion's drops."""
    document = result.concepts.to_json()
    dropped = Counter(d.criterion for d in result.decisions.values() if not d.kept)
    document["mining"] = {
        "criteria": {**json.loads(json.dumps(asdict(result.criteria))), "order": list(CRITERIA_ORDER)},
        "table": result.table_description,
        "selected": len(result.concepts),
        "dropped_by": dict(sorted(dropped.items())),
    }
    return document
