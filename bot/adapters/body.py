"""Reading a request body before anything trusts it: UTF-8, JSON nesting, the right types.

aiohttp refuses a body over ``[server] max_body_bytes`` with 413 while reading it
(``client_max_size``); what was read comes here, and every refusal is ``BadRequest`` (400,
nothing stored) with a message that says what is wrong:

- ``loads`` refuses JSON nested deeper than ``[limits] json_depth`` — found by one scan of the
  raw bytes, without recursion and *before* ``json.loads`` (whose recursion a deep document
  would exhaust) — then bytes that are not UTF-8, then anything that is not JSON, then
  strings with an unpaired surrogate escape (``"\\ud800"``: valid JSON syntax, but no text,
  and nothing downstream can encode it);
- ``read_json_object`` is the whole read of a JSON route: ``Content-Type: application/json``,
  then ``loads``, then "must be a JSON object";
- ``get`` / ``need`` read one field of a parsed payload as the type the platform documents, so
  a parser refuses a wrong type with the field's name instead of failing somewhere later;
  ``check_shape`` checks many at once (what a platform SDK reads before our parser runs).

Adapters whose signature covers the raw bytes verify it first and only then call ``loads``: a
forgery is a 401 whatever its bytes, a signed body that cannot be read a 400. The depth limit
rides on the application (``JSON_DEPTH``, set by ``bot.app.build_app``); a request served
without one gets ``DEFAULT_JSON_DEPTH``.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Mapping
from itertools import accumulate, count
from typing import Any, TypeAlias, TypeVar

from aiohttp import web

from bot.errors import BadRequest

__all__ = [
    "DEFAULT_JSON_DEPTH",
    "JSON_DEPTH",
    "Shape",
    "check_shape",
    "depth_limit",
    "get",
    "json_depth",
    "loads",
    "loads_object",
    "need",
    "read_json_object",
    "text_of",
]

T = TypeVar("T")
#: Field name → (the types it may have, the shape of an object in it or of each object in an
#: array in it). ``type(None)`` among the types allows null.
Shape: TypeAlias = Mapping[str, tuple[tuple[type, ...], "Shape | None"]]

DEFAULT_JSON_DEPTH = 32
JSON_DEPTH = web.AppKey("json_depth", int)

_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_STRING = re.compile(rb'"[^"]*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")  # opening 2, closing 0 (see json_depth)
_TYPE_NAMES = {
    str: "a string",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    dict: "an object",
    list: "an array",
    type(None): "null",
}


def _brackets(raw: bytes) -> bytes:
    """The brackets of ``raw`` outside its strings, as 2 (opening) and 0 (closing) bytes."""
    return _STRING.sub(b"", _ESCAPE.sub(b"", raw)).translate(_STEP, _NOT_BRACKET)


def _deepest(brackets: bytes) -> int:
    # the depth after k brackets is (the sum of the first k) - k: C-level iterators only
    return max(map(operator.sub, accumulate(brackets), count(1)), default=0)


def json_depth(raw: bytes) -> int:
    """How deeply ``raw`` nests arrays and objects (0 for a scalar), found without parsing it
    or recursing: escapes and strings are dropped, the brackets left are counted (opening +1,
    closing −1). A megabyte of brackets takes about 0.1 s; ``loads`` skips the count when
    there are fewer opening brackets than the limit."""
    return _deepest(_brackets(raw))


def text_of(raw: bytes, what: str = "body") -> str:
    """``raw`` as UTF-8, else ``BadRequest`` naming the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{what} is not valid UTF-8 (byte {exc.start})") from None


def loads(raw: bytes | str, *, depth: int = DEFAULT_JSON_DEPTH, what: str = "body") -> Any:
    """The JSON value in ``raw``, checked in this order: nesting, UTF-8, syntax."""
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    if data.count(b"{") + data.count(b"[") > depth:  # (else it cannot nest that deep)
        brackets = _brackets(data)
        if brackets.count(2) > depth and _deepest(brackets) > depth:
            raise BadRequest(f"JSON nested deeper than {depth}")
    text = raw if isinstance(raw, str) else text_of(raw, what)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"{what} is not valid JSON ({exc.msg} at {exc.pos})") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits
        raise BadRequest(f"{what} is not valid JSON ({exc})") from None
    if _SURROGATE_ESCAPE.search(data) and not _is_text(value):  # (pairs are fine: emoji)
        raise BadRequest(f"{what} has an unpaired surrogate escape (\\ud800–\\udfff)")
    return value


def _is_text(value: Any) -> bool:
    """Every string in ``value`` (keys too) is text: encodable as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack += item.keys()
            stack += item.values()
        elif isinstance(item, list):
            stack += item
    return True


def loads_object(
    raw: bytes | str, *, depth: int = DEFAULT_JSON_DEPTH, what: str = "body"
) -> dict[str, Any]:
    data = loads(raw, depth=depth, what=what)
    if not isinstance(data, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return data


def depth_limit(request: web.Request) -> int:
    return request.config_dict.get(JSON_DEPTH, DEFAULT_JSON_DEPTH)


async def read_json_object(request: web.Request, what: str = "body") -> dict[str, Any]:
    """The body of a JSON route (a body over the size limit is 413 while it is read)."""
    if request.content_type != "application/json":
        raise BadRequest("expected Content-Type: application/json")
    return loads_object(await request.read(), depth=depth_limit(request), what=what)


def _is(value: object, kind: type[Any]) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def get(payload: Mapping[str, Any], key: str, kind: type[T], where: str) -> T | None:
    """``payload[key]`` when it is a ``kind``; None when absent or null; ``BadRequest``
    naming ``where.key`` for any other type (a bool is never a number)."""
    value = payload.get(key)
    if value is None:
        return None
    if not _is(value, kind):
        name = _TYPE_NAMES.get(kind, kind.__name__)
        raise BadRequest(f"{where}.{key} must be {name}, not {_json_type(value)}")
    return value  # type: ignore[no-any-return]


def need(payload: Mapping[str, Any], key: str, kind: type[T], where: str) -> T:
    """As ``get``, and ``BadRequest`` when ``key`` is absent or null."""
    value = get(payload, key, kind, where)
    if value is None:
        raise BadRequest(f"{where}.{key} is missing")
    return value


def check_shape(payload: Mapping[str, Any], shape: Shape, where: str) -> None:
    """Every field of ``payload`` named in ``shape`` (at any depth the shape describes) has
    one of its types, else ``BadRequest`` naming it (``$.event.files[0].id must be a
    string``). Absent fields are not checked; the shape's depth bounds the recursion."""
    for key, (types, inner) in shape.items():
        if key not in payload:
            continue
        value = payload[key]
        if not any(_is(value, kind) for kind in types):
            names = " or ".join(_TYPE_NAMES.get(kind, kind.__name__) for kind in types)
            raise BadRequest(f"{where}.{key} must be {names}, not {_json_type(value)}")
        if inner is None:
            continue
        if isinstance(value, dict):
            check_shape(value, inner, f"{where}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    raise BadRequest(f"{where}.{key}[{i}] must be an object")
                check_shape(item, inner, f"{where}.{key}[{i}]")


def _json_type(value: object) -> str:
    for kind, name in ((bool, "true or false"), (str, "a string"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    if isinstance(value, list):
        return "an array"
    return "null" if value is None else "a number"
