"""Run directories: ``results.json`` + ``predictions.parquet`` (docs/FORMATS.md, letitwag.results/1).

Both files are written atomically; the predictions carry everything the leaderboard needs to
recompute the metrics (``read_predictions`` + ``metrics.classification_metrics``).
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
