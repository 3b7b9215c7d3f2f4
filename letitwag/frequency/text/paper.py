"""``--mode paper``: the paper's counting, exactly, on the engine's shards: the map step and its partials.

The paper (``bethgelab/frequency_determines_performance``: ``src/text_search_inverted_index_*``
and ``src/text_search_matches_inverted_index.py``) tagged every caption with spaCy, kept the
lemmas of NOUN/PROPN tokens with every character but ``A-Za-z`` and space removed (so proper
nouns keep their capitals: "Paris" stays "Paris"), and counted a caption for a concept when
every *term* of the concept was among them. A concept's terms are its name lower-cased, split on
``[_\\s]+``, each part lemmatised alone by spaCy, the part's last token's lemma kept (its
dictionary comprehension overwrites earlier tokens: "t-shirt" searches for "shirt", "hot-dog" for
"dog", as its released tables show). Words absent from the whole corpus's index were dropped
from a concept (``unknown_words="drop"``); by default here a concept needs all its terms.

Why it is fast: a caption can only count if, for some concept, each term can be a NOUN/PROPN
lemma of one of its tokens. spaCy's noun lemma of a token is the lower-cased token or its rule
lemma, and a proper noun's is the token itself, so the fast matcher, given every noun form of
each term (the pipeline's own rule tables, inverted as in ``forms``, and the attribute ruler's
listed lemmas), finds the only captions worth tagging; the rest are never tagged. Where a term
cannot be bounded that way (a lemma the attribute ruler sets by a regular expression, a
pipeline whose lemmatiser is not rule-based) its concepts' captions are all tagged. Tokens
that spaCy keeps whole but ``normalize_text`` splits or keeps with digits ("2dogs", "o'neill")
are the prefilter's blind spot (``benchmarks/bench_frequency_modes.py`` measures the effect).

A partial holds, per concept and per *present mask* (which of the concept's terms the caption
held), the captions counted and, with postings, their ids: in ``require`` mode only full masks;
in ``drop`` mode every non-empty mask, since which terms are "unknown" is only known once every
shard is in (``resolve_paper_counts``).
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from letitwag.arrow_buffers import primitive_array
from letitwag.concepts import Concept, ConceptList
from letitwag.errors import UserInputError
from letitwag.frequency.text.forms import RuleLemmatizer, is_token
from letitwag.frequency.text.matcher import TextMatcher
from letitwag.frequency.text.partials import group_postings, partial_metadata, read_partial_table, write_partial
from letitwag.frequency.text.readers import CaptionSlice, ReadStats, read_caption_slice

logger = logging.getLogger(__name__)

PAPER_PARTIAL_FORMAT = "letitwag.paper-partial/1"
UNKNOWN_WORDS = ("require", "drop")
NOUN_TAGS = ("NOUN", "PROPN")
MAX_TERMS = 62  # a concept's present mask is an int64
TOO_LONG = "too_long_to_tag"
_NOT_LETTERS = re.compile(r"[^A-Za-z ]")
_SEARCHABLE = re.compile(r"[A-Za-z]+")
_CONCEPT_WORD_SPLIT = re.compile(r"[_\s]+")


def noun_key(lemma: str) -> str:
    """What the paper's index stored for a NOUN/PROPN token: its lemma, letters and spaces only."""
    return _NOT_LETTERS.sub("", lemma)


