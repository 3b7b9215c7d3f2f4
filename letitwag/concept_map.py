"""Which of the paper's concepts each class of a dataset is, for the frequency join.

Why: pretraining frequencies are keyed by the paper's concept ids, and datasets spell their
classes their own way (CLIP_benchmark's CIFAR-10 says ``automobile`` where the paper counted
``car``; its ImageNet names two classes ``missile``). A class is matched against the dataset's
bundled concept list in a fixed order, and the method is recorded:

1. ``rename``: an explicit rename of the catalogue (``letitwag/data/downstream_datasets.json``);
2. ``exact``: the concept id itself;
3. ``normalized``: the same normalised words (``letitwag.concepts.normalize_text`` of the display
   name: case, ``_``/``-``/punctuation ignored). The paper's lists sometimes hold one concept in
   two spellings (ImageNet-R's ``great white shark`` and ``great_white_shark``); the first in
   list order is taken;
4. ``alias``: a bundled alias of exactly one concept (``concept_aliases.json``);
5. ``reordered``: the same words in another order, of exactly one concept (Stanford Cars'
   ``AM General Hummer SUV 2000`` is the paper's ``2000 AM General Hummer SUV``; SUN397's
   ``apartment building outdoor`` its ``outdoor apartment_building``).

A class that matches none is *unmapped*: it keeps its own name, and results list it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

from letitwag.concepts import ConceptList, display_name, load_concepts, normalize_text
from letitwag.downstream import downstream_datasets, downstream_for_source

NO_CONCEPTS = "none"


def unique_class_names(names: Sequence[str]) -> list[str]:
    """``names`` with every repeat of a name after its first renamed ``NAME (class N)`` (N = its index).

    Why: per-class results are keyed by class name, so two classes sharing one (CLIP_benchmark's
    ImageNet has ``missile`` at 657 and 744) would silently merge. The catalogue's renames use
    these names (``missile (class 744)``).
    """
    seen: set[str] = set()
    unique = []
    for index, name in enumerate(names):
        unique.append(name if name not in seen else f"{name} (class {index})")
        seen.add(name)
    return unique


def _reordered(form: str) -> str:
    return " ".join(sorted(form.split()))


class _ConceptIndex:
    """Every spelling of a concept list's concepts, built once per list."""

    def __init__(self, concepts: ConceptList) -> None:
        self.ids = set(concepts.ids)
        self.by_form: dict[str, list[str]] = {}
        self.by_alias: dict[str, set[str]] = {}
        self.by_words: dict[str, set[str]] = {}
        for concept in concepts:
            forms = [normalize_text(display_name(concept.id)), concept.match_form]
            for form in dict.fromkeys(f for f in forms if f):
                self.by_form.setdefault(form, []).append(concept.id)
                self.by_words.setdefault(_reordered(form), set()).add(concept.id)
            for alias in concept.surface_forms()[1:]:
                self.by_alias.setdefault(alias, set()).add(concept.id)

    def match(self, name: str, renames: Mapping[str, str]) -> tuple[str | None, str | None]:
        """(concept id, method) of one class name, or (None, None)."""
        if renames.get(name) in self.ids:
            return renames[name], "rename"
        if name in self.ids:
            return name, "exact"
        form = normalize_text(display_name(name))
        if self.by_form.get(form):
            return self.by_form[form][0], "normalized"
        for method, lookup, key in (("alias", self.by_alias, form), ("reordered", self.by_words, _reordered(form))):
            found = lookup.get(key, set())
            if len(found) == 1:
                return next(iter(found)), method
        return None, None


@dataclass(frozen=True)
class ClassConceptMap:
    """Per class (in class order): the paper's concept id it is, or None, and how it matched."""

    concept_list: str
    class_names: tuple[str, ...]
    concepts: tuple[str | None, ...]
    methods: tuple[str | None, ...]

    @property
    def class_concepts(self) -> dict[str, str]:
        """class name -> concept id, for the classes that map."""
        return {name: concept for name, concept in zip(self.class_names, self.concepts) if concept is not None}

    @property
    def unmapped(self) -> list[str]:
        return [name for name, concept in zip(self.class_names, self.concepts) if concept is None]

    def to_json(self) -> dict:
        """The ``dataset.concepts`` object of classification results (docs/FORMATS.md)."""
        methods = Counter(method for method in self.methods if method is not None)
        return {"list": self.concept_list, "class_concepts": self.class_concepts, "unmapped": self.unmapped,
                "match": {method: methods.get(method, 0) for method in ("rename", "exact", "normalized", "alias",
                                                                        "reordered")}}


def map_classes(class_names: Sequence[str], concepts: ConceptList,
                renames: Mapping[str, str] | None = None) -> ClassConceptMap:
    """Match every class name against ``concepts`` (module docstring for the order)."""
    index = _ConceptIndex(concepts)
    matched = [index.match(name, renames or {}) for name in class_names]
    return ClassConceptMap(concepts.name, tuple(class_names), tuple(m[0] for m in matched),
                           tuple(m[1] for m in matched))


def class_concept_map(class_names: Sequence[str], source: str, spec: str | None = None) -> ClassConceptMap | None:
    """The map of ``source``'s classes: to ``spec`` (a bundled list name or a file; ``none``: no map), or
    by default to the bundled list of the paper's dataset ``source`` is (None for an unknown dataset).

    Renames are those the catalogue gives for the list's name (they apply only where their target is in it).
    """
    if spec == NO_CONCEPTS:
        return None
    known = downstream_for_source(source)
    if spec is None and known is None:
        return None
    concepts = load_concepts(spec or known.name)
    entry = next((d for d in downstream_datasets() if d.name == concepts.name), None)
    return map_classes(class_names, concepts, entry.renames if entry else {})
