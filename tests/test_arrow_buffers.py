"""``letitwag.arrow_buffers`` builds the same arrays as pyarrow's converters, from numpy buffers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from letitwag.arrow_buffers import nulls_as_empty, primitive_array, string_array


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint64, np.float64])
def test_primitive_array_equals_pa_array_also_for_a_strided_view(dtype):
    values = np.arange(10, dtype=dtype)[::3]
    assert primitive_array(values).equals(pa.array(values))


def test_primitive_array_refuses_bools_which_arrow_stores_as_bits():
    with pytest.raises(TypeError, match="bool"):
        primitive_array(np.array([True, False]))


def test_string_array_equals_pa_array():
    texts = ["a dog", "", "café İstanbul", "🐶"]
    assert string_array(texts).equals(pa.array(texts, pa.string()))
    assert string_array([]).equals(pa.array([], pa.string()))


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_nulls_as_empty_equals_fill_null_also_on_a_slice(kind):
    strings = pa.array(["x", None, "dog", None, "cat"], kind)
    for array in (strings, strings.slice(1), strings.slice(1, 2)):
        assert nulls_as_empty(array).equals(array.fill_null(""))
    no_nulls = pa.array(["a"], kind)
    assert nulls_as_empty(no_nulls) is no_nulls
