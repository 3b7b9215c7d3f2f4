"""Tokenise a batch of captions exactly like ``normalize_text(caption).split(" ")``, vectorised.

Why not Arrow's regex kernels: RE2 replacement runs at a few MB/s here, slower than Python's
``re``. Instead, captions that are pure ASCII (the vast majority) are tokenised with numpy over
the Arrow data buffer: one 256-entry table lower-cases letters and turns every other byte into a
separator, token starts/ends come from one ``diff`` of the word mask, and each token is
identified by its packed bytes (tokens of at most 8 bytes *are* their 64-bit key; longer ones
get a hash that is then verified word by word, so the lookup is exact). Captions with non-ASCII
characters are decoded to code points and mapped through tables built from Python's own
``str.lower``/``str.isalnum`` (what ``normalize_text``'s ``\\W`` means), then re-encoded and
tokenised the same way; the few code points whose lower-casing is not one-to-one or depends on
context (``İ``, final ``Σ``) or that lie beyond plane 2 send their caption through
``normalize_text`` itself. Equivalence is by construction, and tested with hypothesis.

Only tokens in the matcher's vocabulary are returned, with a position that still tells adjacent
words from words separated by unknown ones (or by a caption boundary).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from letitwag.arrow_buffers import nulls_as_empty, primitive_array, string_array
from letitwag.concepts import normalize_text

_WORD_BYTES = 8
_MAX_CHUNK_BYTES = 16 * 1024 * 1024
_UNICODE_LIMIT = 0x30000  # planes 0-2; rarer code points take the exact slow path
_HASH_MULTIPLIERS = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93], dtype=np.uint64
)

# _LOW_BYTES[k]: mask keeping the first k bytes of a little-endian word (k = 0..8).
_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(_WORD_BYTES)] + [2**64 - 1], dtype=np.uint64)

# byte -> lower-case ASCII letter/digit, or 0 for a separator (every other byte).
_ASCII_TABLE = np.zeros(256, dtype=np.uint8)
for _byte in b"abcdefghijklmnopqrstuvwxyz0123456789":
    _ASCII_TABLE[_byte] = _byte
for _byte in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _ASCII_TABLE[_byte] = _byte + 32

# For text already normalised by ``normalize_text``: only the space separates tokens.
_NORMALIZED_TABLE = np.arange(256, dtype=np.uint8)
_NORMALIZED_TABLE[ord(" ")] = 0
_ASCII_TABLE, _NORMALIZED_TABLE = _ASCII_TABLE.tobytes(), _NORMALIZED_TABLE.tobytes()


def _pack_words(text: bytes, n_words: int) -> list[int]:
    padded = text.ljust(n_words * _WORD_BYTES, b"\0")
    return [int.from_bytes(padded[i * _WORD_BYTES : (i + 1) * _WORD_BYTES], "little") for i in range(n_words)]


def _combine(words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """64-bit key of tokens given their packed words [n, k]: exact for <= 8 bytes, else a hash."""
    key = words[:, 0].copy()
    long = lengths > _WORD_BYTES
    if long.any():
        mixed = key[long] * _HASH_MULTIPLIERS[0]
        for column in range(1, words.shape[1]):
            mixed ^= words[long, column] * _HASH_MULTIPLIERS[column % len(_HASH_MULTIPLIERS)]
            mixed = (mixed << np.uint64(29)) | (mixed >> np.uint64(35))
        mixed ^= lengths[long].astype(np.uint64)
        key[long] = mixed
    return key


class TokenVocabulary:
    """Surface form -> word id (several forms may share an id: the forms of one lemma).

    Keeps, for the byte-level tokeniser, the packed UTF-8 bytes of every form and an Arrow set
    for the exact 64-bit key lookup.
    """

    def __init__(self, ids: dict[str, int]) -> None:
        self.ids = dict(ids)
        forms = [form for form in self.ids if form]
        encoded = [form.encode("utf-8") for form in forms]
        self.max_length = max((len(text) for text in encoded), default=0)
        self.n_words = max(1, -(-self.max_length // _WORD_BYTES))
        packed = np.array([_pack_words(text, self.n_words) for text in encoded], dtype=np.uint64)
        packed = packed.reshape(len(forms), self.n_words)
        lengths = np.array([len(text) for text in encoded], dtype=np.int64)
        keys = _combine(packed, lengths)
        if len(np.unique(keys)) != len(keys):  # pragma: no cover - astronomically unlikely
            raise ValueError("vocabulary hash collision; change _HASH_MULTIPLIERS")
        self.packed = packed
        self.lengths = lengths
        self.form_ids = np.array([self.ids[form] for form in forms], dtype=np.int64)
        self.key_set = pa.array(keys, type=pa.uint64())

    def __getstate__(self) -> dict:
        return {"ids": self.ids}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["ids"])


@dataclass
class Tokens:
    """The vocabulary tokens of a batch, in caption order (each caption's tokens contiguous)."""

    rows: np.ndarray  # int64: caption row of each token
    positions: np.ndarray  # int64, increasing: adjacent words of one caption differ by exactly
    # 1 and words of different captions by more, so spans of two captions never touch
    word_ids: np.ndarray  # int64: vocabulary id


def typed_string_chunks(captions: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> list[pa.Array]:
    """The captions as Arrow ``string``/``large_string`` arrays, nulls kept."""
    if isinstance(captions, pa.ChunkedArray):
        chunks = captions.chunks
    elif isinstance(captions, pa.Array):
        chunks = [captions]
    else:
        chunks = [pa.array(list(captions), type=pa.string())]
    converted = []
    for chunk in chunks:
        if pa.types.is_null(chunk.type):
            chunk = pa.array([None] * len(chunk), type=pa.string())
        elif pa.types.is_string_view(chunk.type) or (
            pa.types.is_dictionary(chunk.type) and pa.types.is_string(chunk.type.value_type)
        ):
            chunk = chunk.cast(pa.string())
        elif not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            raise TypeError(f"captions must be strings, got an Arrow column of type {chunk.type}")
        converted.append(chunk)
    return converted


def string_chunks(captions: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> list[pa.Array]:
    """The captions as Arrow ``string``/``large_string`` arrays, nulls as empty strings."""
    return [nulls_as_empty(chunk) for chunk in typed_string_chunks(captions)]


def offsets_and_data(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Row offsets (int64, a new array starting at 0) and the data bytes of a string array
    (zero-copy)."""
    offset_type = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    _, offsets_buffer, data_buffer = chunk.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[chunk.offset : chunk.offset + len(chunk) + 1]
    offsets = offsets.astype(np.int64)  # a copy: shifted in place below
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    data = data[offsets[0] : offsets[-1]]
    offsets -= offsets[0]
    return offsets, data


def row_bounds(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and stop (int64, relative to the returned data) of every row's bytes, and the data
    bytes of a string array, zero-copy; a null row is empty (its stop is its start).

    Why bounds and not offsets: a null slot may hold bytes in Arrow, and blanking nulls in the
    array itself copies all the text."""
    offsets, data = offsets_and_data(chunk)
    # read-only whatever the buffer: one compiled specialisation of the kernel for every source
    # (decoded parquet buffers are writable, others not; each layout would load its own)
    data.flags.writeable = False
    starts, stops = offsets[:-1], offsets[1:]
    if chunk.null_count:
        stops = stops.copy()  # not a view: starts share the offsets
        validity = np.frombuffer(chunk.buffers()[0], dtype=np.uint8)
        valid = np.unpackbits(validity, bitorder="little")[chunk.offset : chunk.offset + len(chunk)]
        null = valid == 0
        stops[null] = starts[null]
    return starts, stops, data


def _token_bounds(offsets: np.ndarray, text: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) byte of every token; ``text[1 : size + 1]`` holds the mapped
    bytes (0 = separator) and ``text[0]``, ``text[size + 1]`` are separators.

    One ``diff`` finds every word/separator transition (they alternate start, end, ...). Rows
    are concatenated in the buffer, so a word ending a row and a word starting the next one
    would fuse: those row starts are split afterwards (callers that end every row with a
    separator have none).
    """
    is_word = (text[: size + 2] != 0).view(np.int8)
    transitions = np.flatnonzero(np.diff(is_word))
    starts, ends = transitions[0::2], transitions[1::2]
    inner = offsets[(offsets > 0) & (offsets < size)]
    fused = inner[(text[inner] != 0) & (text[inner + 1] != 0)]
    if len(fused):
        fused = fused[np.concatenate([[True], fused[1:] != fused[:-1]])]  # empty rows repeat offsets
        starts = np.insert(starts, np.searchsorted(starts, fused), fused)
        ends = np.insert(ends, np.searchsorted(ends, fused), fused)
    return starts, ends


def _byte_tokens(offsets: np.ndarray, data: np.ndarray, table: bytes, vocabulary: TokenVocabulary):
    """(row, position, word id) of the vocabulary tokens of the rows, and the size of the
    position range used. ``table`` maps each byte to itself (lower-cased) or to 0 for a
    separator. Positions are token index + row: adjacent words of a row differ by exactly 1,
    words of different rows by more."""
    size = len(data)
    padded = b"".join((b"\0", data.tobytes(), bytes(1 + vocabulary.n_words * _WORD_BYTES)))
    text = np.frombuffer(padded.translate(table), dtype=np.uint8)  # bytes.translate: ~5x np.take
    starts, ends = _token_bounds(offsets, text, size)
    rows = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(np.searchsorted(starts, offsets)))
    lengths = ends - starts
    if len(starts) == 0 or len(vocabulary.form_ids) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, len(starts)
    unaligned = np.ndarray(shape=(len(text) - _WORD_BYTES + 1,), dtype="<u8", buffer=text.data, strides=(1,))
    keys = unaligned[starts + 1] & _LOW_BYTES[np.minimum(lengths, _WORD_BYTES)]
    long = np.flatnonzero(lengths > _WORD_BYTES)
    long_words = _token_words(unaligned, starts[long] + 1, lengths[long], keys[long], vocabulary.n_words)
    keys[long] = _combine(long_words, lengths[long])
    found = pc.index_in(pa.array(keys, type=pa.uint64()), value_set=vocabulary.key_set)
    found = pc.fill_null(found, -1).to_numpy()
    hit = np.flatnonzero(found >= 0)
    form = found[hit].astype(np.int64)
    exact = lengths[hit] == vocabulary.lengths[form]
    # A short token's key is its bytes, so equal keys and lengths mean equal tokens; long keys
    # are hashes and are checked word by word.
    long_hit = np.flatnonzero(lengths[hit] > _WORD_BYTES)
    if len(long_hit):
        rows_in_long = np.searchsorted(long, hit[long_hit])
        same = np.all(long_words[rows_in_long] == vocabulary.packed[form[long_hit]], axis=1)
        exact[long_hit] &= same
    known = hit[exact]
    known_rows = rows[known]
    # token index + row: increasing, +1 between neighbours in a row, a gap between rows
    return known_rows, known + known_rows, vocabulary.form_ids[form[exact]], len(starts) + len(offsets)


def _token_words(unaligned: np.ndarray, starts: np.ndarray, lengths: np.ndarray, first: np.ndarray, n_words: int):
    """The bytes of each token packed little-endian into ``n_words`` uint64 words, zero-padded
    (``first``: the already gathered first words)."""
    words = np.zeros((len(starts), n_words), dtype=np.uint64)
    words[:, 0] = first
    for column in range(1, n_words):
        remaining = np.clip(lengths - column * _WORD_BYTES, 0, _WORD_BYTES)
        words[:, column] = unaligned[starts + column * _WORD_BYTES] & _LOW_BYTES[remaining]
    return words


# How a code point's entry in ``unicode_tables`` is used, beyond its mapped code point:
MAPPED = 0  # the mapped code point is all of it
NEEDS_NORMALIZE_TEXT = 1  # lower-cased by context (``Σ``) or beyond the mapping: ``normalize_text`` itself
MAPPED_THEN_SEPARATOR = 2  # lower-cases to an alphanumeric and a mark (``İ`` -> ``i`` + U+0307): a token ends after it


@functools.lru_cache(maxsize=1)
def unicode_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per code point below ``_UNICODE_LIMIT``: Python's lower-case of it, or a space where that
    is not alphanumeric (what ``normalize_text`` makes of it); and its kind (``MAPPED``, or
    ``NEEDS_NORMALIZE_TEXT`` where Python lower-cases it by context, as ``Σ`` becomes ``ς`` at the
    end of a word, or ``MAPPED_THEN_SEPARATOR`` where it lower-cases to an alphanumeric followed
    by non-alphanumerics, as ``İ`` becomes ``i`` + U+0307, i.e. ``i`` and a word break). Built
    from Python's own ``str.lower`` and ``str.isalnum`` (what ``re``'s ``\\w`` means), so the
    tables cannot drift from it; ~0.1 s, once per process, only when a batch has non-ASCII
    captions."""
    mapped = np.full(_UNICODE_LIMIT, ord(" "), dtype=np.uint32)
    kind = np.full(_UNICODE_LIMIT, MAPPED, dtype=np.uint8)
    for code_point in range(_UNICODE_LIMIT):
        lowered = chr(code_point).lower()
        if len(lowered) == 1:
            if lowered.isalnum():
                mapped[code_point] = ord(lowered)
        elif lowered[0].isalnum() and not any(character.isalnum() for character in lowered[1:]):
            mapped[code_point] = ord(lowered[0])
            kind[code_point] = MAPPED_THEN_SEPARATOR
        else:
            kind[code_point] = NEEDS_NORMALIZE_TEXT
    kind[0x03A3] = NEEDS_NORMALIZE_TEXT  # GREEK CAPITAL LETTER SIGMA: final-sigma rule
    return mapped, kind


def _normalized_unicode(chunk: pa.Array, rows: np.ndarray):
    """Normalised UTF-8 ``(offsets, data)`` of non-ASCII rows, vectorised over code points, and
    the positions (in ``rows``) of the rows left blank for ``normalize_text`` itself (exotic code
    points); ``None`` when the bytes are not valid UTF-8. Separator runs are not collapsed: the
    tokeniser does not need it."""
    offsets, data = offsets_and_data(chunk.take(pa.array(rows)))
    try:
        text = data.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        return None
    code_points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    chars_before = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum((data & 0xC0) != 0x80, out=chars_before[1:])
    char_offsets = chars_before[offsets]
    table, kind = unicode_tables()
    inside = code_points < _UNICODE_LIMIT
    clipped = np.where(inside, code_points, 0)
    mapped = table[clipped]
    # this path maps one code point to one: İ's word break and Σ's context go to normalize_text
    exotic = np.flatnonzero(~inside | (kind[clipped] != MAPPED))
    slow = np.unique(np.searchsorted(char_offsets, exotic, side="right") - 1)
    for row in slow.tolist():
        mapped[char_offsets[row] : char_offsets[row + 1]] = ord(" ")
    utf8 = np.frombuffer(mapped.tobytes().decode("utf-32-le").encode("utf-8"), dtype=np.uint8)
    byte_lengths = 1 + (mapped >= 0x80).astype(np.int64) + (mapped >= 0x800) + (mapped >= 0x10000)
    bytes_before = np.zeros(len(mapped) + 1, dtype=np.int64)
    np.cumsum(byte_lengths, out=bytes_before[1:])
    return bytes_before[char_offsets], utf8, slow


def normalized_rows(chunk: pa.Array, rows: np.ndarray) -> pa.Array:
    """``normalize_text`` of the given rows (invalid UTF-8 is replaced, U+FFFD separates)."""
    raw = chunk.take(primitive_array(rows)).cast(pa.large_binary()).to_pylist()
    return string_array([normalize_text(payload.decode("utf-8", errors="replace")) for payload in raw])


def _row_ranges(offsets: np.ndarray) -> list[tuple[int, int]]:
    """Split rows into pieces of at most ~16 MB of text (a single longer caption is one piece)."""
    n_rows = len(offsets) - 1
    ranges = []
    start = 0
    while start < n_rows:
        stop = int(np.searchsorted(offsets, offsets[start] + _MAX_CHUNK_BYTES, side="right")) - 1
        stop = min(max(stop, start + 1), n_rows)
        ranges.append((start, stop))
        start = stop
    return ranges


def tokenize(captions: pa.Array | pa.ChunkedArray | Sequence[str | None], vocabulary: TokenVocabulary) -> Tokens:
    """Vocabulary tokens of every caption (null/empty captions have none); rows are batch rows.

    Pure-ASCII rows are tokenised from the raw bytes; the other rows are normalised first
    (vectorised over code points with tables built from Python's own case mapping; rows with
    exotic code points by ``normalize_text`` itself) and tokenised from the normalised UTF-8.
    """
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    row_base = 0
    ordinal_base = 0
    for chunk in string_chunks(captions):
        # a space after every caption: words of neighbouring captions can then never fuse
        spaced = pc.binary_join_element_wise(chunk, pa.scalar(" ", chunk.type), pa.scalar("", chunk.type))
        offsets, data = offsets_and_data(spaced)
        is_ascii = pc.string_is_ascii(chunk).to_numpy(zero_copy_only=False)
        for start, stop in _row_ranges(offsets):
            piece_offsets = offsets[start : stop + 1] - offsets[start]
            piece_data = data[offsets[start] : offsets[stop]]
            piece_ascii = is_ascii[start:stop]
            other = np.flatnonzero(~piece_ascii)
            rows, positions, ids, n_tokens = _byte_tokens(piece_offsets, piece_data, _ASCII_TABLE, vocabulary)
            if len(other):  # their non-ASCII bytes were separators: drop those rows' tokens here
                keep = piece_ascii[rows]
                rows, positions, ids = rows[keep], positions[keep], ids[keep]
            parts.append((rows + row_base + start, positions + ordinal_base, ids))
            ordinal_base += n_tokens
            if len(other):
                other = other + start
                unicode = _normalized_unicode(chunk, other)
                slow = np.arange(len(other)) if unicode is None else unicode[2]
                if unicode is not None:
                    rows, positions, ids, n_tokens = _byte_tokens(unicode[0], unicode[1], _NORMALIZED_TABLE, vocabulary)
                    parts.append((other[rows] + row_base, positions + ordinal_base, ids))
                    ordinal_base += n_tokens
                if len(slow):
                    normalized = offsets_and_data(normalized_rows(chunk, other[slow]))
                    rows, positions, ids, n_tokens = _byte_tokens(*normalized, _NORMALIZED_TABLE, vocabulary)
                    parts.append((other[slow][rows] + row_base, positions + ordinal_base, ids))
                    ordinal_base += n_tokens
        row_base += len(chunk)
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Tokens(empty, empty, empty)
    return Tokens(*(np.concatenate([part[i] for part in parts]) for i in range(3)))
