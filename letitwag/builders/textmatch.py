"""Count concept mentions in a batch of captions: the text-matching core of the frequency engine.

Why it is shaped this way: corpora have billions of captions, so nothing here loops over
captions or tokens in Python. Lemmatisation moves off the captions and onto the concepts: every
concept word is replaced by its lemma, and the vocabulary of *all surface forms* of those lemmas
(``dog`` -> ``dog``, ``dogs``, ...) is the only set of tokens the matcher cares about. A batch is
tokenised once (``letitwag.builders.caption_tokens``: vectorised, exactly ``normalize_text`` then split
on spaces), each token is mapped to the lemma of its surface form (or -1), and the concepts are
found with numpy over those lemma ids:

* ``phrase`` (default): a concept is its sequence of lemmas, matched contiguously, in order,
  token-bounded. Walking a trie of lemma sequences one token position at a time keeps every step
  a vectorised lookup over the positions still alive. A caption saying "hot dog" counts for
  ``hot dog`` and ``dog``; with ``longest_match`` a match lying inside a longer match (of any
  concept) is dropped. Occurrences count non-overlapping matches per concept, greedily from the
  left; documents count each caption once per concept.
* ``bag`` (the paper's semantics): a concept is the *set* of its words' lemmas; a caption counts
  when it contains all of them anywhere. Occurrences equal documents in this mode, as in the
  paper's inverted index (it stores captions, not positions).

Aliases (``Concept.surface_forms()``) are extra patterns for the same concept.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa

from letitwag.builders.lemmas import LemmaTable, english_lemmas
from letitwag.builders.caption_tokens import Tokens, TokenVocabulary, tokenize
from letitwag.concepts import ConceptList

MODES = ("phrase", "bag")


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
    """Concept patterns as lemma-id sequences (one per concept surface form)."""

    concept: np.ndarray  # int32 [n_patterns]
    lemma_ids: list[tuple[int, ...]]


def _concept_list_hash(concepts: ConceptList) -> str:
    digest = hashlib.sha256()
    for concept in concepts:
        digest.update(json.dumps([concept.id, concept.surface_forms()], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


class _LemmaTrie:
    """A trie over lemma-id sequences with vectorised transitions.

    Transition keys ``state * n_lemmas + lemma`` are kept sorted so a whole array of
    (state, lemma) pairs steps with one ``np.searchsorted``. Terminal states list their
    concepts in CSR form (several concepts may share one lemma sequence, e.g. ``glass`` and
    ``glasses``).
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
        keys = np.array([s * self.n_lemmas + l for (s, l) in children], dtype=np.int64)
        targets = np.array(list(children.values()), dtype=np.int64)
        order = np.argsort(keys)
        self.keys = keys[order]
        self.targets = targets[order]
        self.depth = np.array(depth, dtype=np.int64)
        self.max_depth = int(self.depth.max()) if len(depth) else 0
        counts = np.zeros(len(depth), dtype=np.int64)
        concept_lists = [sorted(terminal.get(state, ())) for state in range(len(depth))]
        for state, listed in enumerate(concept_lists):
            counts[state] = len(listed)
        self.terminal_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.terminal_concepts = np.array([c for listed in concept_lists for c in listed], dtype=np.int32)

    def step(self, states: np.ndarray, lemmas: np.ndarray) -> np.ndarray:
        """Next state for each (state, lemma) pair; -1 where the trie has no such edge."""
        if len(self.keys) == 0:
            return np.full(len(states), -1, dtype=np.int64)
        keys = states * self.n_lemmas + lemmas
        position = np.searchsorted(self.keys, keys)
        position_clipped = np.minimum(position, len(self.keys) - 1)
        found = (self.keys[position_clipped] == keys) & (lemmas >= 0)
        return np.where(found, self.targets[position_clipped], -1)


