"""Concepts and concept lists: stable ids, display names, match forms, aliases.

The paper's released lists mix spellings (``Acadian_Flycatcher``, ``"A300B4"``,
``eastern_hog-nosed_snake``, ``Harriss_Hawk``). Every stage keys its files on the *id* —
the original string exactly as released — so results from different stages always join.
The *display name* is for people; the *match form* is what the frequency engine searches
for. Aliases are extra surface strings (typos fixed, possessives restored) that count for
the same concept; they are data, never hard-coded in the matching code.

``normalize_text`` is the single normalisation used for concept names *and* captions, so a
concept can only match text that normalises to the same tokens. The frequency engine uses an
Arrow re-implementation of it (tested to be identical).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from letitwag.errors import UserInputError

CONCEPT_LIST_FORMAT = "letitwag.concepts/1"

# Anything that is not a letter or a digit separates tokens (Python's \W plus "_").
_SEPARATORS = re.compile(r"[\W_]+")


class ConceptListError(UserInputError):
    """A concept list that cannot be used; the message names the file and what to do."""


def normalize_text(text: str) -> str:
    """Lower-case ``text`` and turn every run of non-alphanumeric characters into one space.

    Why this shape: hyphen/space/underscore variants (``hog-nosed`` / ``hog nosed``) and
    punctuation (``dog's`` becomes ``dog s``) then tokenise identically on both sides, and a
    word boundary is simply a space.
    """
    return _SEPARATORS.sub(" ", text.lower()).strip()


def tokens(text: str) -> list[str]:
    """The match tokens of ``text`` (``normalize_text`` split on spaces)."""
    normalized = normalize_text(text)
    return normalized.split(" ") if normalized else []


def display_name(concept_id: str) -> str:
    """Human-readable name: surrounding quotes dropped, underscores as spaces."""
    return concept_id.strip().strip('"').replace("_", " ").strip()


@dataclass(frozen=True)
class Concept:
    """One concept: ``id`` is the stable key; ``aliases`` are extra strings that count for it."""

    id: str
    name: str = ""
    aliases: tuple[str, ...] = ()
    source: str = ""
    metadata: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", display_name(self.id))

    @property
    def match_form(self) -> str:
        """The normalised token string the frequency engine searches for."""
        return normalize_text(self.name)

    def surface_forms(self) -> list[str]:
        """Match forms of the name and every alias, de-duplicated, in a stable order."""
        forms: list[str] = []
        for text in (self.name, *self.aliases):
            form = normalize_text(text)
            if form and form not in forms:
                forms.append(form)
        return forms

    def to_json(self) -> dict:
        record = {"id": self.id, "name": self.name}
        if self.aliases:
            record["aliases"] = list(self.aliases)
        if self.source:
            record["source"] = self.source
        if self.metadata:
            record["metadata"] = self.metadata
        return record


class ConceptList(Sequence[Concept]):
    """An ordered list of unique concepts; the order is the class-index order everywhere."""

    def __init__(self, concepts: Iterable[Concept], name: str = "") -> None:
        self._concepts = list(concepts)
        self.name = name
        self._by_id: dict[str, int] = {}
        for index, concept in enumerate(self._concepts):
            if concept.id in self._by_id:
                raise ConceptListError(f"concept list {name or '<memory>'}: duplicate concept id {concept.id!r}")
            self._by_id[concept.id] = index

    def __getitem__(self, index):  # type: ignore[override]
        return self._concepts[index]

    def __len__(self) -> int:
        return len(self._concepts)

    def __iter__(self) -> Iterator[Concept]:
        return iter(self._concepts)

    @property
    def ids(self) -> list[str]:
        return [concept.id for concept in self._concepts]

    def index(self, concept_id: str) -> int:  # type: ignore[override]
        """Class index of ``concept_id``; ``KeyError`` if absent."""
        return self._by_id[concept_id]

    def get(self, concept_id: str) -> Concept | None:
        index = self._by_id.get(concept_id)
        return None if index is None else self._concepts[index]

    def find(self, query: str) -> Concept | None:
        """Look a concept up by id, display name or any alias, ignoring case and punctuation."""
        if query in self._by_id:
            return self._concepts[self._by_id[query]]
        wanted = normalize_text(query)
        for concept in self._concepts:
            if wanted in concept.surface_forms():
                return concept
        return None

    def to_json(self) -> dict:
        return {"format": CONCEPT_LIST_FORMAT, "name": self.name, "concepts": [c.to_json() for c in self]}

    def write(self, path: str | Path) -> None:
        """Write the list as JSON atomically (temp file + rename)."""
        from letitwag.io import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n")


# --- bundled lists -------------------------------------------------------------------------

def bundled_downstream_names() -> list[str]:
    """Names of the bundled downstream concept lists (the paper's 27 evaluation sets)."""
    from letitwag.data import read_bundled_table

    return sorted(set(read_bundled_table("concept_lists.parquet").column("downstream").to_pylist()))


def _bundled_aliases() -> dict[str, list[str]]:
    text = resources.files("letitwag.data").joinpath("concept_aliases.json").read_text(encoding="utf-8")
    return {key: value for key, value in json.loads(text).items() if not key.startswith("_")}


def bundled_concepts(name: str) -> ConceptList:
    """A bundled concept list.

    ``name`` is a downstream dataset of the paper (``imagenet``, ``cub``, ``coco``, ``t2i``, ...),
    ``let-it-wag`` for the 290 Let it Wag! classes, or ``all`` for the union of every
    downstream list (the paper's 4,000+ concepts), de-duplicated by id in first-seen order.
    """
    from letitwag.data import read_bundled_json, read_bundled_table

    aliases = _bundled_aliases()
    if name == "let-it-wag":
        ids = read_bundled_json("let_it_wag_classes.json")
        return ConceptList((Concept(i, aliases=tuple(aliases.get(i, ())), source="let-it-wag") for i in ids), name)
    table = read_bundled_table("concept_lists.parquet").to_pylist()
    known = sorted({row["downstream"] for row in table})
    if name != "all" and name not in known:
        raise ConceptListError(
            f"unknown bundled concept list {name!r}: use one of all, let-it-wag, {', '.join(known)} or a file path"
        )
    concepts: dict[str, Concept] = {}
    for row in table:
        # The release's COCO list holds one empty-string concept; it names nothing, so skip it.
        if not row["concept"].strip():
            continue
        if name in ("all", row["downstream"]) and row["concept"] not in concepts:
            concept_id = row["concept"]
            concepts[concept_id] = Concept(concept_id, aliases=tuple(aliases.get(concept_id, ())), source=row["downstream"])
    return ConceptList(concepts.values(), name)


# --- files ---------------------------------------------------------------------------------

def _from_json(path: Path, text: str) -> ConceptList:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConceptListError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}); fix the file") from None
    records = data.get("concepts") if isinstance(data, dict) else data
    if isinstance(data, dict) and records is None:
        raise ConceptListError(f"{path}: a JSON concept list needs a 'concepts' array")
    concepts = []
    for row, record in enumerate(records, start=1):
        if isinstance(record, str):
            concepts.append(Concept(record))
        elif isinstance(record, dict) and isinstance(record.get("id"), str) and record["id"].strip():
            concepts.append(
                Concept(
                    record["id"],
                    name=record.get("name", ""),
                    aliases=tuple(record.get("aliases", ())),
                    source=record.get("source", ""),
                    metadata=record.get("metadata", {}),
                )
            )
        else:
            raise ConceptListError(f"{path}: concept {row} has no string 'id'; give each concept an id")
    return ConceptList(concepts, data.get("name", path.stem) if isinstance(data, dict) else path.stem)