@dataclass(frozen=True)
class PaperTerms:
    """Each concept's terms as the paper searched for them, and how the prefilter finds them.

    ``terms``: the distinct terms of all concepts; ``concept_terms``: per concept, indices into
    ``terms``; ``forms``: per term, the caption tokens (normalised) that may carry it as a
    NOUN/PROPN lemma, or None where that cannot be bounded.
    """

    terms: tuple[str, ...]
    concept_terms: tuple[tuple[int, ...], ...]
    forms: tuple[tuple[str, ...] | None, ...]

    @classmethod
    def from_pipeline(cls, concepts: ConceptList, nlp) -> "PaperTerms":
        words_of = [[word for word in _CONCEPT_WORD_SPLIT.split(concept.name.lower()) if word] for concept in concepts]
        distinct = sorted({word for words in words_of for word in words})
        lemma_of = {}
        for word, doc in zip(distinct, nlp.pipe(distinct)):
            if len(doc):  # the paper's ``{term: token.lemma_ for term in terms for token in nlp(term)}``
                lemma_of[word] = doc[-1].lemma_
        terms: dict[str, int] = {}
        concept_terms = []
        for concept, words in zip(concepts, words_of):
            indices = tuple(dict.fromkeys(terms.setdefault(lemma_of[w], len(terms)) for w in words if w in lemma_of))
            if len(indices) > MAX_TERMS:
                raise UserInputError(f"concept {concept.id!r} has {len(indices)} words; --mode paper takes at most "
                                     f"{MAX_TERMS}")
            concept_terms.append(indices)
        prefilter = _PrefilterForms.from_pipeline(nlp)
        return cls(tuple(terms), tuple(concept_terms), tuple(prefilter.forms_of(term) for term in terms))

    def searchable(self, term: int) -> bool:
        """Whether a term can be an index key at all (keys hold letters only)."""
        return _SEARCHABLE.fullmatch(self.terms[term]) is not None

    def sha256(self) -> str:
        payload = json.dumps([self.terms, self.concept_terms, self.forms], ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(payload).hexdigest()

    def described(self, concepts: ConceptList) -> dict[str, list[str]]:
        """concept id -> terms, for the concepts whose terms are not simply their lower-cased words."""
        described = {}
        for concept, indices in zip(concepts, self.concept_terms):
            terms = [self.terms[i] for i in indices]
            words = [word for word in _CONCEPT_WORD_SPLIT.split(concept.name.lower()) if word]
            if terms != list(dict.fromkeys(words)) or not all(self.searchable(i) for i in indices):
                described[concept.id] = terms
        return described


@dataclass(frozen=True)
class _PrefilterForms:
    """The caption tokens a pipeline may lemmatise to a term as a NOUN/PROPN: the term itself
    (a singular noun's lemma is the lower-cased token, a proper noun's the token), the rule
    lemmatiser's inflections of it for each of the two parts of speech, and the tokens the
    attribute ruler gives that lemma. ``unbounded``: lemmas the ruler sets on tokens it does not
    list (by regular expression); ``rule_based``: False when the lemmatiser cannot be inverted."""

    lemmatizers: tuple[RuleLemmatizer, ...]
    ruler: dict[str, set[str]] = field(default_factory=dict)
    unbounded: frozenset[str] = frozenset()
    rule_based: bool = True

    @classmethod
    def from_pipeline(cls, nlp) -> "_PrefilterForms":
        lemmatizer = nlp.get_pipe("lemmatizer")
        if getattr(lemmatizer, "mode", None) != "rule":
            logger.warning("the pipeline's lemmatiser is in %r mode, not 'rule': every caption will be tagged",
                           getattr(lemmatizer, "mode", None))
            return cls((), rule_based=False)
        lookups = lemmatizer.lookups
        tables = [lookups.get_table(name, {}) for name in ("lemma_rules", "lemma_exc", "lemma_index")]
        lemmatizers = tuple(
            RuleLemmatizer(tuple(map(tuple, tables[0].get(pos, ()))), dict(tables[1].get(pos, {})),
                           frozenset(tables[2].get(pos, ())))
            for pos in ("noun", "propn") if any(table.get(pos) for table in tables))
        ruler: dict[str, set[str]] = collections.defaultdict(set)
        unbounded: set[str] = set()
        if "attribute_ruler" in nlp.pipe_names:
            for entry in nlp.get_pipe("attribute_ruler").patterns:
                lemma = entry["attrs"].get("LEMMA")
                if lemma is None:
                    continue
                for pattern in entry["patterns"]:
                    listed = _listed_texts(pattern[entry.get("index", 0)])
                    if listed is None:
                        unbounded.add(lemma)
                    else:
                        ruler[lemma].update(listed)
        return cls(lemmatizers, dict(ruler), frozenset(unbounded))

    def forms_of(self, term: str) -> tuple[str, ...] | None:
        if not self.rule_based or term in self.unbounded:
            return None
        lowered = term.lower()
        forms = {lowered} | self.ruler.get(term, set())
        for lemmatizer in self.lemmatizers:
            forms |= lemmatizer.inflections(lowered)
        return tuple(sorted(token for token in {form.lower() for form in forms} if is_token(token)))


def _listed_texts(token_pattern: dict) -> list[str] | None:
    """The texts an attribute-ruler token pattern accepts (``LOWER``/``ORTH``: a string or
    ``{"IN": [...]}``); None when it accepts texts it does not list (``REGEX``, no text at all)."""
    text = token_pattern.get("LOWER", token_pattern.get("ORTH"))
    if isinstance(text, str):
        return [text]
    if isinstance(text, dict) and set(text) == {"IN"}:
        return list(text["IN"])
    return None


class _TermForms:
    """``WordForms`` for the prefilter: a term pattern accepts its listed forms."""

    def __init__(self, forms: dict[str, tuple[str, ...]]) -> None:
        self.forms = forms

    def alternatives(self, word: str, inflect: bool) -> tuple[str, ...]:
        return self.forms[word]

    def surface_forms(self, key: str) -> tuple[str, ...]:
        return (key,)

    @property
    def parameters(self) -> dict:
        return {"forms": "paper-prefilter"}


class _CandidateRows:
    """Which captions may count for some concept, from the prefilter's (caption, term) hits.

    ``require``: a caption holding a form of each bounded term of some concept (every caption,
    if a concept has no bounded term); ``drop``: one holding a form of any term of some concept
    (every caption, if one of a concept's terms is unbounded). Concepts with a term that can
    never be an index key (it has other characters than letters) count nothing in ``require``
    mode, and are left out here.
    """

    def __init__(self, terms: PaperTerms, unknown_words: str) -> None:
        from scipy import sparse

        bounded = [i for i, forms in enumerate(terms.forms) if forms is not None and terms.searchable(i)]
        column = {term: index for index, term in enumerate(bounded)}
        rows, columns, needed = [], [], []
        self.everywhere = False
        for indices in terms.concept_terms:
            searchable = [i for i in indices if terms.searchable(i)]
            if not searchable or (unknown_words == "require" and len(searchable) < len(indices)):
                continue
            mine = [column[i] for i in searchable if i in column]
            if (unknown_words == "require" and not mine) or (unknown_words == "drop" and len(mine) < len(searchable)):
                self.everywhere = True
            rows.extend(mine)
            columns.extend([len(needed)] * len(mine))
            needed.append(len(mine) if unknown_words == "require" else 1)
        self.membership = sparse.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, columns)),
                                            shape=(max(len(bounded), 1), max(len(needed), 1)))
        self.needed = np.array(needed or [1], dtype=np.int64)
        self.bounded = bounded  # the prefilter's terms, in its column order

    def rows(self, n_rows: int, hit_rows: np.ndarray, hit_terms: np.ndarray) -> np.ndarray:
        """The candidate rows of a batch of ``n_rows`` captions, sorted."""
        from scipy import sparse

        if self.everywhere:
            return np.arange(n_rows, dtype=np.int64)
        presence = sparse.csr_matrix((np.ones(len(hit_rows), dtype=np.int32), (hit_rows, hit_terms)),
                                     shape=(max(n_rows, 1), self.membership.shape[0]))
        presence.data[:] = 1
        overlap = (presence @ self.membership).tocoo()
        return np.unique(overlap.row[overlap.data >= self.needed[overlap.col]]).astype(np.int64)


