"""Bundled reference data compacted from the paper's release (see ``README.md`` here).

Loaded through ``importlib.resources`` so it works from a wheel, a zip or a source tree.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


@functools.lru_cache(maxsize=None)
def read_bundled_table(name: str) -> pa.Table:
    """A bundled parquet file as an Arrow table (cached: the files are read-only)."""
    with resources.files(__name__).joinpath(name).open("rb") as handle:
        return pq.read_table(handle)


@functools.lru_cache(maxsize=None)
def read_bundled_json(name: str) -> Any:
    return json.loads(resources.files(__name__).joinpath(name).read_text(encoding="utf-8"))
