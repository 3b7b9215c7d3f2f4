"""The fast matcher agrees exactly with both slow reference counters on synthetic captions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from _synthetic_captions import generate_captions
from reference_counters import LemmatizeThenMatch, SpacyInvertedIndex

from letitwag.concepts import Concept, ConceptList, bundled_concepts
from letitwag.frequency.text.matcher import TextMatcher


@pytest.fixture(scope="module")
def concepts() -> ConceptList:
    return bundled_concepts("all")


@pytest.fixture(scope="module")
def captions(concepts) -> list[str | None]:
    generated = generate_captions(concepts, 3000, seed=7)
    # the hard cases, inside a realistic batch
    return generated + [
        "bora bora bora",
        "hot dog; hot-dogs. HOT DOG'S",
        "Allen's hummingbird allens hummingbird",
        None,
        "",
        "ΣΟΦΙΑ café — Eastern Hog-Nosed Snake’s",
    ]


@pytest.mark.parametrize("longest_match", [False, True])
def test_phrase_counts_equal_the_lemmatise_then_match_reference(concepts, captions, longest_match):
    fast = TextMatcher(concepts, longest_match=longest_match).count(pa.array(captions, type=pa.string()))
    documents, occurrences = LemmatizeThenMatch(concepts, longest_match=longest_match).count_phrase(captions)
    assert fast.documents.sum() > 10_000  # the synthetic corpus really mentions concepts
    np.testing.assert_array_equal(fast.documents, documents)
    np.testing.assert_array_equal(fast.occurrences, occurrences)


def test_postings_equal_the_reference_per_caption(concepts, captions):
    fast = TextMatcher(concepts).count(captions)
    reference = LemmatizeThenMatch(concepts)
    expected = sorted({(row, c) for row, caption in enumerate(captions) for c, _, _ in reference.phrase_matches(caption)})
    assert list(zip(fast.hit_rows.tolist(), fast.hit_concepts.tolist())) == expected


def test_bag_counts_equal_the_reference_and_the_spacy_inverted_index(concepts, captions):
    fast = TextMatcher(concepts, mode="bag").count(captions)
    np.testing.assert_array_equal(fast.documents, LemmatizeThenMatch(concepts).count_bag(captions))
    subset = captions[:1000] + captions[-6:]
    fast_subset = TextMatcher(concepts, mode="bag").count(subset)
    np.testing.assert_array_equal(fast_subset.documents, SpacyInvertedIndex(concepts).count(subset))


def test_spacy_index_can_reproduce_the_papers_dropping_of_unknown_words():
    concepts = ConceptList([Concept("kite_bird_of_prey"), Concept("zebra")])
    captions = ["a red kite in the sky", "a kite of prey bird", "zebra"]
    assert SpacyInvertedIndex(concepts).count(captions).tolist() == [1, 1]
    # the paper drops concept words no caption contains: here none is missing, so no change
    assert SpacyInvertedIndex(concepts, drop_unknown_words=True).count(captions).tolist() == [1, 1]
    assert SpacyInvertedIndex(concepts, drop_unknown_words=True).count(captions[:1]).tolist() == [1, 0]
    assert SpacyInvertedIndex(concepts).count(captions[:1]).tolist() == [0, 0]
