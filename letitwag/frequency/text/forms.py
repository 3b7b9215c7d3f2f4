"""Word forms: which caption tokens count for a concept word in the fast modes (``phrase``, ``bag``).

Why forms and not lemmas of the captions: lemmatising billions of captions is far too slow, so
the matcher inverts the lemmatiser instead and searches for every caption form of each concept
word. Two sources of forms, both read straight from the ``spacy-lookups-data`` wheel (spaCy
itself is not imported):

* ``NounForms`` (the default, ``--forms noun``): spaCy's *rule* lemmatiser reading a token as a
  noun, built from the per-part-of-speech tables spaCy's English pipelines use
  (``en_lemma_rules``: suffix rules, ``en_lemma_exc``: irregular forms, ``en_lemma_index``:
  known words). A concept word's forms are the word itself and every token that spaCy's noun
  lemmatiser maps to it: regular plurals from the noun rules, also for words in no index
  (``chickadees``, ``jetliners``), and irregular ones from the exceptions (``geese``,
  ``leaves``). Possessives need nothing: ``normalize_text`` turns ``wolves'`` into ``wolves`` and
  ``children's`` into ``children s``. Verb-only and adjective-only forms are not forms of a
  noun (``is`` is not ``being``, ``stands`` not ``standing``). The forms are found by inverting
  every rule and exception, then checked by running the lemmatiser forward, so they are exactly
  the tokens the lemmatiser maps to the word (``vases`` goes to ``vas``, as in spaCy).
  A concept word is first read as a noun itself (``concept_words="lemma"``, the default): where
  the noun lemmatiser, reading it as a plural, maps it to another word its tables know, the word
  counts through that lemma's forms ("men" through "man", "men", ...; "airplanes" through
  "airplane", "airplanes"), because the paper lemmatised every concept word before searching
  and its tables count "men" as "man". ``ambiguous_forms`` says which of a word's forms are also
  verb, adjective or adverb forms, or spaCy English stop words.
* ``LemmaTable`` (``--forms lookup``): spaCy's part-of-speech-blind lookup table, the engine's
  earlier behaviour, kept on request. Every word of a concept and of a caption is replaced by
  its lookup lemma, so it also maps ``is`` to ``be`` and ``leaves`` to ``leave``, and it knows
  only the forms it lists.

Both speak the ``WordForms`` protocol the matcher builds its patterns from: a concept word
accepts some *keys* (``alternatives``), and each key is a set of caption tokens
(``surface_forms``); the keys of one source never share a token.

Matching works on *normalised* tokens (``letitwag.concepts.normalize_text``: lower-case,
alphanumeric runs), so only table entries that are such tokens are usable.
"""

from __future__ import annotations

import functools
import gzip
import json
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import metadata, resources
from typing import Iterable, Mapping, Protocol, Sequence

from letitwag.concepts import normalize_text
from letitwag.data import read_bundled_json

LEMMA_PACKAGE = "spacy_lookups_data"
LEMMA_FILE = "en_lemma_lookup.json.gz"
RULE_TABLE_FILES = {"rules": "en_lemma_rules.json.gz", "exceptions": "en_lemma_exc.json.gz",
                    "index": "en_lemma_index.json.gz"}
FORMS_SOURCES = ("noun", "lookup")
# the parts of speech whose forms make a noun reading uncertain (``pos_ambiguous``)
OTHER_PARTS_OF_SPEECH = ("verb", "adj", "adv")
STOP_WORD = "stop word"  # the other reason: a word spaCy lists as an English stop word
STOP_WORDS_FILE = "spacy_en_stop_words.json"
# how the noun forms read a concept word: through its noun lemma (the paper's reading) or as written
CONCEPT_WORDS = ("lemma", "as-written")
# Version of the rule-inversion logic below (spaCy 3.8's ``Lemmatizer.rule_lemmatize``); part of
# every fingerprint, so a change to it recomputes stored shards.
NOUN_FORMS_ALGORITHM = "spacy-3.8-rule-lemmatize/1"