def _from_csv(path: Path, text: str, delimiter: str) -> ConceptList:
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    if not reader.fieldnames or "id" not in reader.fieldnames:
        raise ConceptListError(f"{path}: a CSV/TSV concept list needs an 'id' column (optional: name, aliases)")
    concepts = []
    for row, record in enumerate(reader, start=2):
        if not (record.get("id") or "").strip():
            raise ConceptListError(f"{path}: row {row} has an empty id")
        aliases = tuple(a for a in (record.get("aliases") or "").split("|") if a)
        concepts.append(Concept(record["id"], name=record.get("name") or "", aliases=aliases))
    return ConceptList(concepts, path.stem)


def load_concepts(spec: str | Path) -> ConceptList:
    """Load a concept list from a bundled name or a file (JSON, CSV/TSV with an ``id`` column, or text).

    A text file has one concept id per line; surrounding double quotes are dropped, as in the
    released ``let_it_wag_class_list.txt``.
    """
    path = Path(spec)
    if not path.exists():
        if isinstance(spec, str) and "/" not in spec and not path.suffix:
            return bundled_concepts(spec)
        raise ConceptListError(f"{spec}: no such concept list file (or bundled list name)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConceptListError(f"{path}: cannot read concept list ({error}); give a UTF-8 file") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        concepts = _from_json(path, text)
    elif suffix in (".csv", ".tsv"):
        concepts = _from_csv(path, text, "\t" if suffix == ".tsv" else ",")
    else:
        ids = [line.strip().strip('"') for line in text.splitlines()]
        concepts = ConceptList((Concept(i) for i in ids if i), path.stem)
    if len(concepts) == 0:
        raise ConceptListError(f"{path}: the concept list is empty; give at least one concept")
    return concepts
