"""Postings: which samples mention (or show) which concept.

Text counting and image tagging both write postings so that the image-text *matched* count
(|text hits AND image hits|) and misalignment can be computed later by joining on
``sample_id``. Format: parquet with columns ``sample_id`` (string) and ``concept_id``
(string), one row per (sample, concept) pair, no duplicates.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from letitwag.errors import UserInputError
from letitwag.io import atomic_write_with

POSTINGS_SCHEMA = pa.schema([("sample_id", pa.string()), ("concept_id", pa.string())])


def write_postings(path: str | Path, table: pa.Table) -> None:
    """Write a postings table atomically (columns cast to ``POSTINGS_SCHEMA``)."""
    table = table.select(POSTINGS_SCHEMA.names).cast(POSTINGS_SCHEMA)
    atomic_write_with(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def read_postings(path: str | Path) -> pa.Table:
    """Read postings written by ``letitwag frequency count --postings`` or ``tag-images``."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise UserInputError(f"{path}: not a readable postings parquet ({error})") from None
    missing = [name for name in POSTINGS_SCHEMA.names if name not in table.column_names]
    if missing:
        raise UserInputError(f"{path}: postings lack column(s) {', '.join(missing)}; write them with letitwag frequency")
    return table.select(POSTINGS_SCHEMA.names).cast(POSTINGS_SCHEMA)
