"""Join per-concept scores with a frequency table, and say exactly what did not join.

Results and tables spell concepts differently (``Acadian_Flycatcher`` vs ``acadian
flycatcher``, CIFAR-10's ``plane`` vs the counts' ``airplane``). We match in a fixed order and
record for every row how it matched: an explicit rename the caller gave, the exact id, the
normalised form of the id or display name (``letitwag.concepts.normalize_text``), or a
bundled alias. A concept that still does not match is listed with its reason; a normalised
form shared by two table concepts is ambiguous and is not guessed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from letitwag.analysis.results_io import ConceptScores
from letitwag.concepts import bundled_concepts, display_name, normalize_text
from letitwag.tables import FrequencyTable


@dataclass
class CountIndex:
    """Lookup from any spelling of a concept to its table row (one corpus, one count type)."""

    corpus: str
    count_type: str
    counts: dict[str, int]
    by_form: dict[str, list[str]] = field(default_factory=dict)
    by_alias: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_table(cls, table: FrequencyTable) -> "CountIndex":
        pairs = table.pairs()
        corpus, count_type = pairs[0]
        ids = table.table["concept_id"].to_pylist()
        names = table.table["name"].to_pylist()
        counts = dict(zip(ids, table.table["documents"].to_pylist()))
        index = cls(corpus, count_type, counts)
        for concept_id, name in zip(ids, names):
            for form in {normalize_text(display_name(concept_id)), normalize_text(name or "")}:
                if form and concept_id not in index.by_form.setdefault(form, []):
                    index.by_form[form].append(concept_id)
        for concept in _bundled_alias_concepts():
            if concept.id in counts:
                for form in concept.surface_forms()[1:]:
                    if concept.id not in index.by_alias.setdefault(form, []):
                        index.by_alias[form].append(concept.id)
        return index


@functools.lru_cache(maxsize=1)
def _bundled_alias_concepts():
    """Bundled concepts that carry aliases (e.g. ``Artic_Tern`` -> ``Arctic Tern``)."""
    concepts = list(bundled_concepts("all")) + list(bundled_concepts("let-it-wag"))
    return tuple(c for c in concepts if c.aliases)


@dataclass
class JoinResult:
    rows: list[dict]
    unjoined: list[dict]
    methods: dict[str, int]


def _match(concept: str, index: CountIndex, renames: dict[str, str]) -> tuple[str | None, str, str]:
    """(table id or None, method, reason when unmatched)."""
    if concept in renames:
        target = renames[concept]
        if target in index.counts:
            return target, "rename", ""
        return None, "", f"renamed to {target!r}, which is not in the table"
    if concept in index.counts:
        return concept, "exact", ""
    form = normalize_text(display_name(concept))
    for method, lookup in (("normalized", index.by_form), ("alias", index.by_alias)):
        found = lookup.get(form, [])
        if len(found) == 1:
            return found[0], method, ""
        if len(found) > 1:
            return None, "", f"ambiguous: its normalised form {form!r} matches {', '.join(sorted(found))}"
    return None, "", f"no table concept with id or normalised name {form!r}"


def join_scores(scores: ConceptScores, index: CountIndex, renames: dict[str, str] | None = None) -> JoinResult:
    """Rows of (concept, count, score) for every concept of ``scores`` found in ``index``."""
    renames = renames or {}
    rows: list[dict] = []
    unjoined: list[dict] = []
    methods = {"rename": 0, "exact": 0, "normalized": 0, "alias": 0}
    for concept, score in scores.scores.items():
        concept_id, method, reason = _match(concept, index, renames)
        if concept_id is None:
            unjoined.append({"source": scores.source, "model": scores.model, "dataset": scores.dataset,
                             "metric": scores.metric, "concept": concept, "reason": reason})
            continue
        methods[method] += 1
        rows.append({
            "source": scores.source, "model": scores.model, "dataset": scores.dataset, "task": scores.task,
            "metric": scores.metric, "corpus": index.corpus, "count_type": index.count_type,
            "concept": concept, "concept_id": concept_id, "match": method,
            "count": int(index.counts[concept_id]), "score": float(score),
        })
    return JoinResult(rows, unjoined, methods)
