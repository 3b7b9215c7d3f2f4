"""Demo step 3: a mini Let it Wag!-style build, every stage through the project's own API.

Drawn images (``demo.images``) -> ``knn build`` over the unlabelled pool with a tiny
RANDOM-WEIGHT open_clip -> ``knn serve`` on a free loopback port -> ``collect`` from that backend
and from the labelled ``folder:`` tree -> ``curate`` -> ``publish`` (HF Hub layout) -> loaded
back with ``datasets.load_dataset``. With random weights the kNN answers are arbitrary images of
the pool: the step proves the plumbing, not retrieval quality.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from letitwag.concepts import ConceptList
from letitwag.demo.images import LICENSE, draw_image_set
from letitwag.builders.knn.background import served_index
from letitwag.demo.timing import timed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildSizes:
    """How big the mini build is (the test uses the smallest that still exercises every stage)."""

    per_concept: int = 14
    pool_per_concept: int = 6
    knn_num_images: int = 4
    per_class: int = 12


@dataclass(frozen=True)
class BuildOutputs:
    images: Path
    model_spec: str
    knn_index: Path
    candidates: Path
    curated: Path
    hub: Path
    facts: dict


def build_tiny_clip(folder: Path, seed: int) -> str:
    """The tiny random-weight open_clip shared by the kNN index, curation and evaluation."""
    from letitwag.models.tiny import build_tiny_open_clip

    return build_tiny_open_clip(folder, seed=seed)


def load_back(hub_dir: Path) -> dict:
    """``datasets.load_dataset(<dir>)`` exactly as a user would; its splits, rows and classes."""
    import datasets

    loaded = datasets.load_dataset(str(hub_dir))
    facts = {}
    for split, rows in loaded.items():
        names = rows.features["label"].names
        facts[split] = {"rows": rows.num_rows, "classes": len(names),
                        "rows_per_class": {names[i]: n for i, n in sorted(Counter(rows["label"]).items())}}
    return facts


def _by_source(curated_dir: Path) -> dict[str, dict[str, int]]:
    """Candidates and kept images per source: shows what the kNN backend contributed after curation."""
    from letitwag.builders.manifest import read_curated

    counts: dict[str, dict[str, int]] = {}
    for row in read_curated(curated_dir).table.select(["source", "kept"]).to_pylist():
        entry = counts.setdefault(row["source"], {"candidates": 0, "kept": 0})
        entry["candidates"] += 1
        entry["kept"] += int(bool(row["kept"]))
    return counts


def run_mini_build(out: Path, concepts: ConceptList, model_spec: str, sizes: BuildSizes, seed: int) -> BuildOutputs:
    """Run every stage into ``out`` (rebuilt from scratch by the caller); returns paths and facts."""
    from letitwag.builders.collect import CollectOptions, collect
    from letitwag.builders.curate import CurateConfig, curate
    from letitwag.builders.knn.build import build_index
    from letitwag.builders.publish import PublishOptions, publish

    seconds: dict[str, float] = {}
    with timed(seconds, "draw images"):
        images = draw_image_set(out / "images", concepts, sizes.per_concept, sizes.pool_per_concept, seed=seed)
    with timed(seconds, "knn build"):
        index = build_index(images.pool, model_spec, out / "knn-index", batch_size=32, chunk_size=256, threads=1)
    with timed(seconds, "knn serve start+stop"), served_index([f"demo={index}"], out / "knn-serve.log") as url:
        options = CollectOptions(knn_num_images=sizes.knn_num_images, knn_max_templates=1, retries=1, timeout=60)
        with timed(seconds, "collect"):
            candidates = collect(concepts, [f"folder:{images.labelled}", f"knn:{url}"], out / "candidates", options)
    seconds["knn serve start+stop"] = round(seconds["knn serve start+stop"] - seconds["collect"], 2)
    concepts_file = out / "concepts.json"
    concepts.write(concepts_file)  # class order and display names travel to curation and the card
    config = CurateConfig(seed=seed, workers=1, per_class=sizes.per_class, drop_short_classes=False,
                          concepts=str(concepts_file))
    with timed(seconds, "curate"):
        report = curate(candidates, out / "curated", config)
    with timed(seconds, "publish"):
        summary = publish(out / "curated", out / "hub",
                          PublishOptions(license="cc0-1.0", pretty_name="letitwag demo (drawn images, plumbing)"))
    with timed(seconds, "load_dataset"):
        loaded = load_back(out / "hub")
    facts = {
        "image_license": LICENSE,
        "planted": {k: len(v) for k, v in images.planted.items() if isinstance(v, list)},
        "knn_url": url,
        "candidates": report["totals"]["candidates"],
        "curation": {step["step"]: step["rejected"] for step in report["steps"] if step["settings"]["enabled"]},
        "kept": report["totals"]["kept"],
        "by_source": _by_source(out / "curated"),
        "published": summary,
        "load_dataset": loaded,
        "seconds": seconds,
    }
    return BuildOutputs(images.labelled.parent, model_spec, index, candidates, out / "curated", out / "hub", facts)
