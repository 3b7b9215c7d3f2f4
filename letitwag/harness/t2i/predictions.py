"""``predictions.parquet`` of a ``t2i`` run: one row per generated image (docs/FORMATS.md).

Why every input of the metrics is a column: the leaderboard recomputes all T2I metrics from this
file alone (``read_t2i_predictions`` + ``t2i_metrics``), as it does for classification.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from letitwag.errors import UserInputError
from letitwag.harness.results import PREDICTIONS_FORMAT

T2I_SCHEMA = pa.schema(
    [
        ("concept_index", pa.int32()),
        ("concept_id", pa.string()),
        ("prompt_index", pa.int32()),
        ("prompt", pa.string()),
        ("image_index", pa.int32()),
        ("seed", pa.int64()),
        ("image_path", pa.string()),
        ("image_sha256", pa.string()),
        ("blacked_out", pa.bool_()),
        ("topk_ids", pa.list_(pa.int32())),
        ("topk_scores", pa.list_(pa.float32())),
        ("clip_score", pa.float32()),
        ("retrieval_rank", pa.int32()),
    ],
    metadata={"format": PREDICTIONS_FORMAT, "task": "t2i"},
)

_REQUIRED = ("concept_index", "prompt_index", "topk_ids", "clip_score")


def t2i_table(columns: dict) -> pa.Table:
    """Columns (numpy arrays / lists keyed like ``T2I_SCHEMA``) -> table sorted by concept, prompt, image.

    ``retrieval_rank`` may be None (no retrieval judge): the column is then all null.
    """
    order = np.lexsort((columns["image_index"], columns["prompt_index"], columns["concept_index"]))
    arrays = {}
    for field in T2I_SCHEMA:
        values = columns.get(field.name)
        if values is None:
            arrays[field.name] = pa.nulls(len(order), field.type)
        elif pa.types.is_list(field.type):
            arrays[field.name] = pa.array([list(values[i]) for i in order], field.type)
        else:
            arrays[field.name] = pa.array(np.asarray(values)[order], field.type)
    return pa.table(arrays, schema=T2I_SCHEMA)


def read_t2i_predictions(path: str | Path) -> dict:
    """The ``t2i_metrics`` keyword arguments stored in a t2i ``predictions.parquet``."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise UserInputError(f"{path}: not a readable predictions parquet ({error})") from None
    missing = set(_REQUIRED) - set(table.column_names)
    if missing:
        raise UserInputError(f"{path}: missing columns {sorted(missing)} of a t2i predictions file; see docs/FORMATS.md")
    topk = table.column("topk_ids").combine_chunks()
    width = len(topk[0]) if len(topk) else 0
    concept_index = np.asarray(table["concept_index"].to_numpy(), dtype=np.int64)
    columns = {
        "concept_index": concept_index,
        "topk_ids": np.asarray(topk.flatten().to_numpy(zero_copy_only=False)).reshape(len(topk), width),
        "clip_score": np.asarray(table["clip_score"].to_numpy(zero_copy_only=False), dtype=np.float64),
        "prompt_ids": np.stack([concept_index, np.asarray(table["prompt_index"].to_numpy(), dtype=np.int64)], axis=1),
    }
    if "blacked_out" in table.column_names:
        columns["blacked_out"] = np.asarray(table["blacked_out"].to_numpy(zero_copy_only=False), dtype=bool)
    if "retrieval_rank" in table.column_names and table["retrieval_rank"].null_count < len(table):
        if table["retrieval_rank"].null_count:
            raise UserInputError(f"{path}: retrieval_rank is null for some images and not others")
        columns["retrieval_rank"] = np.asarray(table["retrieval_rank"].to_numpy(), dtype=np.int64)
    return columns
