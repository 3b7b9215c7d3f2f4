"""Hand-written captions for the fast matcher, in both modes."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest

from letitwag.concepts import Concept, ConceptList
from letitwag.frequency.text.matcher import TextMatcher

CONCEPTS = ConceptList(
    [
        Concept("dog"),
        Concept("hot_dog"),
        Concept("Bora_Bora"),
        Concept("glass"),
        Concept("glasses"),
        Concept("Allens_Hummingbird", aliases=("Allen's Hummingbird",)),
        Concept("hummingbird"),
        Concept("eastern_hog-nosed_snake"),
        Concept("goose"),
    ]
)
INDEX = {concept.id: index for index, concept in enumerate(CONCEPTS)}


def counts(captions, **options):
    result = TextMatcher(CONCEPTS, **options).count(captions)
    documents = {concept.id: int(result.documents[i]) for i, concept in enumerate(CONCEPTS)}
    occurrences = {concept.id: int(result.occurrences[i]) for i, concept in enumerate(CONCEPTS)}
    hits = list(zip(result.hit_rows.tolist(), [CONCEPTS[i].id for i in result.hit_concepts.tolist()]))
    return documents, occurrences, hits


def test_plurals_possessives_case_and_punctuation_count_for_the_lemma():
    documents, occurrences, _ = counts(["Two DOGS!!", "the dog's bowl", "dogs' park, dog.", "a hotdog"])
    assert documents["dog"] == 3
    assert occurrences["dog"] == 4


def test_hot_dog_counts_for_both_unless_longest_match():
    captions = ["a hot-dog and a dog", "Hot Dogs"]
    documents, occurrences, hits = counts(captions)
    assert (documents["hot_dog"], occurrences["hot_dog"]) == (2, 2)
    assert (documents["dog"], occurrences["dog"]) == (2, 3)
    assert hits == [(0, "dog"), (0, "hot_dog"), (1, "dog"), (1, "hot_dog")]
    documents, occurrences, _ = counts(captions, longest_match=True)
    assert (documents["dog"], occurrences["dog"]) == (1, 1)
    assert documents["hot_dog"] == 2


def test_order_and_contiguity_matter_in_phrase_mode_but_not_in_bag_mode():
    captions = ["dog that is hot", "snake, eastern hog-nosed"]
    documents, _, _ = counts(captions)
    assert documents["hot_dog"] == 0 and documents["eastern_hog-nosed_snake"] == 0
    documents, occurrences, _ = counts(captions, mode="bag")
    assert documents["hot_dog"] == 1 and documents["eastern_hog-nosed_snake"] == 1
    assert occurrences == documents


def test_hyphen_space_variants_and_irregular_plurals():
    documents, _, _ = counts(["Eastern Hog Nosed Snakes", "eastern hog-nosed snake", "three geese"])
    assert documents["eastern_hog-nosed_snake"] == 2
    assert documents["goose"] == 1


def test_aliases_count_once_per_caption_and_can_be_disabled():
    captions = ["Allen's hummingbird (allens hummingbird)"]
    documents, occurrences, _ = counts(captions)
    assert (documents["Allens_Hummingbird"], occurrences["Allens_Hummingbird"]) == (1, 2)
    documents, _, _ = counts(["Allen's hummingbird"], use_aliases=False)
    assert documents["Allens_Hummingbird"] == 0


def test_self_overlapping_matches_count_once():
    _, occurrences, _ = counts(["bora bora bora", "bora bora bora bora"])
    assert occurrences["Bora_Bora"] == 3


def test_concepts_sharing_a_lemma_both_count():
    documents, _, _ = counts(["wine glasses"])
    assert documents["glass"] == 1 and documents["glasses"] == 1


def test_nulls_and_empty_captions_count_nothing_in_every_input_type():
    captions = [None, "", "   ", "dog"]
    for batch in (captions, pa.array(captions), pa.chunked_array([captions[:2], captions[2:]])):
        documents, _, hits = counts(batch)
        assert documents["dog"] == 1 and hits == [(3, "dog")]


def test_matcher_pickles_and_reports_parameters():
    matcher = TextMatcher(CONCEPTS, mode="bag")
    clone = pickle.loads(pickle.dumps(matcher))
    assert clone.parameters == matcher.parameters
    assert matcher.parameters["mode"] == "bag" and matcher.parameters["n_concepts"] == len(CONCEPTS)
    np.testing.assert_array_equal(clone.count(["hot dog"]).documents, matcher.count(["hot dog"]).documents)


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError):
        TextMatcher(CONCEPTS, mode="fuzzy")


def test_unicode_captions_match_like_normalize_text():
    concepts = ConceptList([Concept("café"), Concept("Straße"), Concept("sofia"), Concept("σοφια")])
    captions = ["CAFÉ au lait", "Café’s terrace", "STRASSE", "Straße!", "ΣΟΦΙΑ", "cafe"]
    result = TextMatcher(concepts).count(captions)
    # "STRASSE" is not "straße" (Python lower-cases ẞ/ß differently from case folding), and
    # accents are kept: "cafe" is not "café"
    assert result.documents.tolist() == [2, 1, 0, 1]


def test_a_one_megabyte_caption_in_both_modes():
    caption = ("hot dogs and a goose; " * 50_000)[:1_000_000]
    expected = caption.count("hot dogs")
    for mode in ("phrase", "bag"):
        documents, occurrences, _ = counts([caption, "dog"], mode=mode)
        assert documents["hot_dog"] == 1 and documents["dog"] == 2 and documents["goose"] == 1
        if mode == "phrase":
            assert occurrences["hot_dog"] == expected and occurrences["dog"] == expected + 1
        else:
            assert occurrences == documents


def test_bag_mode_ignores_order_and_distance_but_needs_every_word():
    documents, _, hits = counts(["snake: eastern, hog nosed", "eastern snake", "a dog is hot"], mode="bag")
    assert documents["eastern_hog-nosed_snake"] == 1 and documents["hot_dog"] == 1
    assert (1, "eastern_hog-nosed_snake") not in hits


def test_empty_concepts_and_empty_lists_count_nothing():
    concepts = ConceptList([Concept("???"), Concept("dog")])
    for mode in ("phrase", "bag"):
        result = TextMatcher(concepts, mode=mode).count(["??? dog"])
        assert result.documents.tolist() == [0, 1]
        empty = TextMatcher(ConceptList([]), mode=mode).count(["dog"])
        assert len(empty.documents) == 0 and len(empty.hit_rows) == 0


def test_batches_longer_than_one_window_give_the_same_counts(monkeypatch):
    import letitwag.frequency.text.matcher as textmatch

    captions = ["hot dogs", None, "a dog", "geese", "Bora Bora bora"] * 7
    whole = TextMatcher(CONCEPTS).count(captions)
    monkeypatch.setattr(textmatch, "MAX_BATCH_ROWS", 4)
    windowed = TextMatcher(CONCEPTS).count(pa.chunked_array([captions[:9], captions[9:]]))
    for field in ("documents", "occurrences", "hit_rows", "hit_concepts"):
        np.testing.assert_array_equal(getattr(windowed, field), getattr(whole, field))
