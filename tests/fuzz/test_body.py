"""The JSON reader every route shares: any bytes are a value or a clear ``BadRequest``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.adapters.body import json_depth, loads, loads_object
from bot.errors import BadRequest
from tests.fuzz.strategies import FUZZ, json_values, raw_bodies


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@FUZZ
@given(raw=raw_bodies)
def test_any_bytes_are_a_json_value_or_a_clear_refusal(raw: bytes) -> None:
    try:
        value = loads(raw, depth=8)
    except BadRequest as exc:
        assert str(exc).startswith(("JSON nested deeper than 8", "body is not valid", "body has"))
    else:
        assert value == json.loads(raw) and _depth(value) <= 8


@FUZZ
@given(value=json_values, indent=st.sampled_from([None, 1]))
def test_the_depth_read_from_the_bytes_is_the_depth_of_the_value(
    value: Any, indent: int | None
) -> None:
    raw = json.dumps(value, indent=indent, ensure_ascii=False).encode()
    assert json_depth(raw) == _depth(value)
    assert loads(raw, depth=_depth(value)) == value
    if _depth(value) > 0:
        with pytest.raises(BadRequest, match=f"JSON nested deeper than {_depth(value) - 1}$"):
            loads(raw, depth=_depth(value) - 1)


@settings(FUZZ, max_examples=40)
@given(
    depth=st.integers(min_value=33, max_value=100_000),
    opener=st.sampled_from([b"[", b'{"k":', b'[{"a":"]}\\"",']),
)
def test_deep_nesting_is_refused_before_it_is_parsed(depth: int, opener: bytes) -> None:
    """Deeper than Python's own parser can go (it would raise RecursionError): refused."""
    with pytest.raises(BadRequest, match=r"^JSON nested deeper than 32$"):
        loads(opener * depth)


def test_brackets_inside_strings_do_not_count() -> None:
    raw = json.dumps({"text": "[[[[{{{{" * 100, "quote": '\\"[[[', "k": [[1]]}).encode()
    assert json_depth(raw) == 3
    assert loads_object(raw, depth=3)["k"] == [[1]]


@FUZZ
@given(value=json_values)
def test_only_an_object_is_an_object(value: Any) -> None:
    raw = json.dumps(value).encode()
    if isinstance(value, dict):
        assert loads_object(raw) == value
    else:
        with pytest.raises(BadRequest, match="must be a JSON object"):
            loads_object(raw)
