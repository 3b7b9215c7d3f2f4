"""The vectorised tokeniser is exactly ``normalize_text(caption).split(" ")`` (hypothesis)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from letitwag.concepts import normalize_text
from letitwag.frequency.text.tokens import TokenVocabulary, tokenize

from .conftest import invalid_utf8_array

# ASCII-heavy text with the Unicode that breaks naive re-implementations: final sigma, dotted
# capital I, combining marks, ligatures, full-width letters, digits of other scripts, emoji.
TRICKY = "ΣσςİıŉǅﬁＡａ٣²½é\u0301ß\u00adẞ🐶猫—’_\x00\t\n"
ALPHABET = st.sampled_from(list("abcXYZ09 -'.,") + list(TRICKY)) | st.characters(codec="utf-8")
CAPTION = st.one_of(st.none(), st.text(alphabet=ALPHABET, max_size=40), st.from_regex(r"[A-Za-z0-9 ',.-]{0,60}", fullmatch=True))


def expected_tokens(captions):
    return [(row, word) for row, text in enumerate(captions) for word in (normalize_text(text or "").split(" ")) if word]


def check(captions, array):
    everything = sorted({word for _, word in expected_tokens(captions)})
    # every other distinct word is in the vocabulary, so unknown words must still keep positions
    vocabulary_words = everything[::2]
    ids = {word: index for index, word in enumerate(vocabulary_words)}
    tokens = tokenize(array, TokenVocabulary(ids))
    expected = expected_tokens(captions)
    ordinal_in_row = {}
    wanted_rows, wanted_ids, wanted_ordinals = [], [], []
    for row, word in expected:
        ordinal = ordinal_in_row.get(row, -1) + 1
        ordinal_in_row[row] = ordinal
        if word in ids:
            wanted_rows.append(row)
            wanted_ids.append(ids[word])
            wanted_ordinals.append(ordinal)
    # each caption's tokens are contiguous and in order (captions need not be in row order)
    assert np.all(np.diff(tokens.positions) > 0)
    changes = np.flatnonzero(np.diff(tokens.rows) != 0)
    assert len(np.unique(tokens.rows)) == len(changes) + (1 if len(tokens.rows) else 0)
    order = np.lexsort((tokens.positions, tokens.rows))
    assert tokens.rows[order].tolist() == wanted_rows
    assert tokens.word_ids[order].tolist() == wanted_ids
    # positions differ exactly as token ordinals within a caption, and by more across captions
    got = tokens.positions[order]
    for i in range(1, len(wanted_rows)):
        if wanted_rows[i] == wanted_rows[i - 1]:
            assert got[i] - got[i - 1] == wanted_ordinals[i] - wanted_ordinals[i - 1]
    assert np.all(np.diff(tokens.positions)[changes] > 1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CAPTION, max_size=12))
def test_tokeniser_equals_normalize_text_on_random_text(captions):
    check(captions, captions)
    check(captions, pa.array(captions, type=pa.large_string()))
    if len(captions) > 2:
        check(captions[1:], pa.array(captions, type=pa.string()).slice(1))
        check(captions, pa.chunked_array([pa.array(captions[:2], pa.string()), pa.array(captions[2:], pa.string())]))


def test_long_words_and_row_boundaries():
    captions = [
        "Supercalifragilisticexpialidocious rhinoceroses",
        "rhinoceroses",
        "RHINOCEROSES-supercalifragilisticexpialidocious",
        "x" * 40,
        "rhinocerosesx rhinoceroses",
    ]
    check(captions, captions)


def test_a_one_megabyte_caption():
    caption = ("A photo of a hot-dog, my DOG'S favourite! " * 25_000)[:1_000_000]
    check([caption, "dog"], [caption, "dog"])


def test_non_string_columns_are_rejected():
    import pytest

    with pytest.raises(TypeError):
        tokenize(pa.array([1, 2]), TokenVocabulary({"dog": 0}))


def test_every_unicode_path_in_one_batch():
    captions = [
        "plain ascii DOG",
        "Café CRÈME — naïve",  # vectorised code-point path
        "ΟΔΟΣ ΣΟΦΙΑ σοφίας",  # final sigma: normalize_text itself
        "İstanbul İİ",  # one code point lower-cases to two
        "\u212a Kelvin sign lower-cases to ASCII k",
        "𰀀 beyond plane two 𰀁x",  # U+30000: exact slow path
        "e\u0301 combining acute splits the word",
        None,
        "",
    ]
    check(captions, captions)


def test_invalid_utf8_bytes_are_replaced_not_fatal():
    array = invalid_utf8_array()
    tokens = tokenize(array, TokenVocabulary({"dog": 0, "hot": 1, "café": 2}))
    order = np.lexsort((tokens.positions, tokens.rows))
    assert list(zip(tokens.rows[order].tolist(), tokens.word_ids[order].tolist())) == [(0, 0), (0, 2), (1, 1), (1, 0)]


def test_string_views_dictionaries_and_empty_chunked_arrays():
    captions = ["Dogs", None, "a dog"]
    vocabulary = TokenVocabulary({"dog": 0, "dogs": 1})
    plain = tokenize(captions, vocabulary)
    for array in (pa.array(captions, pa.string_view()), pa.array(captions).dictionary_encode()):
        other = tokenize(array, vocabulary)
        assert other.rows.tolist() == plain.rows.tolist() and other.word_ids.tolist() == plain.word_ids.tolist()
    assert len(tokenize(pa.chunked_array([], pa.string()), vocabulary).rows) == 0