class WordForms(Protocol):
    """What the matcher needs from a source of word forms."""

    def alternatives(self, word: str, inflect: bool) -> tuple[str, ...]:
        """The keys a concept word accepts; ``inflect=False`` for words a ``phrase`` pattern
        keeps as written (all but the last)."""

    def surface_forms(self, key: str) -> tuple[str, ...]:
        """The caption tokens that are read as ``key``."""

    @property
    def parameters(self) -> dict:
        """Name and version, for provenance and shard fingerprints."""


def is_token(text: str) -> bool:
    """Whether ``text`` is one normalised token, the only thing a caption token can be."""
    return bool(text) and text == normalize_text(text) and " " not in text


def _package_version() -> str:
    try:
        return metadata.version("spacy-lookups-data")
    except metadata.PackageNotFoundError:  # pragma: no cover - importable but not installed as a dist
        return "unknown"


def _read_table(file_name: str):
    data_file = resources.files(LEMMA_PACKAGE).joinpath("data", file_name)
    with data_file.open("rb") as handle:
        return json.loads(gzip.decompress(handle.read()).decode("utf-8"))


# --- spaCy's rule lemmatiser, as a noun ----------------------------------------------------

@dataclass(frozen=True, eq=False)
class RuleLemmatizer:
    """spaCy's rule lemmatiser for one part of speech (``Lemmatizer.rule_lemmatize``, spaCy 3.8),
    for a token that is *not* in its base form (the lemmatiser returns a base form unchanged).

    ``rules``: ``[[old suffix, new suffix], ...]`` in order; ``exceptions``: form -> lemmas;
    ``index``: the known lemmas.
    """

    rules: tuple[tuple[str, str], ...]
    exceptions: Mapping[str, Sequence[str]]
    index: frozenset[str]

    def lemmas(self, token: str) -> list[str]:
        """spaCy's candidate lemmas of ``token``, best first (spaCy's lemma is the first)."""
        string = token.lower()
        forms: list[str] = []
        unknown: list[str] = []
        for old, new in self.rules:
            if string.endswith(old):
                form = string[: len(string) - len(old)] + new
                if not form:
                    continue
                if form in self.index:
                    forms.insert(0, form)
                elif not form.isalpha():
                    forms.append(form)
                else:
                    unknown.append(form)
        forms = list(dict.fromkeys(forms))
        for form in self.exceptions.get(string, ()):
            if form not in forms:
                forms.insert(0, form)
        return forms or unknown or [token]

    def lemma(self, token: str) -> str:
        return self.lemmas(token)[0]

    def inflections(self, lemma: str) -> set[str]:
        """Every token whose lemma is ``lemma`` (the lemma itself only if it maps to itself).

        Each rule ``old -> new`` can only produce ``lemma`` from ``lemma[:-len(new)] + old``,
        and an exception only from its key, so inverting them lists every candidate; the
        forward check keeps those the lemmatiser really maps to ``lemma``.
        """
        candidates = {lemma[: len(lemma) - len(new)] + old for old, new in self.rules if lemma.endswith(new)}
        candidates.update(self._exception_forms.get(lemma, ()))
        return {candidate for candidate in candidates if self.lemma(candidate) == lemma}

    @functools.cached_property
    def _exception_forms(self) -> dict[str, set[str]]:
        inverse: dict[str, set[str]] = defaultdict(set)
        for form, lemmas in self.exceptions.items():
            for lemma in lemmas:
                inverse[lemma].add(form)
        return inverse


def rule_lemmatizers(rules: Mapping, exceptions: Mapping, index: Mapping,
                     parts_of_speech: Iterable[str]) -> dict[str, RuleLemmatizer]:
    """One ``RuleLemmatizer`` per part of speech from spaCy's three lemma tables (as stored in
    ``spacy-lookups-data`` or in a pipeline's ``lemmatizer.lookups``)."""
    return {
        pos: RuleLemmatizer(tuple((old, new) for old, new in rules.get(pos, ())), dict(exceptions.get(pos, {})),
                            frozenset(index.get(pos, ())))
        for pos in parts_of_speech
    }


