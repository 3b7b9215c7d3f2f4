"""Slow, obviously-correct concept counters that the fast matcher and ``--mode paper`` are checked against.

Used only by tests and the benchmarks; nothing in the engine calls them.

* ``LemmatizeThenMatch``: the naive way to get ``phrase`` and ``bag`` semantics. Every caption
  is normalised and each token is compared with each concept word through the *forward*
  lemmatiser only: with noun forms (the default) a token counts for a word when it is the word,
  or (for an inflected word: a ``phrase`` pattern's last, every ``bag`` word) when spaCy's noun
  rule lemmatiser maps it to the word; with ``--forms lookup`` when both have the same lookup
  lemma. Each concept is searched for at every position. It shares nothing with the fast
  matcher but the lemmatiser and ``normalize_text``: no inverted forms, no tokeniser, no trie,
  no vectorised bookkeeping.
* ``SpacyInvertedIndex``: ``bag`` mode the way the paper's code counted (an inverted index
  word -> set(caption ids), a concept = the intersection of its words' sets), with spaCy's own
  lemmatiser: each normalised caption word is indexed as itself and as spaCy's rule lemma of it
  read as a plural noun (``spacy.blank("en")``, the ``rule`` lemmatizer on tokens tagged
  NOUN/``Number=Plur``; with ``forms="lookup"``, the ``lookup`` lemmatizer for every token and
  concept word, the engine's earlier behaviour). ``drop_unknown_words=True`` drops concept words
  absent from the index, as the paper did; ``spacy_tokenizer=True`` runs spaCy's tokenizer on
  the normalised text instead of splitting it on spaces (it also splits a few alphanumeric
  words: "cannot", "h3t", "10km").
* ``PaperInvertedIndex``: the paper's own computation, run directly (``bethgelab/
  frequency_determines_performance``, ``src/text_search_inverted_index_get_word_dictionaries.py``
  and ``src/text_search_matches_inverted_index.py``, read, not copied): a spaCy English pipeline
  over every raw caption, each caption's set of NOUN/PROPN lemmas with ``[^A-Za-z ]`` removed,
  concept names lower-cased and split on ``[_\\s]+``, each word lemmatised alone by the same
  pipeline (the last token's lemma, as the paper's dictionary comprehension keeps it), and a
  caption counted when every such word is in its set (``drop_unknown_words``: words in no
  caption's set are dropped first, as the paper's search did). ``--mode paper`` must agree with it.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np

from letitwag.concepts import ConceptList, normalize_text
from letitwag.frequency.text.forms import LemmaTable, NounForms, english_lemmas, english_noun_forms


def _pattern_forms(concepts: ConceptList, use_aliases: bool) -> list[list[str]]:
    forms = [concept.surface_forms() for concept in concepts]
    return forms if use_aliases else [f[:1] for f in forms]


class _ForwardReading:
    """Which concept words a caption token may stand for, by the forward lemmatiser alone."""

    def __init__(self, forms: NounForms | LemmaTable) -> None:
        self.forms = forms
        self.lookup = isinstance(forms, LemmaTable)

    def word_key(self, word: str, inflect: bool) -> str:
        """An inflected concept word is read through its noun lemma (``--concept-words``)."""
        if self.lookup:
            return self.forms.lemma(word)
        return self.forms.concept_lemma(word) if inflect else word

    def token_keys(self, token: str) -> set[str]:
        """Keys of the concept words ``token`` may stand for when they are inflected."""
        return {self.forms.lemma(token)} if self.lookup else {token, self.forms.lemma(token)}

    def accepts(self, token: str, word: str, inflect: bool) -> bool:
        if self.lookup:
            return self.forms.lemma(token) == self.forms.lemma(word)
        key = self.word_key(word, inflect)
        return token == key or (inflect and self.forms.lemma(token) == key)


class LemmatizeThenMatch:
    """Per-caption reference for ``phrase`` mode (and ``count_bag`` for ``bag`` mode)."""

    def __init__(
        self,
        concepts: ConceptList,
        longest_match: bool = False,
        use_aliases: bool = True,
        forms: NounForms | LemmaTable | None = None,
    ) -> None:
        self.reading = _ForwardReading(forms or english_noun_forms())
        self.longest_match = longest_match
        self.n_concepts = len(concepts)
        self.by_first_key: dict[str, list[tuple[int, tuple[str, ...]]]] = defaultdict(list)
        self.word_sets: list[tuple[int, frozenset[str]]] = []
        for index, surface in enumerate(_pattern_forms(concepts, use_aliases)):
            for text in surface:
                words = tuple(text.split(" "))
                self.by_first_key[self.reading.word_key(words[0], len(words) == 1)].append((index, words))
                self.word_sets.append((index, frozenset(self.reading.word_key(word, True) for word in words)))

    def phrase_matches(self, caption: str | None) -> list[tuple[int, int, int]]:
        """(concept, start, end) token spans of every match, overlapping ones included."""
        normalized = normalize_text(caption or "")
        tokens = normalized.split(" ") if normalized else []
        matches = []
        for start, token in enumerate(tokens):
            keys = self.reading.token_keys(token) | {token}
            for concept, words in (entry for key in keys for entry in self.by_first_key.get(key, ())):
                window = tokens[start : start + len(words)]
                if len(window) == len(words) and all(
                    self.reading.accepts(t, w, inflect=position == len(words) - 1)
                    for position, (t, w) in enumerate(zip(window, words))
                ):
                    matches.append((concept, start, start + len(words)))
        matches = sorted(set(matches))
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
            normalized = normalize_text(caption or "")
            present = {key for token in normalized.split(" ") if token for key in self.reading.token_keys(token)}
            hit = {concept for concept, words in self.word_sets if words <= present}
            for concept in hit:
                documents[concept] += 1
        return documents


def spacy_noun_readings(nlp, words: Iterable[str]) -> dict[str, str]:
    """Each concept word as the fast modes read it (``--concept-words lemma``), by spaCy's own
    rule lemmatiser (``nlp``): the word's lemma read as a plural noun where spaCy's noun tables
    know that lemma (the word is a listed exception, or the lemma a noun of the index), else the
    word."""
    from spacy.tokens import Doc

    words = sorted(set(words))
    if not words:
        return {}
    lookups = nlp.get_pipe("lemmatizer").lookups
    exceptions = lookups.get_table("lemma_exc")["noun"]
    index = set(lookups.get_table("lemma_index")["noun"])
    doc = nlp(Doc(nlp.vocab, words=words, pos=["NOUN"] * len(words), morphs=["Number=Plur"] * len(words)))
    return {word: token.lemma_ if token.lemma_ != word and (word in exceptions or token.lemma_ in index) else word
            for word, token in zip(words, doc)}


@functools.lru_cache(maxsize=2)
def _blank_english(mode: str):
    """``spacy.blank("en")`` + spaCy's lemmatizer in ``mode`` (tables from ``spacy-lookups-data``)."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("lemmatizer", config={"mode": mode})
    nlp.initialize()
    return nlp


