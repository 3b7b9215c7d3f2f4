"""Compiled one-pass ``phrase`` matcher (numba): tokenise, look up, walk the trie, count.

Why a compiled pass: the vectorised numpy path (``caption_tokens`` + ``textmatch``) makes a
dozen passes over every batch (classify bytes, find token bounds, gather keys, hash lookup, trie
steps, sort hits) and runs at ~300-400k captions per CPU-second. One loop over the Arrow data
buffer that tokenises, looks tokens up and walks the lemma trie while the caption is in cache
is several times faster, and keeps the same semantics by construction:

* a token is a maximal run of characters that ``normalize_text`` keeps, lower-cased: ASCII
  through a 128-entry table (``[\\W_]+`` separates, ``str.lower`` maps A-Z), other code points
  through the tables ``caption_tokens`` builds from Python's own ``str.lower``/``str.isalnum``;
* a token is looked up exactly (FNV-1a hash of its normalised UTF-8, then byte comparison) in
  the matcher's vocabulary of surface forms; an unknown token breaks phrase adjacency, as in the
  numpy path;
* the lemma trie, longest-match filter (a span contained in a strictly longer span is dropped),
  per-concept greedy non-overlapping occurrences and per-caption document de-duplication are
  those of ``textmatch``.

A caption the tables cannot settle exactly (invalid UTF-8, a code point whose lower-casing is
not one-to-one or depends on context, beyond the tables; or any non-ASCII byte when the caller
passes empty tables) is not counted here: its row is returned in ``fallback``, and the caller
passes it again as ``normalize_text`` output (``normalized=True``). The functions are compiled on first use and cached
on disk (``cache=True``), so later processes load them instead of compiling.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)

# ASCII byte -> its lower-case letter/digit, or 0 for a separator (bytes >= 0x80 are decoded).
ASCII_CLASSES = np.zeros(128, dtype=np.uint8)
for _byte in b"abcdefghijklmnopqrstuvwxyz0123456789":
    ASCII_CLASSES[_byte] = _byte
for _byte in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    ASCII_CLASSES[_byte] = _byte + 32


@njit(cache=True, nogil=True)
def _fnv(data, start, stop):
    value = _FNV_OFFSET
    for index in range(start, stop):
        value = (value ^ np.uint64(data[index])) * _FNV_PRIME
    return value


@njit(cache=True, nogil=True)
def build_form_table(form_offsets, form_bytes, n_slots):
    """Open-addressing table (``n_slots`` a power of two) of form index per slot, -1 = empty.
    Forms are hashed by their UTF-8 bytes, as ``count_phrases`` hashes normalised tokens."""
    slots = np.full(n_slots, -1, dtype=np.int32)
    mask = np.uint64(n_slots - 1)
    for form in range(len(form_offsets) - 1):
        slot = _fnv(form_bytes, form_offsets[form], form_offsets[form + 1]) & mask
        while slots[slot] >= 0:
            slot = (slot + np.uint64(1)) & mask
        slots[slot] = form
    return slots


@njit(cache=True, nogil=True)
def _lookup(word, length, hashed, slots, form_offsets, form_bytes, form_lemma):
    """Lemma id of the normalised token ``word[:length]`` (FNV hash ``hashed``), -1 if unknown."""
    mask = np.uint64(len(slots) - 1)
    slot = hashed & mask
    while True:
        form = slots[slot]
        if form < 0:
            return -1
        first = form_offsets[form]
        if form_offsets[form + 1] - first == length:
            same = True
            for index in range(length):
                if word[index] != form_bytes[first + index]:
                    same = False
                    break
            if same:
                return form_lemma[form]
        slot = (slot + np.uint64(1)) & mask


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _child(state, lemma, child_ptr, child_lemma, child_target):
    low = child_ptr[state]
    high = child_ptr[state + 1]
    while low < high:
        middle = (low + high) // 2
        value = child_lemma[middle]
        if value < lemma:
            low = middle + 1
        elif value > lemma:
            high = middle
        else:
            return child_target[middle]
    return -1


@njit(cache=True, nogil=True)
def _grow(array, size):
    bigger = np.empty(max(2 * len(array), size), dtype=array.dtype)
    bigger[: len(array)] = array
    return bigger


@njit(cache=True, nogil=True)
def count_phrases(offsets, data, normalized, classes, unicode_map, unicode_special, slots, form_offsets, form_bytes, form_lemma, root, child_ptr, child_lemma,
                  child_target, terminal_ptr, terminal_concepts, longest_match, documents, occurrences):
    """Count rows ``offsets[i]:offsets[i+1]`` of ``data`` into ``documents``/``occurrences``.

    ``normalized``: the rows are ``normalize_text`` output already (tokens are split on spaces
    only, bytes taken as they are). ``unicode_map``/``unicode_special``: per code point, its normalised code point (0x20 for a
    separator) and whether it needs ``normalize_text`` itself; empty arrays send every row with
    a non-ASCII byte to ``fallback``. Returns ``(hit_rows, hit_concepts, fallback_rows)``:
    document hits sorted by (row, concept), and the rows counted nothing here.
    """
    n_rows = len(offsets) - 1
    n_concepts = len(documents)
    seen_row = np.full(n_concepts, -1, dtype=np.int64)
    last_end = np.zeros(n_concepts, dtype=np.int64)
    tokens = np.empty(64, dtype=np.int32)
    match_concept = np.empty(64, dtype=np.int32)
    match_start = np.empty(64, dtype=np.int64)
    match_end = np.empty(64, dtype=np.int64)
    found = np.empty(64, dtype=np.int32)
    hit_rows = np.empty(max(1024, n_rows), dtype=np.int64)
    hit_concepts = np.empty(max(1024, n_rows), dtype=np.int32)
    n_hits = 0
    fallback = np.empty(16, dtype=np.int64)
    n_fallback = 0
    max_form = 0
    for form in range(len(form_offsets) - 1):
        max_form = max(max_form, form_offsets[form + 1] - form_offsets[form])
    token = np.zeros(max_form + 1, dtype=np.uint8)
    word = np.zeros(4, dtype=np.int64)
    for row in range(n_rows):
        begin = offsets[row]
        stop = offsets[row + 1]
        # 1. tokenise and look up: lemma id per token, -1 for tokens outside the vocabulary
        n_tokens = 0
        length = 0
        hashed = _FNV_OFFSET
        fall_back = False
        index = begin
        while index <= stop:
            code = np.int64(0x20)  # separator (also after the last byte)
            size = 1
            verbatim = False
            if index < stop:
                byte = data[index]
                if normalized:
                    verbatim = True
                    code = np.int64(byte)
                elif byte < 0x80:
                    code = np.int64(classes[byte])
                    if code == 0:
                        code = 0x20
                elif len(unicode_map) == 0:
                    fall_back = True
                    break
                else:
                    point, size = _decode(data, index, stop)
                    if point < 0 or point >= len(unicode_map) or unicode_special[point]:
                        fall_back = True
                        break
                    code = np.int64(unicode_map[point])
            index += size
            if code != 0x20:
                # append the UTF-8 bytes of the normalised code point (beyond the longest form: unknown)
                if code < 0x80 or verbatim:
                    n_bytes = 1
                    word[0] = code
                elif code < 0x800:
                    n_bytes = 2
                    word[0] = 0xC0 | (code >> 6)
                    word[1] = 0x80 | (code & 0x3F)
                elif code < 0x10000:
                    n_bytes = 3
                    word[0] = 0xE0 | (code >> 12)
                    word[1] = 0x80 | ((code >> 6) & 0x3F)
                    word[2] = 0x80 | (code & 0x3F)
                else:
                    n_bytes = 4
                    word[0] = 0xF0 | (code >> 18)
                    word[1] = 0x80 | ((code >> 12) & 0x3F)
                    word[2] = 0x80 | ((code >> 6) & 0x3F)
                    word[3] = 0x80 | (code & 0x3F)
                for offset in range(n_bytes):
                    hashed = (hashed ^ np.uint64(word[offset])) * _FNV_PRIME
                    if length < max_form:
                        token[length] = word[offset]
                    length += 1
            elif length > 0:
                if n_tokens == len(tokens):
                    tokens = _grow(tokens, n_tokens + 1)
                lemma = -1
                if length <= max_form:
                    lemma = _lookup(token, length, hashed, slots, form_offsets, form_bytes, form_lemma)
                tokens[n_tokens] = lemma
                n_tokens += 1
                length = 0
                hashed = _FNV_OFFSET
        if fall_back:
            if n_fallback == len(fallback):
                fallback = _grow(fallback, n_fallback + 1)
            fallback[n_fallback] = row
            n_fallback += 1
            continue
        # 2. trie walk from every token: matches ordered by start, then by length
        n_matches = 0
        for start in range(n_tokens):
            lemma = tokens[start]
            if lemma < 0:
                continue
            state = root[lemma]
            position = start
            while state >= 0:
                for entry in range(terminal_ptr[state], terminal_ptr[state + 1]):
                    if n_matches == len(match_concept):
                        match_concept = _grow(match_concept, n_matches + 1)
                        match_start = _grow(match_start, n_matches + 1)
                        match_end = _grow(match_end, n_matches + 1)
                    match_concept[n_matches] = terminal_concepts[entry]
                    match_start[n_matches] = start
                    match_end[n_matches] = position + 1
                    n_matches += 1
                position += 1
                if position >= n_tokens or tokens[position] < 0:
                    break
                state = _child(state, tokens[position], child_ptr, child_lemma, child_target)
        if n_matches == 0:
            continue
        # 3. per start group (longest span last): longest-match filter, occurrences, documents
        n_found = 0
        reach_before = np.int64(-1)  # furthest end of any span starting earlier
        group = 0
        while group < n_matches:
            group_stop = group
            while group_stop < n_matches and match_start[group_stop] == match_start[group]:
                group_stop += 1
            group_reach = match_end[group_stop - 1]
            for index in range(group_stop - 1, group - 1, -1):  # (start, -end) order
                end = match_end[index]
                if longest_match and (reach_before >= end or group_reach > end):
                    continue
                concept = match_concept[index]
                if seen_row[concept] != row:
                    seen_row[concept] = row
                    last_end[concept] = -1
                    if n_found == len(found):
                        found = _grow(found, n_found + 1)
                    found[n_found] = concept
                    n_found += 1
                if match_start[index] >= last_end[concept]:
                    occurrences[concept] += 1
                    last_end[concept] = end
            if group_reach > reach_before:
                reach_before = group_reach
            group = group_stop
        # 4. document hits of the row, sorted by concept
        for index in range(1, n_found):
            value = found[index]
            back = index - 1
            while back >= 0 and found[back] > value:
                found[back + 1] = found[back]
                back -= 1
            found[back + 1] = value
        if n_hits + n_found > len(hit_rows):
            hit_rows = _grow(hit_rows, n_hits + n_found)
            hit_concepts = _grow(hit_concepts, n_hits + n_found)
        for index in range(n_found):
            documents[found[index]] += 1
            hit_rows[n_hits] = row
            hit_concepts[n_hits] = found[index]
            n_hits += 1
    return hit_rows[:n_hits].copy(), hit_concepts[:n_hits].copy(), fallback[:n_fallback].copy()