@dataclass(frozen=True, eq=False)
class NounForms:
    """Caption forms of concept words read as nouns by spaCy's rule lemmatiser (see the module
    docstring), and which of them a verb, adjective or adverb reading also explains."""

    noun: RuleLemmatizer
    others: Mapping[str, RuleLemmatizer] = field(default_factory=dict)
    stop_words: frozenset[str] = frozenset()
    concept_words: str = "lemma"
    name: str = "spacy-lookups-data:en_lemma_rules+en_lemma_exc+en_lemma_index (noun)"
    version: str = ""

    def lemma(self, token: str) -> str:
        """The noun lemma of a (plural) caption token."""
        return self.noun.lemma(token)

    def concept_lemma(self, word: str) -> str:
        """How a concept word is read before its forms are generated: as written with
        ``concept_words="as-written"``; else its noun lemma where spaCy's noun lemmatiser, reading
        the word as a plural, maps it to another word its tables know (an irregular form's
        listed lemma, or a noun of the index): "men" -> "man", "airplanes" -> "airplane",
        "jeans" -> "jean", "children" -> "child". Why: the paper lemmatised each concept word
        with its pipeline before searching, so its tables count the lemma's captions. A word
        whose rule lemma no table knows is a singular noun and stays ("glass", not "glas")."""
        if self.concept_words == "as-written":
            return word
        lemma = self.noun.lemma(word)
        known = word in self.noun.exceptions or lemma in self.noun.index
        return lemma if lemma != word and known and is_token(lemma) else word

    def forms_of(self, word: str) -> tuple[str, ...]:
        """The word itself and every normalised token spaCy's noun lemmatiser maps to it, sorted."""
        cache = self._cache
        if word not in cache:
            cache[word] = tuple(sorted({word} | {form for form in self.noun.inflections(word) if is_token(form)}))
        return cache[word]

    @functools.cached_property
    def _cache(self) -> dict[str, tuple[str, ...]]:
        return {}

    def alternatives(self, word: str, inflect: bool) -> tuple[str, ...]:
        return self.forms_of(self.concept_lemma(word)) if inflect else (word,)

    def surface_forms(self, key: str) -> tuple[str, ...]:
        return (key,)

    def ambiguous_forms(self, word: str) -> dict[str, list[str]]:
        """``{form: [reading, ...]}`` for the forms of concept word ``word`` that a tagger may
        not read as a noun: also a verb, adjective or adverb form (the form is a known word of
        that part of speech: ``white``, ``on``; one of its listed irregular forms: ``left``; or a
        regular inflection of a known word: ``runs``, ``leaves``: the verb rules lead to ``run``,
        ``leave``), or one of spaCy's English stop words (``STOP_WORD``: mostly pronouns,
        determiners, prepositions and conjunctions, which the per-part-of-speech indexes do not
        list: ``her``, ``someone``, ``and``). Adjective and adverb comparatives (``-er``,
        ``-est``) are left out: they are rarely nouns' forms."""
        found: dict[str, list[str]] = {}
        for form in self.forms_of(self.concept_lemma(word)):
            for pos, lemmatizer in self.others.items():
                if form in lemmatizer.index or form in lemmatizer.exceptions or (
                        pos == "verb" and lemmatizer.lemma(form) in lemmatizer.index):
                    found.setdefault(form, []).append(pos)
            if form in self.stop_words:
                found.setdefault(form, []).append(STOP_WORD)
        return found

    def pos_ambiguous(self, texts: Iterable[str]) -> bool:
        """Whether some word of these normalised texts (a concept's name and aliases) has a form
        that is also a verb, adjective or adverb form or a stop word: a tagger may not read it
        as a noun, so a fast count can part from ``--mode paper``'s. Deliberately broad (the
        tables list rare readings too: ``dog`` is a verb there); a concept not flagged rarely
        parts."""
        return any(self.ambiguous_forms(word) for text in texts for word in text.split(" ") if word)

    @property
    def parameters(self) -> dict:
        return {"forms": "noun", "forms_source": self.name, "forms_version": self.version,
                "forms_algorithm": NOUN_FORMS_ALGORITHM, "concept_words": self.concept_words}


@functools.lru_cache(maxsize=1)
def _english_rule_lemmatizers() -> dict[str, RuleLemmatizer]:
    """spaCy's English rule lemmatisers, noun and the other parts of speech (read once per
    process, ~0.3 s; immutable, so both concept-word readings share them)."""
    tables = {kind: _read_table(file_name) for kind, file_name in RULE_TABLE_FILES.items()}
    return rule_lemmatizers(tables["rules"], tables["exceptions"], tables["index"], ("noun",) + OTHER_PARTS_OF_SPEECH)