class SpacyInvertedIndex:
    """``bag`` counting the paper's way (an inverted index), lemmas by spaCy (module docstring)."""

    def __init__(
        self,
        concepts: ConceptList,
        use_aliases: bool = True,
        drop_unknown_words: bool = False,
        spacy_tokenizer: bool = False,
        forms: str = "noun",
    ) -> None:
        self.nouns = forms == "noun"
        self.nlp = _blank_english("rule" if self.nouns else "lookup")
        self.drop_unknown_words = drop_unknown_words
        self.spacy_tokenizer = spacy_tokenizer
        self.n_concepts = len(concepts)
        surface = _pattern_forms(concepts, use_aliases)
        words = sorted({word for per_concept in surface for text in per_concept for word in text.split(" ")})
        if self.nouns:
            keys = {word: [reading] for word, reading in spacy_noun_readings(self.nlp, words).items()}
        else:
            keys = dict(zip(words, self._lookup_words(words)))
        self.queries: list[tuple[int, list[str]]] = []
        for index, per_concept in enumerate(surface):
            for text in per_concept:
                self.queries.append((index, sorted({key for word in text.split(" ") for key in keys[word]})))

    def _docs(self, texts: Iterable[str]):
        """spaCy Docs of normalised texts: by default the words are the texts' space-separated
        tokens (what the fast matcher sees); with ``spacy_tokenizer`` spaCy's rule tokenizer
        splits them. With noun forms every token is tagged a plural noun, so the rule
        lemmatiser lemmatises it as one."""
        from spacy.tokens import Doc

        for text in texts:
            doc = self.nlp.make_doc(text) if self.spacy_tokenizer else Doc(self.nlp.vocab, words=text.split(" ") if text else [])
            if self.nouns:
                for token in doc:
                    token.pos_ = "NOUN"
                    token.set_morph("Number=Plur")
            yield doc

    def _lookup_words(self, texts: list[str]) -> list[list[str]]:
        """The normalised lookup-lemma words of each concept word (lemmatised alone)."""
        return [
            [w for token in doc for w in normalize_text(token.lemma_).split(" ") if w]
            for doc in self.nlp.pipe(self._docs(texts))
        ]

    def build_index(self, captions: Sequence[str | None], batch_size: int = 2000) -> dict[str, set[int]]:
        """word -> set of caption ids (ids are positions in ``captions``)."""
        index: dict[str, set[int]] = defaultdict(set)
        texts = (normalize_text(caption or "") for caption in captions)
        for caption_id, doc in enumerate(self.nlp.pipe(self._docs(texts), batch_size=batch_size)):
            for token in doc:
                keys = [token.text] if self.nouns else []
                keys += [w for w in normalize_text(token.lemma_).split(" ") if w]
                for word in keys:
                    index[word].add(caption_id)
        return index

    def count(self, captions: Sequence[str | None]) -> np.ndarray:
        return _sizes(_intersections(self.build_index(captions), self.queries, self.n_concepts,
                                     self.drop_unknown_words))


