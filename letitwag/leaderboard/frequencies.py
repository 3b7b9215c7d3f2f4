"""Pretraining frequencies of the board's classes, from the paper's bundled tables.

Both uses go through the join the harness's metrics use (``letitwag.tables.counts_for_classes``),
so that the board and the harness can never disagree on which count belongs to which class: the
recompute step hands the metric function exactly the bundled tables a claim was binned on, and the
site's rarest / most frequent bins use the same class-to-count join (exact id, then normalised display name: the paper's files spell
``African rock python`` where Let it Wag! says ``African_rock_python``).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

from letitwag.leaderboard.submission import SubmissionRejected, short_repr
from letitwag.tables import counts_for_classes, paper_counts_by_corpus, paper_table

# Besides the paper's downstream lists (letitwag.concepts.bundled_downstream_names).
OTHER_BUNDLED_LISTS = ("let-it-wag", "all")


@functools.lru_cache(maxsize=8)
def _bundled(count_type: str) -> dict[str, dict[str, int]]:
    return paper_counts_by_corpus(count_type)


def concept_frequencies(class_names: Sequence[str], corpus: str, count_type: str = "matched",
                        class_concepts: Mapping[str, str] | None = None) -> dict[str, int]:
    """class id -> documents in ``corpus`` for every class the paper's table covers (``class_concepts``: the
    paper's concept of a class where the two are spelled differently, ``letitwag.concept_map``)."""
    matched = counts_for_classes(list(class_names), paper_table(corpus, count_type).counts(), class_concepts)
    return {name: count for name, count in matched.items() if count is not None}


def frequency_counts_for(claimed_bins: Any, where: Any) -> dict[str, dict[str, int]]:
    """The bundled tables a claim's ``by_frequency_bin`` was computed on (its corpora, matched counts).

    Only the paper's corpora can be checked by the board; a claim binned on any other table
    cannot be recomputed and is refused with a message saying so.
    """
    if claimed_bins is None:
        return {}
    if not isinstance(claimed_bins, Mapping):
        raise SubmissionRejected(f"{where}: metrics.by_frequency_bin must be an object keyed by corpus")
    bundled = _bundled("matched")
    unknown = sorted(str(c) for c in claimed_bins if c not in bundled)
    if unknown:
        raise SubmissionRejected(f"{where}: metrics.by_frequency_bin uses corpus {short_repr(unknown[0])}, "
                                 "which the board "
                                 f"cannot check; the board knows {', '.join(sorted(bundled))}")
    return {corpus: bundled[corpus] for corpus in claimed_bins}


def class_concepts_for(results: Mapping[str, Any], class_names: Sequence[str], dataset_id: str,
                       where: Any) -> dict[str, str] | None:
    """The class -> paper concept map a classification claim's bins were joined through, rebuilt by the board.

    The claim only names the concept list (``dataset.concepts.list``); the map itself is recomputed
    from the board's class names with ``letitwag.concept_map`` and must equal the claimed one. A run
    without ``dataset.concepts`` joined classes to counts directly (None).
    """
    from letitwag.concept_map import class_concept_map
    from letitwag.concepts import bundled_downstream_names

    dataset = results.get("dataset")
    claimed = dataset.get("concepts") if isinstance(dataset, Mapping) else None
    if claimed is None:
        return None
    name = claimed.get("list") if isinstance(claimed, Mapping) else None
    if not isinstance(name, str) or name not in (*bundled_downstream_names(), *OTHER_BUNDLED_LISTS):
        raise SubmissionRejected(f"{where}: dataset.concepts.list {short_repr(name)} is not a bundled concept list; "
                                 "the board can check frequency bins only when classes map to one")
    class_map = class_concept_map(list(class_names), dataset_id, name)
    if claimed != class_map.to_json():
        raise SubmissionRejected(f"{where}: dataset.concepts differs from the board's mapping of its classes to the "
                                 f"'{name}' concepts; rerun the harness")
    return class_map.class_concepts
