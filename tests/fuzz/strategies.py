"""What the fuzz tests share: one settings profile and the strategies that make bad input.

``FUZZ`` keeps them fast and the same on every run (CI budget: seconds per parser): few
examples, no deadline (a loaded 2-core machine must not fail a test for being slow), examples
derived from the test's name rather than a random seed, and no example database on disk.

Bad input comes three ways: raw bytes and text (anything at all); arbitrary JSON values; and
*mutations* of the real payloads under ``tests/fixtures/payloads`` — one field replaced by any
JSON value, or removed — which reach much deeper into a parser than random JSON does.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FIXTURES = Path(__file__).parent.parent / "fixtures" / "payloads"

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
#: For examples that go through a running hub over HTTP (each one costs a request).
FUZZ_HTTP = settings(FUZZ, max_examples=60)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=5)


def load(platform: str, name: str) -> Any:
    return json.loads((FIXTURES / platform / name).read_text(encoding="utf-8"))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in ``value`` a mutation can touch (each key of each object, each item)."""
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


def _mutate(sample: Any, path: tuple[Any, ...], replacement: Any, remove: bool) -> Any:
    out = copy.deepcopy(sample)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    if remove and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return out


def mutations(sample: Any) -> st.SearchStrategy[Any]:
    """``sample`` with one field replaced by any JSON value (often of the wrong type, or a
    string where a number goes) or removed."""
    paths = list(_paths(sample))
    wrong = json_values | st.sampled_from(
        ["", "0", "-1", "x" * 400, "\x00", "\ud800", 0, -1, 2**64, True, [], {}]
    )
    return st.builds(_mutate, st.just(sample), st.sampled_from(paths), wrong, st.booleans())


def mutated(sample: Any, times: int = 2) -> st.SearchStrategy[Any]:
    """Up to ``times`` mutations on top of each other."""
    strategy = st.just(sample) | mutations(sample)
    for _ in range(times - 1):
        strategy = strategy.flatmap(
            lambda s: st.just(s) | mutations(s) if _has_paths(s) else st.just(s)
        )
    return strategy


def _has_paths(value: Any) -> bool:
    return bool(value) and isinstance(value, dict | list)


#: Raw bodies: anything, and the classic troublemakers.
raw_bodies = st.binary(max_size=300) | st.sampled_from(
    [
        b"",
        b"{",
        b"[" * 5000,
        b'{"a":' * 40 + b"1" + b"}" * 40,
        b"\xff\xfe\xfd",
        b'{"text": "\xff"}',
        b'{"text": "\\ud800"}',
        b"null",
        b"[]",
        b'"a string"',
        b"1" * 5000,
        b"\xef\xbb\xbf{}",
    ]
)
