"""Tag each caption with the concepts it mentions, using the frequency engine's matcher.

Why the engine's matcher: per-concept recall is joined with pretraining frequencies that the
same matcher counts, so a caption counts for a concept exactly when a pretraining caption with
the same words would. The paper tagged COCO / Flickr captions with spaCy lemmas of nouns and
proper nouns (``src/downstream_retrieval_extract_concepts.py``); here a caption carries every
concept of the dataset's list found by phrase matching on lemmas (docs/harness.md says where
the two differ). An image carries the union of its captions' concepts
(``retrieval_metrics``).
"""

from __future__ import annotations

import logging

from letitwag.concept_map import NO_CONCEPTS
from letitwag.concepts import ConceptList, load_concepts
from letitwag.downstream import concept_list_for_dataset

logger = logging.getLogger(__name__)


def resolve_concept_list(spec: str | None, source: str) -> ConceptList | None:
    """``--concepts`` (a bundled name or a file), ``none``, or (not given) the dataset's bundled list if known."""
    if spec == NO_CONCEPTS:
        return None
    if spec:
        return load_concepts(spec)
    known = concept_list_for_dataset(source)
    if known is None:
        logger.info("%s: no bundled concept list for this dataset, so no per-concept recall; pass --concepts "
                    "coco|flickr|all|FILE to tag its captions", source)
        return None
    return load_concepts(known)


def tag_captions(captions: list[str], concepts: ConceptList) -> tuple[list[list[str]], dict]:
    """Per caption, the ids of the concepts it mentions (in list order), and the matcher's parameters."""
    from letitwag.frequency.text.matcher import TextMatcher

    matcher = TextMatcher(concepts, mode="phrase")
    counts = matcher.count(captions)
    tagged: list[list[str]] = [[] for _ in captions]
    ids = concepts.ids
    for row, concept in zip(counts.hit_rows.tolist(), counts.hit_concepts.tolist()):
        tagged[row].append(ids[concept])
    return tagged, matcher.parameters