@functools.lru_cache(maxsize=len(CONCEPT_WORDS))
def english_noun_forms(concept_words: str = "lemma") -> NounForms:
    """Noun forms from spaCy's English rule tables; ``concept_words``: ``lemma`` (default:
    concept words read through their noun lemma, as the paper read them) or ``as-written``."""
    if concept_words not in CONCEPT_WORDS:
        raise ValueError(f"unknown concept-word reading {concept_words!r}; use one of {', '.join(CONCEPT_WORDS)}")
    lemmatizers = dict(_english_rule_lemmatizers())
    noun = lemmatizers.pop("noun")
    stop_words = frozenset(read_bundled_json(STOP_WORDS_FILE)["words"])
    return NounForms(noun, lemmatizers, stop_words, concept_words, version=_package_version())


# --- the part-of-speech-blind lookup table (``--forms lookup``) ----------------------------

@dataclass(frozen=True)
class LemmaTable:
    """token -> lemma for normalised English tokens, and its inverse lemma -> forms."""

    lemmas: dict[str, str]
    name: str = "spacy-lookups-data:en_lemma_lookup"
    version: str = ""
    _forms: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        inverse: dict[str, list[str]] = defaultdict(list)
        for token, lemma in self.lemmas.items():
            inverse[lemma].append(token)
        object.__setattr__(self, "_forms", {lemma: tuple(sorted(tokens)) for lemma, tokens in inverse.items()})

    def lemma(self, token: str) -> str:
        """The lemma of one normalised token (the token itself when the table does not know it)."""
        return self.lemmas.get(token, token)

    def forms_of(self, lemma: str) -> tuple[str, ...]:
        """Every normalised token whose lemma is ``lemma``, sorted; always includes ``lemma``
        itself unless the table maps that very string to another lemma."""
        forms = set(self._forms.get(lemma, ()))
        if self.lemma(lemma) == lemma:
            forms.add(lemma)
        return tuple(sorted(forms))

    def alternatives(self, word: str, inflect: bool) -> tuple[str, ...]:
        """Every word, inflected or not, stands for its lemma (captions are read the same way)."""
        return (self.lemma(word),)

    def surface_forms(self, key: str) -> tuple[str, ...]:
        return self.forms_of(key)

    @property
    def parameters(self) -> dict:
        return {"forms": "lookup", "forms_source": self.name, "forms_version": self.version,
                "entries": len(self.lemmas)}


def _usable_entries(raw: dict[str, str]) -> dict[str, str]:
    """Keep entries whose key is a normalised single token and whose lemma normalises to one
    token; spaCy looks tokens up case-sensitively, and captions are lower-cased, so capitalised
    keys (``Afghans``) can never be hit and are dropped, exactly as spaCy would miss them."""
    usable: dict[str, str] = {}
    for key, value in raw.items():
        if not is_token(key):
            continue
        lemma = normalize_text(value)
        if lemma and " " not in lemma and lemma != key:
            usable[key] = lemma
    return usable


def read_raw_lookup_table() -> dict[str, str]:
    """spaCy's English lookup lemma table exactly as shipped in the ``spacy-lookups-data`` wheel."""
    return _read_table(LEMMA_FILE)


@functools.lru_cache(maxsize=1)
def english_lemmas() -> LemmaTable:
    """The English lookup lemma table (loaded once per process, ~50 ms)."""
    return LemmaTable(_usable_entries(read_raw_lookup_table()), version=_package_version())


def word_forms(source: str, concept_words: str = "lemma") -> WordForms:
    """The English word forms of a ``--forms`` source: ``noun`` (default) or ``lookup``;
    ``concept_words`` (``lemma`` or ``as-written``) is for noun forms: the lookup table always
    reads concept words through its lemmas."""
    if source == "noun":
        return english_noun_forms(concept_words)
    if source == "lookup":
        if concept_words != "lemma":
            raise ValueError("--concept-words as-written is for --forms noun; --forms lookup reads every concept "
                             "word through its lookup lemma")
        return english_lemmas()
    raise ValueError(f"unknown word-form source {source!r}; use one of {', '.join(FORMS_SOURCES)}")
