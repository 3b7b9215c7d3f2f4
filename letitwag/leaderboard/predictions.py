"""Checking ``predictions.parquet`` against the board's ground truth, vectorised.

Why the board holds its own labels: the ``label`` column is written by the submitter, so a
tampered file could relabel every sample to match its predictions. The board compares every
row's label with the dataset's (``labels.parquet`` in the board folder) and recomputes metrics
from the board's labels, never the submitter's. Every sample must appear exactly once with a
valid top-k list of distinct class indices ordered best first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from letitwag.leaderboard.submission import SubmissionRejected

REQUIRED_COLUMNS = ("sample_index", "label", "topk_ids", "topk_scores")


@dataclass(frozen=True)
class Predictions:
    """Rows ordered by sample index: the true labels and the (num_samples, k) predicted class ids."""

    labels: np.ndarray
    topk_ids: np.ndarray


def read_table(data: bytes, path: Path, columns: tuple[str, ...] = REQUIRED_COLUMNS) -> pa.Table:
    """The named columns of a parquet file's bytes; a one-line rejection when unreadable or lacking one."""
    try:
        return pq.read_table(pa.BufferReader(data), columns=list(columns))
    except (pa.ArrowInvalid, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SubmissionRejected(f"{path}: not a readable predictions parquet with columns "
                                 f"{', '.join(columns)} ({reason})") from None


def integer_column(table: pa.Table, name: str, path: Path) -> np.ndarray:
    column = table.column(name)
    if not pa.types.is_integer(column.type):
        raise SubmissionRejected(f"{path}: column {name!r} must be integers, found {column.type}")
    if column.null_count:
        raise SubmissionRejected(f"{path}: column {name!r} has {column.null_count} null value(s)")
    return column.to_numpy().astype(np.int64, copy=False)


def list_column(table: pa.Table, name: str, k: int, path: Path, value_check) -> np.ndarray:
    """A list column as a (rows, k) array; every list must have exactly ``k`` non-null values."""
    column = table.column(name)
    is_list = pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
    if not is_list or not value_check(column.type.value_type):
        raise SubmissionRejected(f"{path}: column {name!r} has type {column.type}, see docs/FORMATS.md")
    array = column.combine_chunks() if table.num_rows else pa.array([], type=column.type)
    if array.null_count:
        raise SubmissionRejected(f"{path}: column {name!r} has {array.null_count} null row(s)")
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
    wrong = np.flatnonzero(lengths != k)
    if wrong.size:
        raise SubmissionRejected(f"{path}: row {wrong[0]} of {name!r} holds {lengths[wrong[0]]} values; "
                                 f"expected k = {k}")
    values = pc.list_flatten(array)
    if values.null_count:
        raise SubmissionRejected(f"{path}: column {name!r} holds null values")
    return values.to_numpy(zero_copy_only=False).reshape(-1, k)


def _sample_counts(index: np.ndarray, num_samples: int, path: Path) -> np.ndarray:
    """How often each sample index occurs; indices outside the dataset and repeats are rejected."""
    outside = np.flatnonzero((index < 0) | (index >= num_samples))
    if outside.size:
        raise SubmissionRejected(f"{path}: row {outside[0]} has sample_index {index[outside[0]]}, outside the "
                                 f"dataset's 0..{num_samples - 1}")
    counts = np.bincount(index, minlength=num_samples)
    repeated = np.flatnonzero(counts > 1)
    if repeated.size:
        raise SubmissionRejected(f"{path}: sample_index {repeated[0]} appears {counts[repeated[0]]} times "
                                 f"({repeated.size} duplicated); each sample must appear once")
    return counts


def check_topk(ids: np.ndarray, scores: np.ndarray, index: np.ndarray, row_name: str, num_classes: int,
               path: Path) -> None:
    """Valid, distinct top-k class ids and finite scores ordered best first (``index`` names rows)."""
    checks = (
        (((ids < 0) | (ids >= num_classes)).any(axis=1), f"hold a class index outside 0..{num_classes - 1}"),
        ((np.diff(np.sort(ids, axis=1), axis=1) == 0).any(axis=1), "repeat a class; the k predicted classes must "
                                                                   "be distinct"),
    )
    for bad, problem in checks:
        rows = np.flatnonzero(bad)
        if rows.size:
            raise SubmissionRejected(f"{path}: topk_ids of {row_name} {index[rows[0]]} {problem}")
    not_finite = np.flatnonzero(~np.isfinite(scores).all(axis=1))
    if not_finite.size:
        raise SubmissionRejected(f"{path}: topk_scores of {row_name} {index[not_finite[0]]} hold NaN or infinity")
    unordered = np.flatnonzero((np.diff(scores.astype(np.float64), axis=1) > 1e-6).any(axis=1))
    if unordered.size:
        raise SubmissionRejected(f"{path}: topk_scores of {row_name} {index[unordered[0]]} are not ordered "
                                 "best first")


def check_predictions(data: bytes, path: Path, board_labels: np.ndarray, num_classes: int) -> Predictions:
    """Completeness, labels equal to the board's, valid distinct top-k ids, finite ordered scores.

    ``board_labels`` has one entry per dataset sample, -1 for samples the board excludes (not
    evaluable in its reference run, e.g. an undecodable image): those must be absent, every other
    sample present exactly once. ``data`` is the file's content, read once, so what is checked
    is exactly what gets stored.
    """
    table = read_table(data, path)
    index = integer_column(table, "sample_index", path)
    labels = integer_column(table, "label", path)
    k = min(5, num_classes)
    ids = list_column(table, "topk_ids", k, path, pa.types.is_integer)
    scores = list_column(table, "topk_scores", k, path, pa.types.is_floating)

    counts = _sample_counts(index, len(board_labels), path)
    expected = board_labels >= 0
    excluded = np.flatnonzero(~expected & (counts > 0))
    if excluded.size:
        raise SubmissionRejected(f"{path}: sample_index {excluded[0]} is excluded by this board (not evaluable in "
                                 "its reference run); leave it out")
    missing = np.flatnonzero(expected & (counts == 0))
    if missing.size:
        raise SubmissionRejected(f"{path}: {missing.size} of {int(expected.sum())} samples missing (first: "
                                 f"sample_index {missing[0]}); every sample must be predicted, runs with --limit "
                                 "are not ranked")

    order = np.argsort(index, kind="stable")
    index, labels, ids, scores = index[order], labels[order], ids[order], scores[order]
    truth = board_labels[index]
    wrong_label = np.flatnonzero(labels != truth)
    if wrong_label.size:
        first = wrong_label[0]
        raise SubmissionRejected(f"{path}: label of sample_index {index[first]} is {labels[first]} but the board's "
                                 f"dataset says {truth[first]} ({wrong_label.size} labels differ); labels come from "
                                 "the dataset, not the submission")
    check_topk(ids, scores, index, "sample_index", num_classes, path)
    return Predictions(labels=truth, topk_ids=ids.astype(np.int64, copy=False))


def read_reference_labels(path: Path, num_samples: int, num_classes: int) -> np.ndarray:
    """One label per dataset sample from a trusted run (-1 where the run has no prediction).

    How a new board learns its ground truth; samples the reference could not evaluate (its
    ``skipped_samples``) become the board's excluded samples.
    """
    table = read_table(path.read_bytes(), path)
    index = integer_column(table, "sample_index", path)
    labels = integer_column(table, "label", path)
    _sample_counts(index, num_samples, path)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise SubmissionRejected(f"{path}: labels outside 0..{num_classes - 1}")
    full = np.full(num_samples, -1, dtype=np.int64)
    full[index] = labels
    return full
