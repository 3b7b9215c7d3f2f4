"""Run directories: ``results.json`` + ``predictions.parquet`` (docs/FORMATS.md, letitwag.results/1).

Both files are written atomically; the predictions carry everything the leaderboard needs to
recompute the metrics (``read_predictions`` + ``metrics.classification_metrics`` for
classification, ``read_retrieval_predictions`` + ``retrieval_metrics.retrieval_metrics`` for
retrieval).
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from letitwag.errors import UserInputError
from letitwag.io import atomic_write_json, atomic_write_with

RESULTS_FORMAT = "letitwag.results/1"
PREDICTIONS_FORMAT = "letitwag.predictions/1"
RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.parquet"

CLASSIFICATION_SCHEMA = pa.schema(
    [
        ("sample_index", pa.int64()),
        ("label", pa.int32()),
        ("topk_ids", pa.list_(pa.int32())),
        ("topk_scores", pa.list_(pa.float32())),
    ],
    metadata={"format": PREDICTIONS_FORMAT},
)

RETRIEVAL_PREDICTIONS_FORMAT = "letitwag.retrieval-predictions/1"

# One row per caption: both directions' ranks of the positives, and the caption's concepts.
RETRIEVAL_SCHEMA = pa.schema(
    [
        ("caption_index", pa.int64()),
        ("image_index", pa.int64()),
        ("caption_position", pa.int32()),
        ("caption", pa.string()),
        ("text_to_image_rank", pa.int32()),
        ("image_to_text_rank", pa.int32()),
        ("concepts", pa.list_(pa.string())),
    ],
    metadata={"format": RETRIEVAL_PREDICTIONS_FORMAT},
)

_PACKAGES = ("letitwag", "torch", "torchvision", "open_clip_torch", "transformers", "diffusers", "datasets", "numpy", "pyarrow")


def git_hash() -> str | None:
    """The commit of the letitwag source checkout, if it is one (None for an installed wheel)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def environment() -> dict:
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {**versions, "python": sys.version.split()[0], "platform": platform.platform(), "git_hash": git_hash()}


def classification_table(predictions: dict) -> pa.Table:
    order = np.argsort(predictions["sample_index"], kind="stable")
    return pa.table(
        {
            "sample_index": pa.array(predictions["sample_index"][order], pa.int64()),
            "label": pa.array(predictions["label"][order], pa.int32()),
            "topk_ids": pa.array(list(predictions["topk_ids"][order]), pa.list_(pa.int32())),
            "topk_scores": pa.array(list(predictions["topk_scores"][order]), pa.list_(pa.float32())),
        },
        schema=CLASSIFICATION_SCHEMA,
    )


def retrieval_table(predictions: dict) -> pa.Table:
    """One row per caption, by caption index; ``concepts`` null where no concept list tagged the captions."""
    order = np.argsort(predictions["caption_index"], kind="stable")
    concepts = predictions["concepts"]
    return pa.table(
        {
            "caption_index": pa.array(predictions["caption_index"][order], pa.int64()),
            "image_index": pa.array(predictions["image_index"][order], pa.int64()),
            "caption_position": pa.array(predictions["caption_position"][order], pa.int32()),
            "caption": pa.array([predictions["caption"][i] for i in order], pa.string()),
            "text_to_image_rank": pa.array(predictions["text_to_image_rank"][order], pa.int32()),
            "image_to_text_rank": pa.array(predictions["image_to_text_rank"][order], pa.int32()),
            "concepts": pa.array([None if concepts is None else concepts[i] for i in order], pa.list_(pa.string())),
        },
        schema=RETRIEVAL_SCHEMA,
    )


def write_run(out_dir: str | Path, results: dict, predictions: pa.Table) -> Path:
    """Write predictions first, then results.json (its presence marks a complete run)."""
    out = Path(out_dir)
    atomic_write_with(out / PREDICTIONS_FILE, lambda tmp: pq.write_table(predictions, tmp, compression="zstd"))
    atomic_write_json(out / RESULTS_FILE, results)
    return out


def read_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sample_index, label, topk_ids)`` of a classification ``predictions.parquet``."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise UserInputError(f"{path}: not a readable predictions parquet ({error})") from None
    missing = {"sample_index", "label", "topk_ids"} - set(table.column_names)
    if missing:
        raise UserInputError(f"{path}: missing columns {sorted(missing)}; see docs/FORMATS.md")
    topk = table.column("topk_ids").combine_chunks()
    width = len(topk[0]) if len(topk) else 0
    ids = np.asarray(topk.flatten().to_numpy(zero_copy_only=False)).reshape(len(topk), width)
    return (np.asarray(table["sample_index"].to_numpy()), np.asarray(table["label"].to_numpy()), ids)


def read_retrieval_predictions(path: str | Path) -> dict:
    """The columns of a retrieval ``predictions.parquet`` as arrays (``concepts``: lists, or None if untagged)."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise UserInputError(f"{path}: not a readable predictions parquet ({error})") from None
    missing = set(RETRIEVAL_SCHEMA.names) - set(table.column_names)
    if missing:
        raise UserInputError(f"{path}: missing columns {sorted(missing)}; see docs/FORMATS.md (retrieval predictions)")
    columns = {name: np.asarray(table[name].to_numpy()) for name in
               ("caption_index", "image_index", "caption_position", "text_to_image_rank", "image_to_text_rank")}
    columns["caption"] = table["caption"].to_pylist()
    concepts = table["concepts"]
    columns["concepts"] = None if concepts.null_count == len(concepts) else [c or [] for c in concepts.to_pylist()]
    return columns
