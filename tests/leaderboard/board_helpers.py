"""Synthetic harness runs for the leaderboard tests (a module, not conftest: test areas share one sys.path).

A run is written exactly as docs/FORMATS.md describes (``results.json`` + ``predictions.parquet``)
with metrics from the harness's own ``classification_metrics``, so a valid submission here is a
valid submission anywhere. Predictions come from a seeded generator that is right ~60% of the
time; nothing is a real model.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from letitwag.data import read_bundled_json

NUM_CLASSES = 10
PER_CLASS = 30
CLASS_NAMES = list(read_bundled_json("let_it_wag_classes.json"))[:NUM_CLASSES]
BOOTSTRAP = 50
DATASET = {
    "id": "bethgelab/Let-It-Wag", "split": "train", "revision": "0123abcd",
    "fingerprint": hashlib.sha256(b"synthetic test dataset").hexdigest(),
    "num_samples": NUM_CLASSES * PER_CLASS, "num_classes": NUM_CLASSES, "class_names": CLASS_NAMES,
    "class_list_hash": hashlib.sha256("\n".join(CLASS_NAMES).encode()).hexdigest(),
}
LABELS = np.repeat(np.arange(NUM_CLASSES), PER_CLASS)


def predict(labels: np.ndarray, seed: int, num_classes: int = NUM_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """Seeded top-5 predictions (distinct ids, best first) that hit the label ~60% of the time."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(len(labels), num_classes))
    scores[np.arange(len(labels)), labels] += 1.5
    topk = np.argsort(-scores, axis=1)[:, :5]
    return topk.astype(np.int32), np.take_along_axis(scores, topk, axis=1).astype(np.float32)


@functools.cache
def bundled_counts() -> dict:
    from letitwag.tables import paper_counts_by_corpus

    return paper_counts_by_corpus()


def metrics_for(labels: np.ndarray, topk: np.ndarray, samples: int = BOOTSTRAP, seed: int = 0) -> dict:
    """What the harness writes by default: bootstrap CIs and bins on every bundled paper corpus."""
    from letitwag.harness.metrics import classification_metrics

    return classification_metrics(labels, topk, CLASS_NAMES, bootstrap_samples=samples, seed=seed,
                                  frequency_counts=bundled_counts())


def write_predictions(path: Path, labels: np.ndarray, topk: np.ndarray, scores: np.ndarray,
                      index: np.ndarray | None = None) -> None:
    index = np.arange(len(labels)) if index is None else index
    table = pa.table({
        "sample_index": pa.array(index, pa.int64()),
        "label": pa.array(labels, pa.int32()),
        "topk_ids": pa.array(list(topk), pa.list_(pa.int32())),
        "topk_scores": pa.array(list(scores), pa.list_(pa.float32())),
    })
    pq.write_table(table, path)


def results_document(metrics: dict, *, spec: str = "open_clip:ViT-S-32/random", revision: str = "abc123",
                     precision: str = "fp32", prompt_set: str = "ensemble") -> dict:
    return {
        "format": "letitwag.results/1",
        "task": "classification",
        "model": {"spec": spec, "adapter": "open_clip", "name": "ViT-S-32", "pretrained": "test",
                  "resolved_checkpoint": "/tmp/checkpoint.pt", "revision": revision, "random_weights": False},
        "dataset": json.loads(json.dumps(DATASET)),
        "prompts": {"set": prompt_set, "hash": "0" * 64, "num_templates": 80},
        "config": {"seed": 0, "batch_size": 64, "precision": precision, "device": "cpu", "workers": 2, "limit": None},
        "environment": {"letitwag": "0.1.0", "python": "3.11", "torch": "x", "open_clip": "x", "git_hash": "x",
                        "platform": "linux"},
        "timing": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z", "wall_seconds": 60.0},
        "metrics": metrics,
        "skipped_samples": {"corrupt_image": 0},
    }


