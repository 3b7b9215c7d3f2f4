"""The compiled ``phrase`` kernel counts exactly like the vectorised path and the reference.

The kernel settles rows in three tiers (ASCII; other Unicode through per-code-point tables;
``normalize_text`` output for what the tables cannot settle), so these tests check each tier is
really taken and that the merged counts and postings equal the independent vectorised numpy
path (``_vectorised_window``) and the per-caption lemmatise-then-match reference.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from _synthetic_captions import generate_captions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_counters import LemmatizeThenMatch

from letitwag.concepts import Concept, ConceptList, bundled_concepts
from letitwag.frequency.text.matcher import TextMatcher
from letitwag.frequency.text.tokens import row_bounds

from .conftest import invalid_utf8_array

CONCEPTS = ConceptList(
    [
        Concept("dog"),
        Concept("hot_dog"),
        Concept("Bora_Bora"),
        Concept("glasses"),
        Concept("café"),
        Concept("straße"),
        Concept("istanbul"),
        Concept("σοφια"),
        Concept("Allens_Hummingbird", aliases=("Allen's Hummingbird",)),
        Concept("eastern_hog-nosed_snake"),
        Concept("éléphant_rose"),  # a word longer than 8 bytes whose bytes need decoding
    ]
)
# words of the concepts (as they appear in captions) and the characters that take other tiers
WORDS = ["dog", "Dogs", "dog's", "hot", "HOT", "bora", "Bora", "glasses", "café", "CAFÉ", "Straße", "STRASSE",
         "İstanbul", "Istanbul", "ΣΟΦΙΑ", "σοφια", "Allen's", "allens", "Hummingbird", "eastern", "hog-nosed",
         "snake", "Éléphant", "ÉLÉPHANTS", "éléphant", "rose", "HUMMINGBİRD", "a", "the", "x" * 40, "🐶", "猫", "ǅ", "ﬁ", "\U00030001dog", "½"]
SEPARATORS = [" ", "  ", "-", ", ", "’", "_", "\t", "—"]


def _equal(first, second) -> None:
    for field in ("documents", "occurrences", "hit_rows", "hit_concepts"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field), err_msg=field)


def _check_against_vectorised_and_reference(concepts: ConceptList, captions: list, longest_match: bool) -> None:
    matcher = TextMatcher(concepts, longest_match=longest_match)
    array = pa.array(captions, type=pa.string())
    compiled = matcher.count(array)
    _equal(compiled, matcher._vectorised_window(array))
    counts_only = matcher.count(array, with_hits=False)  # what counting without postings runs
    np.testing.assert_array_equal(counts_only.documents, compiled.documents)
    np.testing.assert_array_equal(counts_only.occurrences, compiled.occurrences)
    assert len(counts_only.hit_rows) == len(counts_only.hit_concepts) == 0
    documents, occurrences = LemmatizeThenMatch(concepts, longest_match=longest_match).count_phrase(captions)
    np.testing.assert_array_equal(compiled.documents, documents)
    np.testing.assert_array_equal(compiled.occurrences, occurrences)


@pytest.mark.parametrize("longest_match", [False, True])
def test_compiled_path_equals_the_reference_on_ascii_and_mixed_synthetic_corpora(longest_match):
    concepts = bundled_concepts("all")
    mixed = generate_captions(concepts, 1500, seed=11)
    ascii_only = [caption for caption in mixed if caption is None or caption.isascii()]
    assert len(ascii_only) < len(mixed)  # the generator really mixes in non-ASCII captions
    for captions in (ascii_only, mixed):
        _check_against_vectorised_and_reference(concepts, captions, longest_match)


CAPTION = st.one_of(
    st.none(),
    st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), max_size=12).map(
        lambda parts: "".join(word + separator for word, separator in parts)
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CAPTION, max_size=10), st.booleans())
def test_compiled_path_equals_the_reference_on_random_mixed_captions(captions, longest_match):
    _check_against_vectorised_and_reference(CONCEPTS, captions, longest_match)


def test_rows_fall_back_tier_by_tier_and_still_count():
    captions = [
        "two dogs and a hot dog",  # ASCII tier
        "a café dog",  # Unicode tables
        "İstanbul dog",  # İ lower-cases to i and a mark, i.e. a word break: Unicode tables
        "ΣΟΦΙΑ dog",  # final-sigma rule: normalize_text tier
        "\U00030001 dog",  # beyond the tables: normalize_text tier
        None,
        "STRASSE straße",
    ]
    matcher = TextMatcher(CONCEPTS)
    array = pa.array(captions, type=pa.string())
    documents = np.zeros(len(CONCEPTS), dtype=np.int64)
    occurrences = np.zeros(len(CONCEPTS), dtype=np.int64)
    starts, stops, data = row_bounds(array)  # the null row is empty
    assert stops[5] == starts[5]
    _, _, non_ascii = matcher._compiled.count(starts, stops, data, documents, occurrences, tier="ascii")
    assert non_ascii.tolist() == [1, 2, 3, 4, 6]
    _, _, still = matcher._compiled.count(starts[non_ascii], stops[non_ascii], data, documents, occurrences,
                                          tier="unicode")
    assert non_ascii[still].tolist() == [3, 4]

    result = matcher.count(array)
    index = {concept.id: i for i, concept in enumerate(CONCEPTS)}
    assert result.documents[index["dog"]] == 5 and result.occurrences[index["dog"]] == 6
    assert result.documents[index["istanbul"]] == 0  # "İstanbul" normalises to "i stanbul"
    assert result.documents[index["σοφια"]] == 1 and result.documents[index["café"]] == 1
    assert result.documents[index["straße"]] == 1
    assert result.hit_rows.tolist() == sorted(result.hit_rows.tolist())
    _equal(result, matcher._vectorised_window(array))


def test_a_null_slot_holding_bytes_counts_nothing_also_in_a_sliced_array():
    # Arrow lets a null slot keep bytes: rows "dog", null over "hot dog", "dog dog", null over "dog"
    text = b"doghot dogdog dogdog"
    offsets = pa.py_buffer(np.array([0, 3, 10, 17, 20], dtype=np.int32))
    validity = pa.py_buffer(np.packbits([1, 0, 1, 0], bitorder="little"))
    array = pa.StringArray.from_buffers(4, offsets, pa.py_buffer(text), validity)
    matcher = TextMatcher(CONCEPTS)
    index = {concept.id: i for i, concept in enumerate(CONCEPTS)}
    for captions, dogs in ((array, 2), (array.slice(1), 1), (array.slice(1, 2), 1)):
        result = matcher.count(captions)
        assert result.documents[index["dog"]] == dogs and result.documents[index["hot_dog"]] == 0
        _equal(result, matcher._vectorised_window(captions))


def test_invalid_utf8_rows_are_counted_like_normalize_text_with_replacement():
    array = invalid_utf8_array()
    matcher = TextMatcher(CONCEPTS)
    result = matcher.count(array)
    index = {concept.id: i for i, concept in enumerate(CONCEPTS)}
    # U+FFFD (the replacement) separates like any symbol: "hot \\ufffd\\ufffd dog" is "hot dog"
    assert result.documents[index["dog"]] == 2 and result.documents[index["hot_dog"]] == 1
    _equal(result, matcher._vectorised_window(array))


def test_chunked_input_with_sliced_chunks_keeps_batch_rows():
    chunks = [pa.array(["x", "dog", "café dog"]).slice(1), pa.array(["İstanbul hot dog", "dog"])]
    matcher = TextMatcher(CONCEPTS)
    result = matcher.count(pa.chunked_array(chunks))
    index = {concept.id: i for i, concept in enumerate(CONCEPTS)}
    hits = list(zip(result.hit_rows.tolist(), result.hit_concepts.tolist()))
    assert hits == [(0, index["dog"]), (1, index["dog"]), (1, index["café"]), (2, index["dog"]),
                    (2, index["hot_dog"]), (3, index["dog"])]