class PaperCountTask:
    """The map function of ``--mode paper``: ``task(slice) -> partial bytes``; picklable.

    It carries the concepts' terms and the prefilter matcher built by the driver; each worker
    loads the spaCy pipeline once (``pipelines.load_pipeline``) and checks it is the version
    the driver described, so no shard is tagged by a different model than the run records.
    A tagged caption counts for every concept whose terms its nouns hold, whichever concept
    made it a candidate.
    """

    def __init__(self, concepts: ConceptList, terms: PaperTerms, pipeline: dict, unknown_words: str,
                 postings: bool, prefilter: bool = True, batch_size: int = 256) -> None:
        if unknown_words not in UNKNOWN_WORDS:
            raise UserInputError(f"unknown --unknown-words {unknown_words!r}; use {' or '.join(UNKNOWN_WORDS)}")
        self.n_concepts = len(concepts)
        self.terms = terms
        self.pipeline = pipeline
        self.unknown_words = unknown_words
        self.postings = postings
        self.prefilter = prefilter
        self.batch_size = batch_size
        self.candidates = _CandidateRows(terms, unknown_words)
        by_pattern: dict[str, set[str]] = collections.defaultdict(set)
        for term in self.candidates.bounded:
            by_pattern[terms.terms[term].lower()].update(terms.forms[term])
        term_concepts = ConceptList([Concept(f"term:{terms.terms[term]}", name=terms.terms[term].lower())
                                     for term in self.candidates.bounded])
        self.matcher = TextMatcher(term_concepts, use_aliases=False,
                                   forms=_TermForms({term: tuple(sorted(forms)) for term, forms in by_pattern.items()}))
        # term -> (concept, bit) of each concept holding it; and each concept's full mask
        holders: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
        for concept, indices in enumerate(terms.concept_terms):
            for bit, term in enumerate(indices):
                holders[terms.terms[term]].append((concept, 1 << bit))
        self.holders = dict(holders)
        self.full = [(1 << len(indices)) - 1 for indices in terms.concept_terms]

    def parameters(self) -> dict:
        """What the partials depend on, for provenance and shard fingerprints."""
        return {"mode": "paper", **self.pipeline, "unknown_words": self.unknown_words, "prefilter": self.prefilter,
                "use_aliases": False, "n_concepts": self.n_concepts, "paper_terms_sha256": self.terms.sha256(),
                "postings": self.postings, "partial_format": PAPER_PARTIAL_FORMAT}

    def _nlp(self):
        from letitwag.frequency.text.pipelines import describe_pipeline, load_pipeline

        found = describe_pipeline(self.pipeline["spacy_model"])
        if found != self.pipeline:
            raise UserInputError(f"spaCy pipeline {self.pipeline['spacy_model']}: this worker has {found}, the run "
                                 f"was planned with {self.pipeline}; install the same versions everywhere")
        return load_pipeline(self.pipeline["spacy_model"])

    def __call__(self, piece: CaptionSlice) -> bytes:
        nlp = self._nlp()
        stats = ReadStats()
        counts: collections.Counter = collections.Counter()
        hit_keys: list[tuple[int, int]] = []
        hit_ids: list[pa.Array] = []
        tagged = 0
        for batch in read_caption_slice(piece, stats, with_ids=self.postings):
            captions = batch.column("caption")
            rows = self._candidate_rows(captions)
            texts = captions.take(primitive_array(rows)).to_pylist()
            too_long = [text is not None and len(text) > nlp.max_length for text in texts]
            if any(too_long):
                stats.skipped[TOO_LONG] += sum(too_long)
            kept = [index for index, text in enumerate(texts) if text and not too_long[index]]  # nulls: counted skips
            tagged += len(kept)
            batch_hits: list[int] = []
            for index, doc in zip(kept, nlp.pipe([texts[index] for index in kept], batch_size=self.batch_size)):
                for concept, mask in self._masks(doc):
                    counts[concept, mask] += 1
                    if self.postings:
                        hit_keys.append((concept, mask))
                        batch_hits.append(int(rows[index]))
            if self.postings and batch_hits:
                hit_ids.append(batch.column("sample_id").take(primitive_array(np.array(batch_hits, dtype=np.int64))))
        return _encode_paper_partial(counts, stats, tagged, hit_keys if self.postings else None, hit_ids)

    def _candidate_rows(self, captions) -> np.ndarray:
        if not self.prefilter:
            return np.arange(len(captions), dtype=np.int64)
        found = self.matcher.count(captions)
        return self.candidates.rows(len(captions), found.hit_rows, found.hit_concepts)

    def _masks(self, doc) -> list[tuple[int, int]]:
        """(concept, present mask) of the concepts the caption counts for (``require``: all terms
        held; ``drop``: any), from its NOUN/PROPN index keys."""
        masks: dict[int, int] = collections.defaultdict(int)
        for key in {noun_key(token.lemma_) for token in doc if token.pos_ in NOUN_TAGS}:
            for concept, bit in self.holders.get(key, ()):
                masks[concept] |= bit
        if self.unknown_words == "drop":
            return sorted(masks.items())
        return sorted((concept, mask) for concept, mask in masks.items() if mask == self.full[concept])


