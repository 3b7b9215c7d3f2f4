"""The paper's evaluation datasets: what each is called, where to get it, which concept list goes with it.

Why one catalogue (``letitwag/data/downstream_datasets.json``): the harness needs it to tag
captions and to map class names to the paper's concept ids, the paper suite needs it to find
each dataset under a data folder (or on the Hub) and to say how to get a missing one, and the
analysis needs to know which datasets the paper pooled. Keyed by the paper's own dataset names,
which are also the names of the bundled concept lists (``cifar10``, ``coco``, ``let-it-wag``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from letitwag.errors import UserInputError

CATALOGUE_FILE = "downstream_datasets.json"
CLIP_BENCHMARK_HUB = "clip-benchmark/"


@dataclass(frozen=True)
class DownstreamDataset:
    """One evaluation dataset of the paper."""

    name: str  # the paper's name, also the bundled concept list's
    task: str  # "classification" | "retrieval"
    description: str
    datasets: tuple[str, ...]  # Hub ids / exports that hold it
    hub: str | None  # what the suite loads from the Hub; None: not published in a loadable layout
    renames: dict[str, str] = field(default_factory=dict)

    def folder_names(self) -> list[str]:
        """Folder names a local copy goes by: the last part of each id (``wds_vtab-cifar10``), then the name."""
        names = [source.rstrip("/").split("/")[-1] for source in self.datasets]
        return list(dict.fromkeys([*names, self.name]))

    def how_to_get(self, data_root: str | Path) -> str:
        """One line telling a user how to put this dataset under ``data_root``."""
        root = Path(data_root)
        if self.hub and self.hub.startswith(CLIP_BENCHMARK_HUB):
            folder = root / self.hub.split("/")[-1]
            return (f"hf download {self.hub} --repo-type dataset --include '*.txt' --include 'test/*' "
                    f"--local-dir {folder}")
        if self.hub:
            return f"hf download {self.hub} --repo-type dataset --local-dir {root / self.hub.split('/')[-1]}"
        return (f"no public copy in a layout letitwag reads (not in CLIP_benchmark's collection): put the test "
                f"split at {root / self.name} as class folders ({self.name}/<class>/*.jpg, class names as the "
                f"paper's '{self.name}' concept list), a Hugging Face layout or a save_to_disk folder")


@functools.lru_cache(maxsize=1)
def downstream_datasets() -> tuple[DownstreamDataset, ...]:
    """Every dataset of the catalogue, in its order (Let it Wag!, classification, retrieval)."""
    from letitwag.data import read_bundled_json

    return tuple(
        DownstreamDataset(name=name, task=entry["task"], description=entry["description"],
                          datasets=tuple(entry["datasets"]), hub=entry.get("hub"),
                          renames=dict(entry.get("renames", {})))
        for name, entry in read_bundled_json(CATALOGUE_FILE).items() if not name.startswith("_")
    )


def downstream_dataset(name: str) -> DownstreamDataset:
    """The catalogue entry called ``name``."""
    for dataset in downstream_datasets():
        if dataset.name == name:
            return dataset
    known = ", ".join(d.name for d in downstream_datasets())
    raise UserInputError(f"unknown evaluation dataset {name!r}; the paper's are: {known}")


def downstream_for_source(source: str | Path) -> DownstreamDataset | None:
    """The catalogue entry a dataset id or a local copy's folder is (matched by Hub id or folder name)."""
    text = str(source).rstrip("/")
    name = Path(text).name
    for dataset in downstream_datasets():
        if text in dataset.datasets or name in dataset.folder_names():
            return dataset
    return None


def concept_list_for_dataset(source: str | Path) -> str | None:
    """The bundled concept list of a known downstream dataset (``coco`` for
    ``nlphuji/mscoco_2014_5k_test_image_text_retrieval`` or ``./wds_mscoco_captions``, ...); None if unknown."""
    dataset = downstream_for_source(source)
    return None if dataset is None else dataset.name