class TextMatcher:
    """Counts concept mentions in batches of captions; build once per worker, call ``count``.

    Construction for the 4,128 bundled concepts takes well under a second; the object pickles
    (plain Python and numpy data), so executors may ship it or rebuild it.
    """

    def __init__(
        self,
        concepts: ConceptList,
        mode: str = "phrase",
        longest_match: bool = False,
        use_aliases: bool = True,
        lemmas: LemmaTable | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown matching mode {mode!r}; use one of {', '.join(MODES)}")
        self.mode = mode
        self.longest_match = longest_match
        self.use_aliases = use_aliases
        self.n_concepts = len(concepts)
        self._lemmas = lemmas or english_lemmas()
        self._concept_hash = _concept_list_hash(concepts)
        lemma_index: dict[str, int] = {}
        pattern_concepts: list[int] = []
        pattern_lemmas: list[tuple[int, ...]] = []
        for concept_index, concept in enumerate(concepts):
            forms = concept.surface_forms()
            if not use_aliases:
                forms = forms[:1]
            for form in forms:
                sequence = tuple(
                    lemma_index.setdefault(self._lemmas.lemma(word), len(lemma_index)) for word in form.split(" ")
                )
                pattern_concepts.append(concept_index)
                pattern_lemmas.append(sequence)
        self._patterns = _Patterns(np.array(pattern_concepts, dtype=np.int32), pattern_lemmas)
        self._lemma_names = list(lemma_index)
        surface: dict[str, int] = {}
        for lemma, index in lemma_index.items():
            for form in self._lemmas.forms_of(lemma):
                surface[form] = index
        self._vocabulary = TokenVocabulary(surface)
        if mode == "phrase":
            self._trie = _LemmaTrie(self._patterns, len(lemma_index))
        else:
            self._bag = _BagRequirements(self._patterns, len(lemma_index))

    @property
    def parameters(self) -> dict:
        """What determines the counts; JSON-able, for provenance and shard fingerprints."""
        return {
            "mode": self.mode,
            "longest_match": self.longest_match,
            "use_aliases": self.use_aliases,
            "lemma_table": self._lemmas.name,
            "lemma_table_version": self._lemmas.version,
            "n_concepts": self.n_concepts,
            "concept_list_sha256": self._concept_hash,
        }

    def count(self, captions: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> BatchCounts:
        """Count one batch. Null and empty captions count nothing; rows are batch positions."""
        tokens = tokenize(captions, self._vocabulary)
        if self.mode == "phrase":
            rows, concepts, starts, ends = self._phrase_matches(tokens)
            return self._phrase_counts(rows, concepts, starts, ends)
        rows, concepts = self._bag.hits(tokens.rows, tokens.word_ids)
        documents = np.bincount(concepts, minlength=self.n_concepts).astype(np.int64)
        return BatchCounts(documents, documents.copy(), rows, concepts)

    # --- phrase mode ---------------------------------------------------------------------

    def _phrase_matches(self, tokens: Tokens):
        """All (row, concept, start, end) matches in token ordinals, overlapping ones included.

        Walks the lemma trie from every vocabulary token at once: at step ``offset`` each live
        start looks at the vocabulary token ``offset`` entries later, which continues the
        phrase only if it is the very next token of the same caption.
        """
        trie = self._trie
        rows, ordinals, lemmas = tokens.rows, tokens.positions, tokens.word_ids
        n_tokens = len(lemmas)
        starts = np.arange(n_tokens, dtype=np.int64)
        states = np.zeros(n_tokens, dtype=np.int64)
        found_rows, found_concepts, found_starts, found_ends = [], [], [], []
        for offset in range(trie.max_depth):
            following = starts + offset
            inside = following < n_tokens
            starts, states, following = starts[inside], states[inside], following[inside]
            adjacent = (rows[following] == rows[starts]) & (ordinals[following] == ordinals[starts] + offset)
            states = trie.step(states, np.where(adjacent, lemmas[following], -1))
            alive = states >= 0
            starts, states = starts[alive], states[alive]
            if len(starts) == 0:
                break
            counts = trie.terminal_ptr[states + 1] - trie.terminal_ptr[states]
            ending = counts > 0
            if ending.any():
                ending_states = states[ending]
                repeat = counts[ending]
                first = np.repeat(trie.terminal_ptr[ending_states], repeat)
                within = np.arange(repeat.sum()) - np.repeat(np.cumsum(repeat) - repeat, repeat)
                match_starts = np.repeat(starts[ending], repeat)
                found_concepts.append(trie.terminal_concepts[first + within])
                found_starts.append(ordinals[match_starts])
                found_ends.append(ordinals[match_starts] + offset + 1)
                found_rows.append(rows[match_starts])
        if not found_rows:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.astype(np.int32), empty, empty
        return (
            np.concatenate(found_rows),
            np.concatenate(found_concepts),
            np.concatenate(found_starts),
            np.concatenate(found_ends),
        )

    def _phrase_counts(self, rows, concepts, starts, ends) -> BatchCounts:
        if self.longest_match and len(starts):
            keep = ~_contained_in_longer(starts, ends)
            rows, concepts, starts, ends = rows[keep], concepts[keep], starts[keep], ends[keep]
        order = np.lexsort((-ends, starts, concepts, rows))
        rows, concepts, starts, ends = rows[order], concepts[order], starts[order], ends[order]
        counted = _greedy_non_overlapping(rows, concepts, starts, ends)
        occurrences = np.bincount(concepts[counted], minlength=self.n_concepts).astype(np.int64)
        first = np.ones(len(rows), dtype=bool)
        first[1:] = (rows[1:] != rows[:-1]) | (concepts[1:] != concepts[:-1])
        hit_rows = rows[first].astype(np.int64)
        hit_concepts = concepts[first].astype(np.int32)
        documents = np.bincount(hit_concepts, minlength=self.n_concepts).astype(np.int64)
        return BatchCounts(documents, occurrences, hit_rows, hit_concepts)


def _contained_in_longer(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each token span, whether a strictly longer span of the batch contains it.

    Spans are global token positions, so spans of different captions never contain each other.
    On the distinct spans sorted by (start, -end), a span is contained exactly when an earlier
    one reaches at least as far (earlier means an earlier start, or the same start and a later
    end: both strictly longer).
    """
    spans = np.stack([starts, ends], axis=1)
    unique, inverse = np.unique(spans, axis=0, return_inverse=True)
    order = np.lexsort((-unique[:, 1], unique[:, 0]))
    sorted_ends = unique[order, 1]
    reach = np.maximum.accumulate(sorted_ends)
    contained_sorted = np.zeros(len(order), dtype=bool)
    contained_sorted[1:] = reach[:-1] >= sorted_ends[1:]
    contained = np.empty(len(order), dtype=bool)
    contained[order] = contained_sorted
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
    """Bag-of-lemmas matching: a pattern hits a caption holding every lemma of the pattern.

    Caption x lemma presence (sparse) times lemma x pattern membership gives, per caption and
    pattern, how many of the pattern's distinct lemmas are present; a hit is a full count.
    """

    def __init__(self, patterns: _Patterns, n_lemmas: int) -> None:
        from scipy import sparse

        lemma_sets = [sorted(set(sequence)) for sequence in patterns.lemma_ids]
        self.pattern_concept = patterns.concept
        self.required = np.array([len(s) for s in lemma_sets], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(self.required)])
        indices = np.array([lemma for s in lemma_sets for lemma in s], dtype=np.int64)
        self.n_lemmas = max(n_lemmas, 1)
        self.membership = sparse.csr_matrix(
            (np.ones(len(indices), dtype=np.int32), indices, indptr), shape=(len(lemma_sets), self.n_lemmas)
        ).T.tocsr()

    def hits(self, rows: np.ndarray, lemmas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy import sparse

        known = lemmas >= 0
        pairs = np.unique(np.stack([rows[known], lemmas[known].astype(np.int64)], axis=1), axis=0)
        if len(pairs) == 0 or self.membership.shape[1] == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
        caption_rows, row_index = np.unique(pairs[:, 0], return_inverse=True)
        presence = sparse.csr_matrix(
            (np.ones(len(pairs), dtype=np.int32), (row_index.reshape(-1), pairs[:, 1])),
            shape=(len(caption_rows), self.n_lemmas),
        )
        overlap = (presence @ self.membership).tocoo()
        full = overlap.data == self.required[overlap.col]
        hit_rows = caption_rows[overlap.row[full]]
        hit_concepts = self.pattern_concept[overlap.col[full]]
        unique = np.unique(np.stack([hit_rows, hit_concepts.astype(np.int64)], axis=1), axis=0)
        return unique[:, 0].astype(np.int64), unique[:, 1].astype(np.int32)