def _encode_paper_partial(counts: collections.Counter, stats: ReadStats, tagged: int, hit_keys, hit_ids) -> bytes:
    keys = sorted(counts)
    concepts = np.array([concept for concept, _ in keys], dtype=np.int32)
    masks = np.array([mask for _, mask in keys], dtype=np.int64)
    columns = {"concept_index": primitive_array(concepts), "present_mask": primitive_array(masks),
               "documents": primitive_array(np.array([counts[key] for key in keys], dtype=np.int64))}
    if hit_keys is not None:
        position = {key: index for index, key in enumerate(keys)}
        columns["sample_ids"] = group_postings(len(keys), hit_ids, np.array([position[key] for key in hit_keys],
                                                                             dtype=np.int32))
    metadata = {"format": PAPER_PARTIAL_FORMAT, "rows": stats.rows, "tagged": tagged,
                "skipped": dict(sorted(stats.skipped.items()))}
    return write_partial(columns, metadata)


@dataclass
class PaperPartial:
    """Counts of one shard or several: captions per (concept, present mask); rows, tagged, skips."""

    counts: collections.Counter
    rows: int = 0
    tagged: int = 0
    skipped: collections.Counter = field(default_factory=collections.Counter)

    def merge(self, other: "PaperPartial") -> "PaperPartial":
        """Associative and commutative: sums."""
        return PaperPartial(self.counts + other.counts, self.rows + other.rows, self.tagged + other.tagged,
                            self.skipped + other.skipped)

    @staticmethod
    def decode(data: bytes) -> "PaperPartial":
        table = read_partial_table(data)
        metadata = partial_metadata(table)
        keys = zip(table.column("concept_index").to_pylist(), table.column("present_mask").to_pylist())
        counts = collections.Counter(dict(zip(keys, table.column("documents").to_pylist())))
        return PaperPartial(counts, metadata["rows"], metadata["tagged"], collections.Counter(metadata["skipped"]))


