"""Count concept mentions in a batch of captions: the text-matching core of the frequency engine.

Why it is shaped this way: corpora have billions of captions, so nothing here loops over
captions or tokens in Python. Lemmatisation moves off the captions and onto the concepts: each
concept word accepts a few *keys*, each key stands for a set of caption tokens
(``letitwag.frequency.text.forms``: with the default noun forms a key is one token, ``dog`` or
``dogs``; with ``--forms lookup`` it is a lemma and stands for all its lookup forms), and those
tokens are the only vocabulary the matcher cares about. A batch is tokenised once
(``letitwag.frequency.text.tokens``: vectorised, exactly ``normalize_text`` then split on
spaces), each vocabulary token becomes the id of its key, and the concepts are found with numpy
over those ids:

* ``phrase`` (default): a concept is a sequence of keys, matched contiguously, in order,
  token-bounded; its last word is inflected ("golden retrievers"), the others are kept as
  written. Walking a trie of key sequences one token position at a time keeps every step a
  vectorised lookup over the positions still alive. A caption saying "hot dog" counts for
  ``hot dog`` and ``dog``; with ``longest_match`` a match lying inside a longer match (of any
  concept) is dropped. Occurrences count non-overlapping matches per concept, greedily from the
  left; documents count each caption once per concept.
* ``bag``: a concept is the *set* of its words, each inflected; a caption counts when it holds
  a form of every word anywhere. Occurrences equal documents in this mode, as in the paper's
  inverted index (it stores captions, not positions). (The paper's exact counting, with a
  tagger, is ``--mode paper``: ``letitwag.frequency.text.paper``.)

Aliases (``Concept.surface_forms()``) are extra patterns for the same concept.

Two implementations of ``phrase`` mode, with identical results: ``count`` runs the compiled
one-pass kernel (``letitwag.frequency.text.kernel``, numba: tokenise, look up, walk the trie
and count while each caption is in cache; several times faster than the numpy path), and the numpy path
above (``_vectorised_window``) stays as its independent cross-check in the tests. ``bag`` mode
uses the numpy path.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from letitwag.arrow_buffers import string_array
from letitwag.concepts import Concept, ConceptList
from letitwag.frequency.text.forms import LemmaTable, WordForms, english_noun_forms
from letitwag.frequency.text.tokens import (
    Tokens,
    TokenVocabulary,
    normalized_rows,
    row_bounds,
    tokenize,
    typed_string_chunks,
    unicode_tables,
)

MODES = ("phrase", "bag")
MAX_BATCH_ROWS = 131_072


@dataclass
class BatchCounts:
    """Counts for one batch of captions, in concept-list order.

    ``hit_rows``/``hit_concepts`` list every (caption row, concept) document hit, sorted by
    (row, concept): the postings of the batch.
    """

    documents: np.ndarray
    occurrences: np.ndarray
    hit_rows: np.ndarray
    hit_concepts: np.ndarray


@dataclass(frozen=True)
class _Patterns:
    """``phrase`` patterns as key-id sequences (the trie calls the keys lemmas: with ``--forms
    lookup`` they are), several per concept: one per surface form and per accepted key of an
    inflected word."""

    concept: np.ndarray  # int32 [n_patterns]
    lemma_ids: list[tuple[int, ...]]

    @classmethod
    def spelled_out(cls, concepts: list[int], pattern_words: list[list[tuple[int, ...]]]) -> "_Patterns":
        """Every sequence a pattern's words allow (the product of their keys; only the last word
        of a ``phrase`` pattern has more than one, so this stays small)."""
        sequences, owners = [], []
        for concept, words in zip(concepts, pattern_words):
            for sequence in itertools.product(*words):
                sequences.append(sequence)
                owners.append(concept)
        return cls(np.array(owners, dtype=np.int32), sequences)


def concept_word_forms(concept: Concept, mode: str, forms: WordForms, use_aliases: bool = True
                       ) -> list[list[tuple[str, tuple[str, ...]]]]:
    """What a concept is searched for: per surface form (name, then aliases unless
    ``use_aliases`` is false), each word with the keys it accepts. ``phrase`` inflects the last
    word only ("golden retrievers", not "goldens retriever"); ``bag`` every word."""
    surface = concept.surface_forms()
    if not use_aliases:
        surface = surface[:1]
    patterns = []
    for text in surface:
        words = text.split(" ")
        patterns.append([(word, forms.alternatives(word, inflect=mode == "bag" or position == len(words) - 1))
                         for position, word in enumerate(words)])
    return patterns


def caption_forms(concept: Concept, mode: str, forms: WordForms, use_aliases: bool = True
                  ) -> list[list[tuple[str, tuple[str, ...]]]]:
    """What ``letitwag frequency show --forms`` prints: per surface form, each word with the
    caption tokens (normalised) that count for it."""
    return [[(word, tuple(sorted({token for key in keys for token in forms.surface_forms(key)}))) for word, keys in words]
            for words in concept_word_forms(concept, mode, forms, use_aliases)]


def _concept_list_hash(concepts: ConceptList) -> str:
    digest = hashlib.sha256()
    for concept in concepts:
        digest.update(json.dumps([concept.id, concept.surface_forms()], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


class _LemmaTrie:
    """A trie over lemma-id sequences with vectorised transitions.

    The root's edges are a dense array indexed by lemma; deeper edges are 64-bit keys
    ``state * n_lemmas + lemma`` (a numpy array: building the trie must not wake pyarrow's pandas
    probe, see ``letitwag.arrow_buffers``), so a whole array of (state, lemma) pairs steps with
    one Arrow ``index_in``. Terminal states list their concepts in CSR form (several
    concepts may share one lemma sequence, e.g. ``glass`` and ``glasses``).
    """

    def __init__(self, patterns: _Patterns, n_lemmas: int) -> None:
        self.n_lemmas = max(n_lemmas, 1)
        children: dict[tuple[int, int], int] = {}
        terminal: dict[int, set[int]] = {}
        depth = [0]
        for concept, sequence in zip(patterns.concept.tolist(), patterns.lemma_ids):
            state = 0
            for lemma in sequence:
                key = (state, lemma)
                if key not in children:
                    children[key] = len(depth)
                    depth.append(depth[state] + 1)
                state = children[key]
            terminal.setdefault(state, set()).add(concept)
        self.max_depth = max(depth)
        self.root = np.full(self.n_lemmas + 1, -1, dtype=np.int64)  # last slot: lemma -1
        deeper = {key: target for key, target in children.items() if key[0] != 0}
        for (state, lemma), target in children.items():
            if state == 0:
                self.root[lemma] = target
        self.keys = np.array([s * self.n_lemmas + l for (s, l) in deeper], dtype=np.int64)
        self.targets = np.array(list(deeper.values()) + [-1], dtype=np.int64)  # last: not found
        self.has_children = np.zeros(len(depth), dtype=bool)
        self.has_children[[state for state, _ in deeper] + [state for state, _ in children]] = True
        concept_lists = [sorted(terminal.get(state, ())) for state in range(len(depth))]
        counts = np.array([len(listed) for listed in concept_lists], dtype=np.int64)
        self.terminal_count = counts
        self.terminal_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.terminal_concepts = np.array([c for listed in concept_lists for c in listed], dtype=np.int32)

    def step(self, states: np.ndarray, lemmas: np.ndarray) -> np.ndarray:
        """Next state for each (state > 0, lemma) pair; -1 where the trie has no such edge."""
        found = pc.index_in(pa.array(states * self.n_lemmas + lemmas), value_set=pa.array(self.keys))
        found = pc.fill_null(found, -1).to_numpy()
        return np.where(lemmas >= 0, self.targets[found], -1)


def _self_overlapping_concepts(patterns: _Patterns, n_concepts: int) -> np.ndarray:
    """Per concept, whether two of its matches may share a token (``_may_overlap_itself``)."""
    by_concept: dict[int, list[tuple[int, ...]]] = {}
    for concept, sequence in zip(patterns.concept.tolist(), patterns.lemma_ids):
        by_concept.setdefault(concept, []).append(sequence)
    overlapping = np.zeros(n_concepts, dtype=bool)
    for concept, sequences in by_concept.items():
        overlapping[concept] = _may_overlap_itself(sequences)
    return overlapping


def _may_overlap_itself(sequences: list[tuple[int, ...]]) -> bool:
    """Whether two matches of these patterns (one concept's surface forms) can share a token:
    one pattern inside another, or a proper suffix of one equal to a prefix of another."""
    for first in sequences:
        for second in sequences:
            if first is not second and any(
                first[i : i + len(second)] == second for i in range(len(first) - len(second) + 1)
            ):
                return True
            for size in range(1, min(len(first), len(second))):
                if first[-size:] == second[:size]:
                    return True
    return False


class TextMatcher:
    """Counts concept mentions in batches of captions; build once per worker, call ``count``.

    Construction for the 4,000+ bundled concepts takes ~0.3 s; the object pickles small
    (~700 kB: numpy/Arrow arrays and the surface-form dict), so executors may ship it or rebuild
    it. What only counting needs (the compiled kernel's tables, numba itself, the numpy path's
    vocabulary) is built on first use in the process that counts, never pickled.
    """

    def __init__(
        self,
        concepts: ConceptList,
        mode: str = "phrase",
        longest_match: bool = False,
        use_aliases: bool = True,
        forms: WordForms | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown matching mode {mode!r}; use one of {', '.join(MODES)}")
        self.mode = mode
        self.longest_match = longest_match
        self.use_aliases = use_aliases
        self.n_concepts = len(concepts)
        forms = forms or english_noun_forms()
        self._forms = forms.parameters
        self._concept_hash = _concept_list_hash(concepts)
        keys: dict[str, int] = {}
        pattern_concepts: list[int] = []
        pattern_words: list[list[tuple[int, ...]]] = []  # per pattern, per word: the keys it accepts
        for concept_index, concept in enumerate(concepts):
            for words in concept_word_forms(concept, mode, forms, use_aliases):
                pattern_concepts.append(concept_index)
                pattern_words.append([tuple(keys.setdefault(key, len(keys)) for key in accepted)
                                      for _, accepted in words])
        surface: dict[str, int] = {}
        for key, index in keys.items():
            for token in forms.surface_forms(key):
                surface[token] = index
        self._surface = surface
        self._token_vocabulary: TokenVocabulary | None = None
        self._compiled_tables: _CompiledPhraseTables | None = None
        if mode == "phrase":
            patterns = _Patterns.spelled_out(pattern_concepts, pattern_words)
            self._may_overlap = _self_overlapping_concepts(patterns, self.n_concepts)
            self._trie = _LemmaTrie(patterns, len(keys))
        else:
            self._bag = _BagRequirements(pattern_concepts, pattern_words, len(keys))

    @property
    def _vocabulary(self) -> TokenVocabulary:
        """The vectorised tokeniser's vocabulary, built on first use: ``phrase`` mode counts with
        the compiled kernel and needs it only as a cross-check, so workers skip its ~0.3 s build."""
        if self._token_vocabulary is None:
            self._token_vocabulary = TokenVocabulary(self._surface)
        return self._token_vocabulary

    @property
    def _compiled(self) -> _CompiledPhraseTables:
        """The compiled kernel's tables, built on first use where the counting happens: the
        driver that only plans and ships the matcher never imports numba."""
        if self._compiled_tables is None:
            self._compiled_tables = _CompiledPhraseTables(self._surface, self._trie, self.longest_match)
        return self._compiled_tables

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_token_vocabulary": None, "_compiled_tables": None}

    @property
    def parameters(self) -> dict:
        """What determines the counts; JSON-able, for provenance and shard fingerprints."""
        return {
            "mode": self.mode,
            "longest_match": self.longest_match,
            "use_aliases": self.use_aliases,
            **self._forms,
            "n_concepts": self.n_concepts,
            "concept_list_sha256": self._concept_hash,
        }

    def count(self, captions: pa.Array | pa.ChunkedArray | Sequence[str | None], with_hits: bool = True
              ) -> BatchCounts:
        """Count one batch. Null and empty captions count nothing; rows are batch positions.

        Batches longer than ``MAX_BATCH_ROWS`` are counted in windows of that many rows, so the
        working memory (~100 bytes per caption) stays bounded whatever the caller passes.
        ``with_hits=False``: only the counts are wanted (no postings), so ``phrase`` mode skips
        gathering the per-row hits and returns them empty.
        """
        if not isinstance(captions, (pa.Array, pa.ChunkedArray)):
            captions = pa.array(list(captions), type=pa.string())
        if len(captions) <= MAX_BATCH_ROWS:
            return self._count_window(captions, with_hits)
        windows = []
        for start in range(0, len(captions), MAX_BATCH_ROWS):
            counts = self._count_window(captions.slice(start, MAX_BATCH_ROWS), with_hits)
            windows.append((start, counts))
        return BatchCounts(
            np.sum([counts.documents for _, counts in windows], axis=0),
            np.sum([counts.occurrences for _, counts in windows], axis=0),
            np.concatenate([counts.hit_rows + start for start, counts in windows]),
            np.concatenate([counts.hit_concepts for _, counts in windows]),
        )

    def _count_window(self, captions: pa.Array | pa.ChunkedArray, with_hits: bool) -> BatchCounts:
        if self.mode == "phrase":
            return self._compiled_phrase_window(captions, with_hits)
        return self._vectorised_window(captions)

    def _compiled_phrase_window(self, captions: pa.Array | pa.ChunkedArray, with_hits: bool = True) -> BatchCounts:
        """The compiled one-pass kernel in three tiers: all rows, ASCII only (no tables to load);
        the rows with non-ASCII bytes, with the per-code-point tables; the few rows those cannot
        settle (``Σ``, invalid UTF-8, ...) as ``normalize_text`` output. Hits are merged by row."""
        documents = np.zeros(self.n_concepts, dtype=np.int64)
        occurrences = np.zeros(self.n_concepts, dtype=np.int64)
        hits = _RowHits() if with_hits else _NoHits()
        row_base = 0
        count = functools.partial(self._compiled.count, documents=documents, occurrences=occurrences,
                                  with_hits=with_hits)
        for chunk in typed_string_chunks(captions):
            starts, stops, data = row_bounds(chunk)
            rows, concepts, fallback = count(starts, stops, data, tier="ascii")
            hits.add(rows + row_base, concepts)
            if len(fallback):
                rows, concepts, still = count(starts[fallback], stops[fallback], data, tier="unicode")
                hits.add(fallback[rows] + row_base, concepts)
                if len(still):
                    normalized = normalized_rows(chunk, fallback[still])
                    rows, concepts, _ = count(*row_bounds(normalized), tier="normalized")
                    hits.add(fallback[still[rows]] + row_base, concepts)
            row_base += len(chunk)
        return BatchCounts(documents, occurrences, *hits.merged())

    def _vectorised_window(self, captions: pa.Array | pa.ChunkedArray) -> BatchCounts:
        """The numpy path: ``bag`` mode, and ``phrase`` mode's independent cross-check."""
        tokens = tokenize(captions, self._vocabulary)
        if self.mode == "phrase":
            rows, concepts, starts, ends = self._phrase_matches(tokens)
            return self._phrase_counts(rows, concepts, starts, ends)
        rows, concepts = self._bag.hits(tokens.rows, tokens.word_ids, max(self.n_concepts, 1))
        documents = np.bincount(concepts, minlength=self.n_concepts).astype(np.int64)
        return BatchCounts(documents, documents.copy(), rows, concepts)

    # --- phrase mode ---------------------------------------------------------------------

    def _phrase_matches(self, tokens: Tokens):
        """All (row, concept, start, end) matches in token ordinals, overlapping ones included.

        Walks the lemma trie from every vocabulary token at once: at step ``offset`` each live
        start looks at the vocabulary token ``offset`` entries later, which continues the
        phrase only if it is the very next token of the same caption (its position is exactly
        ``offset`` higher; positions jump between captions).
        """
        trie = self._trie
        rows, ordinals, lemmas = tokens.rows, tokens.positions, tokens.word_ids
        n_tokens = len(lemmas)
        states = trie.root[lemmas]
        starts = np.flatnonzero(states >= 0)
        states = states[starts]
        found_starts, found_concepts, found_lengths = [], [], []
        for offset in range(1, trie.max_depth + 1):
            counts = trie.terminal_count[states]
            ending = np.flatnonzero(counts)
            if len(ending):
                ending_states = states[ending]
                single = counts[ending] == 1  # the usual case: one concept per lemma sequence
                found_starts.append(starts[ending[single]])
                found_concepts.append(trie.terminal_concepts[trie.terminal_ptr[ending_states[single]]])
                if not single.all():
                    shared = ending[~single]
                    repeat = counts[shared]
                    first = np.repeat(trie.terminal_ptr[states[shared]], repeat)
                    within = np.arange(len(first)) - np.repeat(np.cumsum(repeat) - repeat, repeat)
                    found_starts.append(np.repeat(starts[shared], repeat))
                    found_concepts.append(trie.terminal_concepts[first + within])
                found_lengths.append(np.full(sum(map(len, found_starts)) - sum(map(len, found_lengths)), offset))
            live = trie.has_children[states] & (starts + offset < n_tokens)
            starts, states = starts[live], states[live]
            if len(starts) == 0:
                break
            following = starts + offset
            adjacent = ordinals[following] == ordinals[starts] + offset
            states = trie.step(states, np.where(adjacent, lemmas[following], -1))
            alive = states >= 0
            starts, states = starts[alive], states[alive]
        if not found_starts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.astype(np.int32), empty, empty
        match_starts = np.concatenate(found_starts)
        lengths = np.concatenate(found_lengths)
        first_ordinals = ordinals[match_starts]
        return rows[match_starts], np.concatenate(found_concepts), first_ordinals, first_ordinals + lengths

    def _phrase_counts(self, rows, concepts, starts, ends) -> BatchCounts:
        if self.longest_match and len(starts):
            keep = ~_contained_in_longer(starts, ends)
            rows, concepts, starts, ends = rows[keep], concepts[keep], starts[keep], ends[keep]
        hits = _sorted_unique(rows * self.n_concepts + concepts)
        hit_rows = hits // max(self.n_concepts, 1)
        hit_concepts = (hits - hit_rows * self.n_concepts).astype(np.int32)
        documents = np.bincount(hit_concepts, minlength=self.n_concepts).astype(np.int64)
        occurrences = np.bincount(concepts, minlength=self.n_concepts).astype(np.int64)
        risky = np.flatnonzero(self._may_overlap[concepts])
        if len(risky):
            rows, concepts, starts, ends = rows[risky], concepts[risky], starts[risky], ends[risky]
            order = np.lexsort((-ends, starts, concepts, rows))
            counted = _greedy_non_overlapping(rows[order], concepts[order], starts[order], ends[order])
            occurrences -= np.bincount(concepts[order][~counted], minlength=self.n_concepts)
        return BatchCounts(documents, occurrences, hit_rows.astype(np.int64), hit_concepts)


class _CompiledPhraseTables:
    """The phrase matcher as flat arrays for ``phrase_kernel.count_phrases``: the surface forms
    (UTF-8 bytes, CSR) with their lemma ids and an open-addressing hash table over them, and the
    lemma trie: a dense root, and its deeper edges in an open-addressing table.

    ``kernel`` (numba) is imported on first use, so importing ``matcher`` stays light.
    """

    def __init__(self, surface: dict[str, int], trie: _LemmaTrie, longest_match: bool) -> None:
        from letitwag.frequency.text import kernel as phrase_kernel

        self.longest_match = longest_match

        encoded = [form.encode("utf-8") for form in surface if form]
        self.form_offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(text) for text in encoded], out=self.form_offsets[1:])
        self.form_bytes = np.frombuffer(b"".join(encoded) or b"\0", dtype=np.uint8).copy()
        self.form_lemma = np.array([surface[form] for form in surface if form], dtype=np.int32)
        bits = max(4, (2 * len(encoded)).bit_length())  # at most half full
        self.table = phrase_kernel.build_form_table(self.form_offsets, self.form_bytes, self.form_lemma, bits)
        self.root = trie.root[:-1].astype(np.int32)
        self.has_children = trie.has_children.copy()
        self.n_lemmas = trie.n_lemmas
        keys = trie.keys
        self.edges = phrase_kernel.build_edge_table(keys // trie.n_lemmas, keys % trie.n_lemmas,
                                                    trie.targets[:-1].astype(np.int64), trie.n_lemmas,
                                                    max(4, (2 * len(keys)).bit_length()))
        self.terminal_ptr = trie.terminal_ptr.astype(np.int64)
        self.terminal_concepts = trie.terminal_concepts.astype(np.int32)

    def count(self, starts: np.ndarray, stops: np.ndarray, data: np.ndarray, documents: np.ndarray,
              occurrences: np.ndarray, tier: str, with_hits: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Counts the rows ``data[starts[i]:stops[i]]`` it settles into ``documents``/``occurrences``; returns
        their hits (rows, concepts; empty unless ``with_hits``) and the rows left over. ``tier``:
        ``ascii`` leaves every row with a non-ASCII byte, ``unicode`` the rows needing
        ``normalize_text`` itself, and ``normalized`` (rows that are ``normalize_text`` output) none."""
        from letitwag.frequency.text import kernel as phrase_kernel

        unicode_map, unicode_special = unicode_tables() if tier == "unicode" else _NO_UNICODE_TABLES
        classes = phrase_kernel.NORMALIZED_CLASSES if tier == "normalized" else phrase_kernel.RAW_CLASSES
        n_rows = len(starts)
        fallback = np.empty(n_rows, dtype=np.int64)
        n_fallback = 0
        rows: list[np.ndarray] = []
        concepts: list[np.ndarray] = []
        next_row = 0
        while next_row < n_rows or not rows:
            capacity = _HITS_PER_ROW * (n_rows - next_row) + len(documents) if with_hits else 0
            hit_rows = np.empty(capacity, dtype=np.int64)
            hit_concepts = np.empty(capacity, dtype=np.int32)
            n_hits, n_more, next_row = phrase_kernel.count_phrases(
                starts, stops, data, next_row, classes, unicode_map,
                unicode_special, self.table, self.form_offsets, self.form_bytes, self.root, self.has_children,
                self.edges, self.n_lemmas, self.terminal_ptr, self.terminal_concepts, self.longest_match, documents,
                occurrences, with_hits, hit_rows, hit_concepts, fallback[n_fallback:])
            n_fallback += n_more
            rows.append(hit_rows[:n_hits])
            concepts.append(hit_concepts[:n_hits])
        if len(rows) > 1:
            return np.concatenate(rows), np.concatenate(concepts), fallback[:n_fallback]
        if not with_hits:
            return rows[0], concepts[0], fallback[:n_fallback]
        return rows[0].copy(), concepts[0].copy(), fallback[:n_fallback]


def warm_up_phrase_kernel() -> None:
    """Load the compiled phrase kernel into this process (numba, from its on-disk cache).

    Why: numba's first call in a process costs ~0.7 s, so a process that forks counting workers
    (the local executor's fork server) calls this once and every worker starts warm. The
    captions take the kernel's three tiers (ASCII, Unicode tables, ``normalize_text`` output),
    so each compiled specialisation the counting uses is loaded.
    """
    forms = LemmaTable({"dogs": "dog"}, name="warm-up")  # not the English tables: their load costs ~0.1-0.5 s
    matcher = TextMatcher(ConceptList([Concept("dog")], name="warm-up"), forms=forms)
    matcher.count(string_array(["a dog", "café dogs", "ΣΟΦΙΑ dog"]))


# Hit buffer per row for one kernel call (a call stops early and is resumed if rows have more)
_HITS_PER_ROW = 8
_NO_UNICODE_TABLES = (np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.uint8))


class _RowHits:
    """(row, concept) hits gathered from disjoint sets of rows, each part sorted by (row, concept);
    merged by inserting the later parts at their row positions (linear, no sort of the whole)."""

    def __init__(self) -> None:
        self.rows = np.zeros(0, dtype=np.int64)
        self.concepts = np.zeros(0, dtype=np.int32)

    def add(self, rows: np.ndarray, concepts: np.ndarray) -> None:
        if len(rows) == 0:
            return
        if len(self.rows) == 0:
            self.rows, self.concepts = rows.astype(np.int64), concepts.astype(np.int32)
            return
        at = np.searchsorted(self.rows, rows)
        self.rows = np.insert(self.rows, at, rows.astype(np.int64))
        self.concepts = np.insert(self.concepts, at, concepts.astype(np.int32))

    def merged(self) -> tuple[np.ndarray, np.ndarray]:
        return self.rows, self.concepts


class _NoHits(_RowHits):
    """Drops the hits: counting without postings has no use for them."""

    def add(self, rows: np.ndarray, concepts: np.ndarray) -> None:
        pass


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Distinct values, sorted (a sort and a mask: faster here than numpy's hash-based unique)."""
    keys = np.sort(keys)
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return keys[first]


def _contained_in_longer(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each token span, whether a strictly longer span of the batch contains it.

    Spans are global token ordinals, so spans of different captions never contain each other.
    On the distinct spans sorted by (start, -end), a span is contained exactly when an earlier
    one reaches at least as far (earlier means an earlier start, or the same start and a later
    end: both strictly longer).
    """
    lengths = ends - starts
    span_room = int(lengths.max()) + 1
    keys = starts * span_room + (span_room - 1 - lengths)
    unique, inverse = np.unique(keys, return_inverse=True)
    unique_starts = unique // span_room
    unique_ends = unique_starts + (span_room - 1 - (unique - unique_starts * span_room))
    contained = np.zeros(len(unique), dtype=bool)
    contained[1:] = np.maximum.accumulate(unique_ends)[:-1] >= unique_ends[1:]
    return contained[inverse.reshape(-1)]


def _greedy_non_overlapping(rows, concepts, starts, ends) -> np.ndarray:
    """Which matches count as occurrences: per (row, concept), greedily from the left, a match
    counts unless it overlaps the last counted one. Input sorted by (row, concept, start, -end).

    Overlaps of one concept with itself are rare (``bora bora`` in "bora bora bora", or an alias
    inside the name), so the common case is decided vectorised and only groups containing an
    overlap are resolved by a short loop.
    """
    counted = np.ones(len(rows), dtype=bool)
    if len(rows) < 2:
        return counted
    same_group = (rows[1:] == rows[:-1]) & (concepts[1:] == concepts[:-1])
    overlaps = same_group & (starts[1:] < ends[:-1])
    if not overlaps.any():
        return counted
    group_start = np.flatnonzero(np.concatenate([[True], ~same_group]))
    group_end = np.concatenate([group_start[1:], [len(rows)]])
    overlapping_groups = np.unique(np.searchsorted(group_start, np.flatnonzero(overlaps) + 1, side="right") - 1)
    for group in overlapping_groups.tolist():
        last_end = -1
        for index in range(group_start[group], group_end[group]):
            if starts[index] >= last_end:
                last_end = ends[index]
            else:
                counted[index] = False
    return counted


class _BagRequirements:
    """Bag matching: a pattern hits a caption holding, for every word of the pattern, one of the
    keys the word accepts (its noun forms, or its lemma with ``--forms lookup``).

    Each distinct set of accepted keys is a *slot*. Caption x key presence (sparse) times key x
    slot membership says which slots a caption fills; times slot x pattern membership, how many
    of a pattern's distinct slots are filled; a hit is a full count.
    """

    def __init__(self, concepts: list[int], pattern_words: list[list[tuple[int, ...]]], n_lemmas: int) -> None:
        from scipy import sparse

        slot_index: dict[tuple[int, ...], int] = {}
        pattern_slots = [sorted({slot_index.setdefault(tuple(sorted(set(keys))), len(slot_index)) for keys in words})
                         for words in pattern_words]
        self.pattern_concept = np.array(concepts, dtype=np.int32)
        self.required = np.array([len(slots) for slots in pattern_slots], dtype=np.int64)
        self.n_lemmas = max(n_lemmas, 1)
        n_slots = max(len(slot_index), 1)
        key_rows = [key for keys in slot_index for key in keys]
        slot_columns = [slot for keys, slot in slot_index.items() for _ in keys]
        self.slots = sparse.csr_matrix((np.ones(len(key_rows), dtype=np.int32), (key_rows, slot_columns)),
                                       shape=(self.n_lemmas, n_slots))
        indptr = np.concatenate([[0], np.cumsum(self.required)])
        indices = np.array([slot for slots in pattern_slots for slot in slots], dtype=np.int64)
        self.membership = sparse.csr_matrix(
            (np.ones(len(indices), dtype=np.int32), indices, indptr), shape=(len(pattern_slots), n_slots)
        ).T.tocsr()

    def hits(self, rows: np.ndarray, lemmas: np.ndarray, n_concepts: int) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (row, concept) hits sorted by row then concept."""
        from scipy import sparse

        pairs = _sorted_unique(rows * self.n_lemmas + lemmas)  # distinct (row, lemma)
        if len(pairs) == 0 or len(self.required) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
        pair_rows = pairs // self.n_lemmas
        new_row = np.ones(len(pair_rows), dtype=bool)
        new_row[1:] = pair_rows[1:] != pair_rows[:-1]
        caption_rows = pair_rows[new_row]
        row_index = np.cumsum(new_row) - 1
        presence = sparse.csr_matrix(
            (np.ones(len(pairs), dtype=np.int32), (row_index.reshape(-1), pairs - pair_rows * self.n_lemmas)),
            shape=(len(caption_rows), self.n_lemmas),
        )
        filled = (presence @ self.slots).tocsr()
        filled.data[:] = 1  # a slot is filled once, however many of its keys the caption holds
        overlap = (filled @ self.membership).tocoo()
        full = overlap.data == self.required[overlap.col]
        keys = _sorted_unique(caption_rows[overlap.row[full]] * n_concepts + self.pattern_concept[overlap.col[full]])
        hit_rows = keys // n_concepts
        return hit_rows, (keys - hit_rows * n_concepts).astype(np.int32)
