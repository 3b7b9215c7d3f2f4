"""Arrow arrays built from numpy buffers, without pyarrow's pandas probe.

Why: pyarrow imports pandas (~0.3 s by ``python -X importtime``) the first time a process
calls ``pa.array``, ``pa.scalar`` (also implicitly, for a Python scalar given to a compute
function) or ``Array.to_numpy``, to check whether the value is a pandas object. Counting workers
need nothing of pandas, yet their fork server would have to import it before the first shard
could start, in every run. These helpers make the arrays the counting path needs straight from
their buffers, so that path never triggers the probe (``tests/frequency/test_worker_start.py``
keeps it so).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def primitive_array(values: np.ndarray) -> pa.Array:
    """A null-free Arrow array over a 1-D numpy array of integers or floats (zero-copy when the
    array is contiguous)."""
    values = np.ascontiguousarray(values)
    if values.dtype.kind not in "iuf":
        raise TypeError(f"primitive_array takes integers or floats, not {values.dtype}")  # bools are bits in Arrow
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def string_array(texts: Sequence[str]) -> pa.Array:
    """A null-free Arrow ``string`` array of ``texts`` (``large_string`` beyond 2 GiB of text)."""
    encoded = [text.encode("utf-8") for text in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(item) for item in encoded], out=offsets[1:])
    kind = pa.string()
    if offsets[-1] <= np.iinfo(np.int32).max:
        offsets = offsets.astype(np.int32)
    else:
        kind = pa.large_string()
    return pa.Array.from_buffers(kind, len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def nulls_as_empty(strings: pa.Array) -> pa.Array:
    """``strings`` with every null replaced by the empty string (``fill_null(strings, "")``
    without the scalar)."""
    if strings.null_count == 0:
        return strings
    offset_type = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = pa.py_buffer(np.zeros(len(strings) + 1, dtype=offset_type))
    empty = pa.Array.from_buffers(strings.type, len(strings), [None, offsets, pa.py_buffer(b"")])
    return pc.coalesce(strings, empty)
