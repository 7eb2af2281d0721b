"""sync/json_text.py reads recorded JSON exactly as `json.loads` does: the same value, or a ValueError."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync import json_text

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(JSON, st.booleans())
def test_reads_what_json_loads_reads(value: object, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert _same(json_text.loads(text), json.loads(text))


@pytest.mark.parametrize("text", ['"\\ud800"', "[1e999]", "NaN", "18446744073709551616", '{"a": 1, "a": 2}'])
def test_what_orjson_refuses_or_reads_its_own_way_is_read_by_the_standard_library(text: str) -> None:
    assert _same(json_text.loads(text), json.loads(text))


@pytest.mark.parametrize("text", ["", "{", "[1,]", "nul", '"\\x"'])
def test_invalid_text_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        json_text.loads(text)