def metadata_document(**overrides) -> dict:
    data = {"format": "letitwag.submission/1", "model_name": "Synthetic ViT-S-32", "link": "https://example.org/model",
            "parameters": 63_000_000, "pretraining_data": "none (synthetic predictions)",
            "includes_let_it_wag_images": False, "license": "MIT", "imagenet_top1": 12.5}
    data.update(overrides)
    return data


def write_submission(folder: Path, *, seed: int = 1, metadata: dict | None = None, **result_options) -> Path:
    """A complete, valid submission folder."""
    folder.mkdir(parents=True, exist_ok=True)
    topk, scores = predict(LABELS, seed)
    write_predictions(folder / "predictions.parquet", LABELS, topk, scores)
    (folder / "results.json").write_text(json.dumps(results_document(metrics_for(LABELS, topk), **result_options)))
    (folder / "submission.json").write_text(json.dumps(metadata or metadata_document()))
    return folder


def edit_results(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    """A submission tamperer: ``edit`` changes the parsed ``results.json`` in place."""
    def apply(folder: Path) -> None:
        data = json.loads((folder / "results.json").read_text())
        edit(data)
        (folder / "results.json").write_text(json.dumps(data))
    return apply


def set_field(path: str, value) -> Callable[[dict], None]:
    """An ``edit_results`` edit that sets the dotted ``path`` (``"judge.spec"``) to ``value``."""
    def edit(data: dict) -> None:
        *parents, last = path.split(".")
        for part in parents:
            data = data[part]
        data[last] = value
    return edit


RETRIEVAL_IMAGES, RETRIEVAL_CAPTIONS_PER_IMAGE = 30, 5
RETRIEVAL_CONCEPTS = ["dog", "cat", "man", "pizza", "bus"]  # of the paper's COCO list


def retrieval_columns(seed: int = 0) -> dict:
    """Seeded per-caption ranks (a caption finds its image about half the time) and COCO concepts, as the
    harness writes them: images 0..29 with 5 captions each."""
    rng = np.random.default_rng(seed)
    n = RETRIEVAL_IMAGES * RETRIEVAL_CAPTIONS_PER_IMAGE
    image_index = np.repeat(np.arange(RETRIEVAL_IMAGES), RETRIEVAL_CAPTIONS_PER_IMAGE)
    concepts = [[RETRIEVAL_CONCEPTS[(image + position) % 5]] if position < 3 else []
                for image, position in zip(image_index, np.tile(np.arange(RETRIEVAL_CAPTIONS_PER_IMAGE),
                                                                   RETRIEVAL_IMAGES))]
    return {"caption_index": np.arange(n), "image_index": image_index,
            "caption_position": np.tile(np.arange(RETRIEVAL_CAPTIONS_PER_IMAGE), RETRIEVAL_IMAGES),
            "caption": [f"caption {i} about {' '.join(c) or 'nothing'}" for i, c in enumerate(concepts)],
            "text_to_image_rank": np.where(rng.random(n) < 0.5, 1, rng.integers(2, RETRIEVAL_IMAGES + 1, n)),
            "image_to_text_rank": rng.integers(1, n + 1, n), "concepts": concepts}


def write_retrieval_submission(folder: Path, columns: dict | None = None) -> Path:
    """A complete retrieval run (results.json + predictions.parquet, metrics by the harness's function)."""
    from letitwag.harness.results import retrieval_table
    from letitwag.harness.retrieval_metrics import retrieval_metrics

    columns = columns or retrieval_columns()
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(retrieval_table(columns), folder / "predictions.parquet")
    metrics = retrieval_metrics(columns["image_index"], columns["text_to_image_rank"], columns["image_to_text_rank"],
                                columns["concepts"], bootstrap_samples=BOOTSTRAP, min_concept_images=5,
                                frequency_counts=bundled_counts())
    results = results_document(metrics)
    results.update(task="retrieval", dataset={"id": "clip-benchmark/wds_mscoco_captions", "split": "test",
                                              "revision": "0123abcd", "num_images": RETRIEVAL_IMAGES,
                                              "num_captions": len(columns["caption_index"])})
    del results["prompts"]
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "submission.json").write_text(json.dumps(metadata_document()))
    return folder
