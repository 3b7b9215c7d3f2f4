"""Two slow, obviously-correct concept counters that the fast matcher is checked against.

Used only by tests and ``benchmarks/bench_frequency.py``; nothing in the engine calls them.

* ``LemmatizeThenMatch``: the naive way to get ``phrase`` semantics. Every caption is
  normalised, every token lemmatised with the same lemma table, and each concept's lemma
  sequence is searched for at every position. It shares nothing with the fast matcher except
  the lemma table and ``normalize_text`` (no tokeniser, no trie, no vectorised bookkeeping).
* ``SpacyInvertedIndex``: the paper's ``bag`` method re-implemented with spaCy
  (``bethgelab/frequency_determines_performance``, ``src/text_search_*``): lemmatise captions,
  build an inverted index lemma -> set(caption ids), and count a concept as the size of the
  intersection of its words' caption sets (document frequency, word order ignored).

  Deliberate differences from the paper's code, each because of this environment or so that the
  two engines see the same words:

  - spaCy's English pipelines cannot be installed offline, so lemmas come from
    ``spacy.blank("en")`` with the ``lookup`` lemmatizer (``spacy-lookups-data``), for *every*
    token; the paper indexed only NOUN/PROPN lemmas of ``en_core_web_lg``.
  - The paper lower-cased the concept names only (its lg lemmas are lower-case for common
    nouns, and proper-noun lemmas keep their capitals, so "Paris" could never match "paris") and
    stripped ``[^A-Za-z ]`` from lemmas, dropping digits and non-ASCII letters. Here spaCy reads
    ``normalize_text(caption)`` (lower-cased, punctuation as spaces), and a lemma is normalised
    the same way, so digits and Unicode letters are kept and case never matters.
  - The paper dropped concept words absent from the index (so "kite (bird of prey)" counted
    captions with any of its *known* words, an over-count). By default a missing word here
    means no caption matches, as in ``bag`` mode; ``drop_unknown_words=True`` restores the
    paper's behaviour for comparison.
  - Concept words are lemmatised with the same lookup table (the paper used
    ``en_core_web_sm`` on each word alone).
  - By default spaCy gets the normalised caption's words as they are (``Doc(words=...)``);
    ``spacy_tokenizer=True`` runs spaCy's rule tokenizer instead, which also splits a few
    alphanumeric words ("cannot" -> "can not", "h3t" -> "h3 t", "10km" -> "10 km").
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np

from letitwag.concepts import ConceptList, normalize_text
from letitwag.frequency.text.forms import LemmaTable, english_lemmas


def _pattern_forms(concepts: ConceptList, use_aliases: bool) -> list[list[str]]:
    forms = [concept.surface_forms() for concept in concepts]
    return forms if use_aliases else [f[:1] for f in forms]


class LemmatizeThenMatch:
    """Per-caption reference for ``phrase`` mode (and, with ``bag=True``, for ``bag`` mode)."""

    def __init__(
        self,
        concepts: ConceptList,
        longest_match: bool = False,
        use_aliases: bool = True,
        lemmas: LemmaTable | None = None,
    ) -> None:
        self.lemmas = lemmas or english_lemmas()
        self.longest_match = longest_match
        self.n_concepts = len(concepts)
        self.by_first_lemma: dict[str, list[tuple[int, tuple[str, ...]]]] = defaultdict(list)
        self.lemma_sets: list[tuple[int, frozenset[str]]] = []
        self.sets_with_lemma: dict[str, list[int]] = defaultdict(list)
        for index, forms in enumerate(_pattern_forms(concepts, use_aliases)):
            for form in forms:
                sequence = tuple(self.lemmas.lemma(word) for word in form.split(" "))
                self.by_first_lemma[sequence[0]].append((index, sequence))
                for lemma in set(sequence):
                    self.sets_with_lemma[lemma].append(len(self.lemma_sets))
                self.lemma_sets.append((index, frozenset(sequence)))

    def caption_lemmas(self, caption: str | None) -> list[str]:
        normalized = normalize_text(caption or "")
        return [self.lemmas.lemma(token) for token in normalized.split(" ")] if normalized else []

    def phrase_matches(self, caption: str | None) -> list[tuple[int, int, int]]:
        """(concept, start, end) token spans of every match, overlapping ones included."""
        lemmas = self.caption_lemmas(caption)
        matches = []
        for start, lemma in enumerate(lemmas):
            for concept, sequence in self.by_first_lemma.get(lemma, ()):
                if tuple(lemmas[start : start + len(sequence)]) == sequence:
                    matches.append((concept, start, start + len(sequence)))
        if self.longest_match:
            spans = {(s, e) for _, s, e in matches}
            matches = [
                (c, s, e)
                for c, s, e in matches
                if not any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2 in spans)
            ]
        return matches

    def count_phrase(self, captions: Iterable[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """(documents, occurrences) per concept; occurrences are non-overlapping per concept,
        taken greedily from the left (longest first at equal starts)."""
        documents = np.zeros(self.n_concepts, dtype=np.int64)
        occurrences = np.zeros(self.n_concepts, dtype=np.int64)
        for caption in captions:
            per_concept: dict[int, list[tuple[int, int]]] = defaultdict(list)
            for concept, start, end in self.phrase_matches(caption):
                per_concept[concept].append((start, -end))
            for concept, spans in per_concept.items():
                documents[concept] += 1
                last_end = -1
                for start, negative_end in sorted(spans):
                    if start >= last_end:
                        occurrences[concept] += 1
                        last_end = -negative_end
        return documents, occurrences

    def count_bag(self, captions: Iterable[str | None]) -> np.ndarray:
        documents = np.zeros(self.n_concepts, dtype=np.int64)
        for caption in captions:
            present = set(self.caption_lemmas(caption))
            candidates = {number for lemma in present for number in self.sets_with_lemma.get(lemma, ())}
            hit = {self.lemma_sets[n][0] for n in candidates if self.lemma_sets[n][1] <= present}
            for concept in hit:
                documents[concept] += 1
        return documents


@functools.lru_cache(maxsize=1)
def _blank_english_with_lookup_lemmas():
    """``spacy.blank("en")`` + the lookup lemmatizer (tables from ``spacy-lookups-data``)."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.initialize()
    return nlp


