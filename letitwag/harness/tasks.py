"""The task registry: a task is a module with ``run(options, model) -> (fields, predictions)``.

Tasks: ``classification`` (zero-shot), ``retrieval`` (image-text, both directions) and ``t2i``
(text-to-image generation).

Adding a task means adding one module and one entry here, plus its
``LOADERS`` kind (``encoder`` or ``generator``) and its predictions table builder.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from letitwag.errors import UserInputError
from letitwag.harness.results import classification_table, retrieval_table
from letitwag.harness.t2i.predictions import t2i_table


@dataclass(frozen=True)
class Task:
    name: str
    module: str  # has run(options, model) -> (results fields, predictions columns)
    loads: str  # "encoder" or "generator"
    table: Callable  # predictions columns -> pyarrow table

    def run(self, options, model):
        return importlib.import_module(self.module).run(options, model)


TASKS: dict[str, Task] = {
    "classification": Task("classification", "letitwag.harness.classification", "encoder", classification_table),
    "retrieval": Task("retrieval", "letitwag.harness.retrieval", "encoder", retrieval_table),
    "t2i": Task("t2i", "letitwag.harness.t2i.task", "generator", t2i_table),
}


def get_task(name: str) -> Task:
    if name in TASKS:
        return TASKS[name]
    raise UserInputError(f"unknown --task {name!r}; choose one of {', '.join(TASKS)}")