def _intersections(index: dict[str, set[int]], queries: list[tuple[int, list[str]]], n_concepts: int,
                   drop_unknown_words: bool) -> list[set[int]]:
    """Caption ids per concept: the union over its queries of the intersection of the words' sets."""
    hits: list[set[int]] = [set() for _ in range(n_concepts)]
    for concept, words in queries:
        if drop_unknown_words:
            words = [word for word in words if word in index]
        if not words:
            continue
        postings = sorted((index.get(word, set()) for word in words), key=len)
        hits[concept] |= set.intersection(*postings)
    return hits


def _sizes(hits: list[set[int]]) -> np.ndarray:
    return np.array([len(h) for h in hits], dtype=np.int64)


_NOT_LETTERS = re.compile(r"[^A-Za-z ]")


class PaperInvertedIndex:
    """The paper's computation run directly: every caption tagged (module docstring)."""

    def __init__(self, concepts: ConceptList, nlp, drop_unknown_words: bool = False, batch_size: int = 256) -> None:
        self.nlp = nlp
        self.drop_unknown_words = drop_unknown_words
        self.batch_size = batch_size
        self.n_concepts = len(concepts)
        words = [re.split(r"[_\s]+", concept.name.lower()) for concept in concepts]
        distinct = sorted({word for per_concept in words for word in per_concept})
        terms = {}
        for word, doc in zip(distinct, nlp.pipe(distinct)):  # each word alone, as the paper's nlp(term)
            for token in doc:  # the paper's dictionary comprehension: the last token's lemma wins
                terms[word] = token.lemma_
        self.queries = [(index, sorted({terms[word] for word in per_concept if word in terms}))
                        for index, per_concept in enumerate(words)]

    def caption_nouns(self, captions: Sequence[str]) -> list[set[str]]:
        """Per caption, its NOUN/PROPN lemmas with every character but A-Z, a-z and space removed."""
        return [{_NOT_LETTERS.sub("", token.lemma_) for token in doc if token.pos_ in ("NOUN", "PROPN")}
                for doc in self.nlp.pipe(captions, batch_size=self.batch_size)]

    def postings_from_nouns(self, nouns: Sequence[set[str]], drop_unknown_words: bool | None = None) -> list[set[int]]:
        """Per concept, the positions of the captions that count, given each caption's noun set."""
        index: dict[str, set[int]] = defaultdict(set)
        for caption_id, found in enumerate(nouns):
            for noun in found:
                index[noun].add(caption_id)
        drop = self.drop_unknown_words if drop_unknown_words is None else drop_unknown_words
        return _intersections(index, self.queries, self.n_concepts, drop)

    def postings(self, captions: Sequence[str]) -> list[set[int]]:
        """Per concept, the positions in ``captions`` of the captions that count."""
        return self.postings_from_nouns(self.caption_nouns(captions))

    def count(self, captions: Sequence[str]) -> np.ndarray:
        return _sizes(self.postings(captions))