class SpacyInvertedIndex:
    """The paper's inverted-index counting with spaCy (see the module docstring)."""

    def __init__(
        self,
        concepts: ConceptList,
        use_aliases: bool = True,
        drop_unknown_words: bool = False,
        spacy_tokenizer: bool = False,
    ) -> None:
        self.nlp = _blank_english_with_lookup_lemmas()
        self.drop_unknown_words = drop_unknown_words
        self.spacy_tokenizer = spacy_tokenizer
        self.n_concepts = len(concepts)
        forms = _pattern_forms(concepts, use_aliases)
        words = sorted({word for per_concept in forms for form in per_concept for word in form.split(" ")})
        lemma_words = dict(zip(words, self._lemma_words(words)))
        self.queries: list[tuple[int, list[str]]] = []
        for index, per_concept in enumerate(forms):
            for form in per_concept:
                self.queries.append((index, sorted({w for word in form.split(" ") for w in lemma_words[word]})))

    def _docs(self, texts: Iterable[str]):
        """spaCy Docs of normalised texts: by default the words are the texts' space-separated
        tokens (what the fast matcher sees); with ``spacy_tokenizer`` spaCy's rule tokenizer
        splits them, which also splits some alphanumeric words ("cannot", "h3t", "10km")."""
        from spacy.tokens import Doc

        if self.spacy_tokenizer:
            return texts
        return (Doc(self.nlp.vocab, words=text.split(" ") if text else []) for text in texts)

    def _lemma_words(self, texts: list[str]) -> list[list[str]]:
        """The normalised lemma words of each text (concept words are lemmatised alone)."""
        return [
            [w for token in doc for w in normalize_text(token.lemma_).split(" ") if w]
            for doc in self.nlp.pipe(self._docs(texts))
        ]

    def build_index(self, captions: Sequence[str | None], batch_size: int = 2000) -> dict[str, set[int]]:
        """lemma -> set of caption ids (ids are positions in ``captions``)."""
        index: dict[str, set[int]] = defaultdict(set)
        texts = (normalize_text(caption or "") for caption in captions)
        for caption_id, doc in enumerate(self.nlp.pipe(self._docs(texts), batch_size=batch_size)):
            for token in doc:
                for word in normalize_text(token.lemma_).split(" "):
                    if word:
                        index[word].add(caption_id)
        return index

    def count(self, captions: Sequence[str | None]) -> np.ndarray:
        index = self.build_index(captions)
        hits: list[set[int]] = [set() for _ in range(self.n_concepts)]
        for concept, words in self.queries:
            if self.drop_unknown_words:
                words = [word for word in words if word in index]
            if not words:
                continue
            postings = sorted((index.get(word, set()) for word in words), key=len)
            hits[concept] |= set.intersection(*postings)
        return np.array([len(h) for h in hits], dtype=np.int64)
