"""Compiled one-pass ``phrase`` matcher (numba): tokenise, look up, walk the trie, count.

Why a compiled pass: the vectorised numpy path (``tokens`` + ``matcher``) makes a
dozen passes over every batch (classify bytes, find token bounds, gather keys, hash lookup, trie
steps, sort hits) and runs at ~300-400k captions per CPU-second. One loop over the Arrow data
buffer that tokenises, looks tokens up and walks the lemma trie while the caption is in cache
is several times faster, and keeps the same semantics by construction:

* a token is a maximal run of characters that ``normalize_text`` keeps, lower-cased: ASCII
  through a 256-entry byte table (``[\\W_]+`` separates, ``str.lower`` maps A-Z), other code points
  through the tables ``tokens`` builds from Python's own ``str.lower``/``str.isalnum``;
* a token is looked up exactly (FNV-1a hash of its normalised UTF-8, then byte comparison) in
  the matcher's vocabulary of surface forms; an unknown token breaks phrase adjacency, as in the
  numpy path;
* the lemma trie, longest-match filter (a span contained in a strictly longer span is dropped),
  per-concept greedy non-overlapping occurrences and per-caption document de-duplication are
  those of ``matcher``.

A caption the tables cannot settle exactly (invalid UTF-8, a code point whose lower-casing
depends on context, beyond the tables; or any non-ASCII byte when the caller
passes empty tables) is not counted here: its row is returned in ``fallback``, and the caller
passes it again as ``normalize_text`` output (with ``NORMALIZED_CLASSES``). The functions are
compiled on first use and cached on disk (``cache=True``), so later processes load them instead
of compiling.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# numba compiles these values into the cached kernels, and its cache tracks only this file:
# changing them in ``tokens`` needs this file touched (or the cache cleared) too
from letitwag.frequency.text.tokens import MAPPED_THEN_SEPARATOR, NEEDS_NORMALIZE_TEXT

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

# Byte tables of the scan: byte -> the normalised byte it adds to the token, 0 for a separator,
# or DECODE: the byte starts a UTF-8 sequence to decode through the Unicode tables (0xFF never
# occurs in valid UTF-8, so it cannot stand for a byte of normalised text).
DECODE = 0xFF
# raw captions: ASCII letters and digits lower-cased, other ASCII separates, the rest is decoded
RAW_CLASSES = np.zeros(256, dtype=np.uint8)
for _byte in b"abcdefghijklmnopqrstuvwxyz0123456789":
    RAW_CLASSES[_byte] = _byte
for _byte in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    RAW_CLASSES[_byte] = _byte + 32
RAW_CLASSES[0x80:] = DECODE
# ``normalize_text`` output: every byte as it is, only the space separates
NORMALIZED_CLASSES = np.arange(256, dtype=np.uint8)
NORMALIZED_CLASSES[0x20] = 0


@njit(cache=True, nogil=True, inline="always")
def _token_key(text, start, length):
    """64-bit key of a token's normalised UTF-8 bytes: the bytes themselves (little-endian) up
    to 8 bytes, so equal keys and lengths mean equal tokens; an FNV-1a hash beyond that."""
    key = np.uint64(0)
    if length <= 8:
        for index in range(length):
            key |= np.uint64(text[start + index]) << np.uint64(8 * index)
        return key
    key = _FNV_OFFSET
    for index in range(length):
        key = (key ^ np.uint64(text[start + index])) * _FNV_PRIME
    return key


@njit(cache=True, nogil=True, inline="always")
def _add_to_key(byte, length, short_key):
    """The token's short key after normalised ``byte`` is added at ``length``.

    Why only the key: the scan keeps no copy of the token's bytes (without the stores the
    kernel alone took ~170 instead of ~280 ms for 262,144 synthetic captions, timed ad hoc); a
    token too long for its key to hold it is rebuilt from the row by ``_normalised_token`` when
    it ends."""
    if length < 8:
        short_key |= np.uint64(byte) << np.uint64(8 * length)
    return short_key


@njit(cache=True, nogil=True)
def _normalised_token(data, start, length, classes, unicode_map, token, encoded):
    """Writes the first ``length`` normalised bytes of the token starting at byte ``start`` of
    ``data`` to ``token``: the scan's mapping again (``classes``, then ``unicode_map`` for a
    decoded code point), for the rare token longer than its 8-byte key."""
    written = 0
    index = start
    while written < length:
        code = classes[data[index]]
        if code != DECODE:
            token[written] = code
            written += 1
            index += 1
            continue
        point, size = _decode(data, index, len(data))
        index += size
        for offset in range(_utf8(np.int64(unicode_map[point]), encoded)):
            token[written] = encoded[offset]
            written += 1


@njit(cache=True, nogil=True, inline="always")
def _first_slot(key, shift):
    return (key * _GOLDEN) >> shift


@njit(cache=True, nogil=True)
def build_form_table(form_offsets, form_bytes, form_lemma, bits):
    """Open-addressing table of ``2**bits`` slots ``[key, length << 48 | form << 24 | lemma]``
    (length 0: empty); linear probing. One slot is one 16-byte read, so a lookup of a short
    token is usually a single cache line."""
    n_slots = 1 << bits
    table = np.zeros((n_slots, 2), dtype=np.uint64)
    shift = np.uint64(64 - bits)
    for form in range(len(form_offsets) - 1):
        start = form_offsets[form]
        length = form_offsets[form + 1] - start
        key = _token_key(form_bytes, start, length)
        slot = _first_slot(key, shift)
        while table[slot, 1] != 0:
            slot = (slot + np.uint64(1)) & np.uint64(n_slots - 1)
        table[slot, 0] = key
        table[slot, 1] = (np.uint64(length) << np.uint64(48)) | (np.uint64(form) << np.uint64(24)) | np.uint64(
            form_lemma[form])
    return table


@njit(cache=True, nogil=True, inline="always")
def _lookup(token, length, short_key, table, shift, form_offsets, form_bytes):
    """Lemma id of the normalised token ``token[:length]``, -1 if it is not a surface form
    (``short_key``: its key when at most 8 bytes long, gathered while scanning)."""
    key = short_key if length <= 8 else _token_key(token, 0, length)
    mask = np.uint64(len(table) - 1)
    slot = _first_slot(key, shift)
    while True:
        meta = table[slot, 1]
        if meta == 0:
            return -1
        if table[slot, 0] == key and (meta >> np.uint64(48)) == np.uint64(length):
            if length <= 8:
                return np.int64(meta & np.uint64(0xFFFFFF))
            first = form_offsets[np.int64((meta >> np.uint64(24)) & np.uint64(0xFFFFFF))]
            same = True
            for index in range(length):
                if token[index] != form_bytes[first + index]:
                    same = False
                    break
            if same:
                return np.int64(meta & np.uint64(0xFFFFFF))
        slot = (slot + np.uint64(1)) & mask


@njit(cache=True, nogil=True, inline="always")
def _decode(data, index, stop):
    """(code point, byte length) of the UTF-8 sequence at ``index``; (-1, 0) if it is invalid
    (bad lead or continuation byte, truncated, overlong, surrogate, beyond U+10FFFF)."""
    lead = np.int64(data[index])
    if lead >= 0xF0:
        size, value, least = 4, lead & 0x07, 0x10000
    elif lead >= 0xE0:
        size, value, least = 3, lead & 0x0F, 0x800
    elif lead >= 0xC0:
        size, value, least = 2, lead & 0x1F, 0x80
    else:
        return -1, 0
    if index + size > stop:
        return -1, 0
    for offset in range(1, size):
        byte = np.int64(data[index + offset])
        if byte & 0xC0 != 0x80:
            return -1, 0
        value = (value << 6) | (byte & 0x3F)
    if value < least or value > 0x10FFFF or (0xD800 <= value <= 0xDFFF):
        return -1, 0
    return value, size


@njit(cache=True, nogil=True, inline="always")
def _utf8(code, out):
    """Writes the UTF-8 bytes of code point ``code`` to ``out``; returns how many."""
    if code < 0x80:
        out[0] = code
        return 1
    if code < 0x800:
        out[0] = 0xC0 | (code >> 6)
        out[1] = 0x80 | (code & 0x3F)
        return 2
    if code < 0x10000:
        out[0] = 0xE0 | (code >> 12)
        out[1] = 0x80 | ((code >> 6) & 0x3F)
        out[2] = 0x80 | (code & 0x3F)
        return 3
    out[0] = 0xF0 | (code >> 18)
    out[1] = 0x80 | ((code >> 12) & 0x3F)
    out[2] = 0x80 | ((code >> 6) & 0x3F)
    out[3] = 0x80 | (code & 0x3F)
    return 4


@njit(cache=True, nogil=True)
def build_edge_table(states, lemmas, targets, n_lemmas, bits):
    """Open-addressing table of the trie's deeper edges: ``2**bits`` slots
    ``[state * n_lemmas + lemma + 1, target]`` (0: empty); one probe per step, usually."""
    n_slots = 1 << bits
    table = np.zeros((n_slots, 2), dtype=np.int64)
    shift = np.uint64(64 - bits)
    for edge in range(len(states)):
        key = states[edge] * n_lemmas + lemmas[edge] + 1
        slot = _first_slot(np.uint64(key), shift)
        while table[slot, 0] != 0:
            slot = (slot + np.uint64(1)) & np.uint64(n_slots - 1)
        table[slot, 0] = key
        table[slot, 1] = targets[edge]
    return table


@njit(cache=True, nogil=True, inline="always")
def _child(state, lemma, edges, shift, n_lemmas):
    """The trie state after ``state`` on ``lemma``, -1 if there is no such edge."""
    key = state * n_lemmas + lemma + 1
    mask = np.uint64(len(edges) - 1)
    slot = _first_slot(np.uint64(key), shift)
    while True:
        stored = edges[slot, 0]
        if stored == key:
            return edges[slot, 1]
        if stored == 0:
            return -1
        slot = (slot + np.uint64(1)) & mask


@njit(cache=True, nogil=True, inline="always")
def _shift_of(table):
    bits = 0
    while (1 << bits) < len(table):
        bits += 1
    return np.uint64(64 - bits)


@njit(cache=True, nogil=True)
def count_phrases(starts, stops, data, first_row, classes, unicode_map, unicode_special, table, form_offsets,
                  form_bytes, root, has_children, edges, n_lemmas, terminal_ptr, terminal_concepts, longest_match,
                  documents, occurrences, with_hits, hit_rows, hit_concepts, fallback):
    """Count rows ``data[starts[i]:stops[i]]``, from ``first_row`` on, into
    ``documents``/``occurrences``; write document hits, sorted by (row, concept), into
    ``hit_rows``/``hit_concepts`` (only ``with_hits``: without, they are not touched and may be
    empty) and the rows not counted here into ``fallback`` (as long as ``starts``). Rows are
    given by bounds rather than offsets so that a null row is simply empty and a subset of rows
    (the second tier's) is counted in place, without copying the text.
    Returns ``(n_hits, n_fallback, next_row)``: it stops before a row whose hits might not fit
    (``next_row`` < rows: call again with fresh hit buffers).

    Every buffer is allocated once per call, never grown: growing arrays inside the loops
    costs numba reference-count traffic that doubled the run time.

    ``classes``: ``RAW_CLASSES`` for captions, ``NORMALIZED_CLASSES`` for rows that are
    ``normalize_text`` output already. ``unicode_map``/``unicode_special``: per code point, its
    normalised code point (0x20 for a separator) and its kind (``tokens.unicode_tables``:
    a code point that needs ``normalize_text`` sends its row to ``fallback``; one followed by a
    word break ends the token after its mapped code point); empty arrays send every row with a
    non-ASCII byte to ``fallback``.
    """
    n_rows = len(starts)
    n_concepts = len(documents)
    longest_row = 0
    for row in range(first_row, n_rows):
        longest_row = max(longest_row, stops[row] - starts[row])
    seen_row = np.full(n_concepts, -1, dtype=np.int64)
    last_end = np.zeros(n_concepts, dtype=np.int64)
    tokens = np.empty(longest_row // 2 + 2, dtype=np.int32)  # tokens are separated by >= 1 byte
    # matches of one start position: at most every terminal once
    group_concept = np.empty(len(terminal_concepts) + 1, dtype=np.int32)
    group_end = np.empty(len(terminal_concepts) + 1, dtype=np.int64)
    found = np.empty(n_concepts + 1, dtype=np.int32)
    n_hits = 0
    n_fallback = 0
    max_form = 0
    for form in range(len(form_offsets) - 1):
        max_form = max(max_form, form_offsets[form + 1] - form_offsets[form])
    token = np.zeros(max_form + 1, dtype=np.uint8)
    encoded = np.zeros(4, dtype=np.uint8)
    shift = _shift_of(table)
    edge_shift = _shift_of(edges)
    for row in range(first_row, n_rows):
        if with_hits and len(hit_rows) - n_hits < n_concepts:
            return n_hits, n_fallback, row
        begin = starts[row]
        stop = stops[row]
        # 1. tokenise and look up: lemma id per token, -1 for tokens outside the vocabulary
        n_tokens = 0
        length = 0  # normalised bytes of the current token
        short_key = np.uint64(0)
        fall_back = False
        index = begin
        token_start = begin  # where the current token starts (the byte after the last separator)
        while True:
            if index < stop:
                code = classes[data[index]]  # the hot path: one table read per byte
                if code != DECODE:
                    index += 1
                    if code != 0:
                        short_key = _add_to_key(code, length, short_key)
                        length += 1
                        continue
                else:
                    if len(unicode_map) == 0:
                        fall_back = True
                        break
                    point, size = _decode(data, index, stop)
                    if point < 0 or point >= len(unicode_map) or unicode_special[point] == NEEDS_NORMALIZE_TEXT:
                        fall_back = True
                        break
                    index += size
                    mapped = np.int64(unicode_map[point])
                    if mapped != 0x20:
                        for offset in range(_utf8(mapped, encoded)):
                            short_key = _add_to_key(encoded[offset], length, short_key)
                            length += 1
                        if unicode_special[point] != MAPPED_THEN_SEPARATOR:
                            continue
            # a separator, or the end of the row: the token ends
            if length > 0:
                lemma = -1
                if length <= max_form:
                    if length > 8:
                        _normalised_token(data, token_start, length, classes, unicode_map, token, encoded)
                    lemma = _lookup(token, length, short_key, table, shift, form_offsets, form_bytes)
                tokens[n_tokens] = lemma
                n_tokens += 1
                length = 0
                short_key = np.uint64(0)
            if index >= stop:
                break
            token_start = index
        if fall_back:
            fallback[n_fallback] = row
            n_fallback += 1
            continue
        # 2. from every token in turn: walk the trie (matches by length), then settle the start's
        # matches longest first: longest-match filter, greedy occurrences, documents
        n_found = 0
        reach_before = np.int64(-1)  # furthest end of any match starting earlier
        for start in range(n_tokens):
            lemma = tokens[start]
            if lemma < 0:
                continue
            state = root[lemma]
            position = start
            n_group = 0
            while state >= 0:
                for entry in range(terminal_ptr[state], terminal_ptr[state + 1]):
                    group_concept[n_group] = terminal_concepts[entry]
                    group_end[n_group] = position + 1
                    n_group += 1
                position += 1
                if position >= n_tokens or tokens[position] < 0 or not has_children[state]:
                    break
                state = _child(state, np.int64(tokens[position]), edges, edge_shift, n_lemmas)
            if n_group == 0:
                continue
            group_reach = group_end[n_group - 1]
            for index in range(n_group - 1, -1, -1):  # (start, -end) order
                end = group_end[index]
                if longest_match and (reach_before >= end or group_reach > end):
                    continue
                concept = group_concept[index]
                if seen_row[concept] != row:
                    seen_row[concept] = row
                    last_end[concept] = -1
                    found[n_found] = concept
                    n_found += 1
                if start >= last_end[concept]:
                    occurrences[concept] += 1
                    last_end[concept] = end
            if group_reach > reach_before:
                reach_before = group_reach
        # 3. documents, and the row's document hits sorted by concept
        if not with_hits:
            for index in range(n_found):
                documents[found[index]] += 1
            continue
        for index in range(1, n_found):
            value = found[index]
            back = index - 1
            while back >= 0 and found[back] > value:
                found[back + 1] = found[back]
                back -= 1
            found[back + 1] = value
        for index in range(n_found):
            documents[found[index]] += 1
            hit_rows[n_hits] = row
            hit_concepts[n_hits] = found[index]
            n_hits += 1
    return n_hits, n_fallback, n_rows
