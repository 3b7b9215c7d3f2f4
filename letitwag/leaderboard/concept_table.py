"""The per-concept table of a model page, pre-rendered.

Why not a template loop: a board of 1,000 models has 290,000 of these rows, and rendering them
cell by cell through Jinja macros was most of the build time. The parts that are the same on
every page (escaped concept name, frequency cell) are rendered once per build; per page only
the accuracy cell is formatted. Every piece of text goes through ``markupsafe.escape``.
"""

from __future__ import annotations

from typing import Sequence

from markupsafe import Markup, escape


class ConceptRows:
    """``<tr>`` rows (concept, frequency, accuracy) for any model's per-class accuracies."""

    missing = '<td data-v=""><span class="unknown">—</span></td></tr>\n'

    def __init__(self, class_names: Sequence[str], names: dict[str, str], frequencies: dict[str, int]) -> None:
        self.class_names = list(class_names)
        self.prefixes = []
        for concept in self.class_names:
            count = frequencies.get(concept)
            frequency_cell = '<td data-v="">—</td>' if count is None else f'<td data-v="{count}">{count}</td>'
            self.prefixes.append(f"<tr><td>{escape(names.get(concept, concept))}</td>{frequency_cell}")

    def render(self, per_class: dict[str, float]) -> Markup:
        get = per_class.get
        return Markup("".join(
            prefix + (self.missing if (value := get(concept)) is None else
                      f'<td data-v="{value:.6g}">{value * 100:.2f}</td></tr>\n')
            for concept, prefix in zip(self.class_names, self.prefixes)))