def required_masks(terms: PaperTerms, counts: collections.Counter, unknown_words: str) -> np.ndarray:
    """Per concept, the terms a caption must hold: all of them (``require``), or those some
    caption of the corpus holds (``drop``: the paper's dropping of words absent from its index;
    0 when none is present, and the concept counts nothing)."""
    required = np.array([(1 << len(indices)) - 1 for indices in terms.concept_terms], dtype=np.int64)
    if unknown_words == "drop":
        required[:] = 0
        for (concept, mask), documents in counts.items():
            if documents:
                required[concept] |= mask
    return required


def resolve_paper_counts(terms: PaperTerms, total: PaperPartial, unknown_words: str) -> tuple[np.ndarray, np.ndarray]:
    """(documents per concept, required masks) from the merged partials."""
    required = required_masks(terms, total.counts, unknown_words)
    documents = np.zeros(len(terms.concept_terms), dtype=np.int64)
    for (concept, mask), count in total.counts.items():
        if required[concept] and (mask & required[concept]) == required[concept]:
            documents[concept] += count
    return documents, required


def dropped_terms(terms: PaperTerms, concepts: ConceptList, required: np.ndarray) -> dict[str, list[str]]:
    """concept id -> its terms no caption held (dropped by ``unknown_words="drop"``)."""
    dropped = {}
    for concept, indices, mask in zip(concepts, terms.concept_terms, required.tolist()):
        missing = [terms.terms[i] for bit, i in enumerate(indices) if not mask >> bit & 1]
        if missing:
            dropped[concept.id] = missing
    return dropped
