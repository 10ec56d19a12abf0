"""The TOML config: any file is ``Settings`` or one ``ConfigError`` naming what is wrong —
never another exception (which ``gongdan serve`` would print as a traceback).

Three kinds of file: any bytes; documents built from the real keys (every section and its
keys, people and teams) with values of any type; and the shipped example with a line dropped,
repeated or replaced.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from bot.config import Person, Settings, Team, load_settings
from bot.errors import ConfigError
from tests.fuzz.strategies import FUZZ

EXAMPLE = (Path(__file__).parent.parent.parent / "gongdan.example.toml").read_text(encoding="utf-8")
SECTIONS = {
    name: sorted(field.annotation.model_fields)
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}
TOP = sorted(set(Settings.model_fields) - set(SECTIONS) - {"people", "teams"})
keys = st.sampled_from(sorted({k for ks in SECTIONS.values() for k in ks})) | st.text(max_size=6)
scalars = (
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.sampled_from(["zh", "en", "Asia/Shanghai", "web:li", "sqlite:///x.db", "P0", "http://x"])
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=2),
    max_leaves=6,
)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):  # a TOML basic string: the escapes JSON and TOML share
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{_value(k)} = {_value(x)}" for k, x in v.items()) + "}"


def _document(top: dict[str, Any], sections: dict[str, dict[str, Any]], tables: list[Any]) -> str:
    lines = [f"{_value(k)} = {_value(v)}" for k, v in top.items()]
    for name, body in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{_value(k)} = {_value(v)}" for k, v in body.items()]
    for name, body in tables:
        lines.append(f"[[{name}]]")
        lines += [f"{_value(k)} = {_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


documents = st.builds(
    _document,
    st.dictionaries(st.sampled_from(TOP) | st.text(max_size=5), values, max_size=3),
    st.dictionaries(
        st.sampled_from(sorted(SECTIONS)), st.dictionaries(keys, values, max_size=4), max_size=3
    ),
    st.lists(
        st.tuples(
            st.just("people"),
            st.dictionaries(st.sampled_from(sorted(Person.model_fields)), values, max_size=5),
        )
        | st.tuples(
            st.just("teams"),
            st.dictionaries(st.sampled_from(sorted(Team.model_fields)), values, max_size=5),
        ),
        max_size=3,
    ),
)


def _edit(lines: list[str], at: int, how: int, other: str) -> str:
    i = at % len(lines)
    edited = [*lines[:i], *([lines[i]] * how if how < 3 else [other]), *lines[i + 1 :]]
    return "\n".join(edited)


example_edits = st.builds(
    _edit,
    st.just(EXAMPLE.splitlines()),
    st.integers(0, 10_000),
    st.integers(0, 3),
    st.text(max_size=30),
)


def _load(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gongdan.toml"
        path.write_bytes(content)
        try:
            assert isinstance(load_settings(path), Settings)
        except ConfigError as exc:
            assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)


@FUZZ
@given(content=st.binary(max_size=200))
def test_any_bytes_are_settings_or_a_config_error(content: bytes) -> None:
    _load(content)


@FUZZ
@given(document=documents)
def test_any_document_of_real_keys_is_settings_or_a_config_error(document: str) -> None:
    _load(document.encode())


@FUZZ
@given(document=example_edits)
def test_the_example_with_any_line_changed_is_settings_or_a_config_error(document: str) -> None:
    _load(document.encode())


def test_the_example_itself_is_valid() -> None:
    _load(EXAMPLE.encode())
