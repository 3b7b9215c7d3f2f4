"""The English lemma table used by the frequency engine, read straight from ``spacy-lookups-data``.

Why a lookup table and not a tagger: spaCy's English pipelines are not installable offline and a
tagger is far too slow for billions of captions. ``spacy-lookups-data`` ships spaCy's own
word -> lemma lookup table inside its wheel, so reading that file directly gives the same lemmas
as ``spacy.blank("en")`` with the ``lookup`` lemmatizer, without importing spaCy at run time.

Matching works on *normalised* tokens (``letitwag.concepts.normalize_text``: lower-case,
alphanumeric runs), so only entries whose key already is such a token are usable; a lemma is
normalised the same way and kept only when it is a single token. Every other token is its own
lemma. ``forms_of`` inverts the table so that lemmatisation can move from the captions onto the
concept patterns (``dog`` -> ``dog``, ``dogs``), which is what makes the matcher fast.
"""

from __future__ import annotations

import functools
import gzip
import json
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import metadata, resources

from letitwag.concepts import normalize_text

LEMMA_PACKAGE = "spacy_lookups_data"
LEMMA_FILE = "en_lemma_lookup.json.gz"


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

    @property
    def parameters(self) -> dict:
        return {"name": self.name, "version": self.version, "entries": len(self.lemmas)}


def _usable_entries(raw: dict[str, str]) -> dict[str, str]:
    """Keep entries whose key is a normalised single token and whose lemma normalises to one
    token; spaCy looks tokens up case-sensitively, and captions are lower-cased, so capitalised
    keys (``Afghans``) can never be hit and are dropped, exactly as spaCy would miss them."""
    usable: dict[str, str] = {}
    for key, value in raw.items():
        if key != normalize_text(key) or " " in key or not key:
            continue
        lemma = normalize_text(value)
        if lemma and " " not in lemma and lemma != key:
            usable[key] = lemma
    return usable


def read_raw_lookup_table() -> dict[str, str]:
    """spaCy's English lookup lemma table exactly as shipped in the ``spacy-lookups-data`` wheel."""
    data_file = resources.files(LEMMA_PACKAGE).joinpath("data", LEMMA_FILE)
    with data_file.open("rb") as handle:
        return json.loads(gzip.decompress(handle.read()).decode("utf-8"))


@functools.lru_cache(maxsize=1)
def english_lemmas() -> LemmaTable:
    """The English lemma table (loaded once per process, ~50 ms)."""
    try:
        version = metadata.version("spacy-lookups-data")
    except metadata.PackageNotFoundError:  # pragma: no cover - importable but not installed as a dist
        version = "unknown"
    return LemmaTable(_usable_entries(read_raw_lookup_table()), version=version)
