"""The API's query strings: any parameters are a checked query or a 400 naming what is wrong."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict

from bot.errors import BadRequest
from bot.web.api import ticket_query, ticket_ref
from tests.fuzz.strategies import FUZZ

names = st.sampled_from(["state", "priority", "assignee", "limit", "offset", "after", "x"])
values = (
    st.text(max_size=12)
    | st.integers(-(10**30), 10**30).map(str)
    | st.sampled_from(["new", "assigned,new", "P0", "P9", "1e3", "0x10", " 5", "١٢", "1_000"])
)


@FUZZ
@given(pairs=st.lists(st.tuples(names, values), max_size=6))
def test_any_query_is_checked_or_refused(pairs: list[tuple[str, str]]) -> None:
    try:
        q = ticket_query(MultiDict(pairs))
    except BadRequest as exc:
        assert str(exc)
        return
    assert 1 <= q.limit <= 1000 and 0 <= q.offset <= 1_000_000
    assert q.priority in (None, "P0", "P1", "P2", "P3")
    assert q.assignee is None or 1 <= len(q.assignee) <= 200
    keys = [k for k, _ in pairs]
    assert "x" not in keys and "after" not in keys and len(keys) == len(set(keys))


@FUZZ
@given(
    ref=st.text(max_size=30)
    | st.integers(-(10**20), 10**20).map(str)
    | st.integers(0, 10**20).map(lambda n: f"GD-{n}")
)
def test_any_ticket_ref_is_an_id_a_number_or_refused(ref: str) -> None:
    try:
        parsed = ticket_ref(ref)
    except BadRequest as exc:
        assert "GD-<n>" in str(exc)
        return
    if isinstance(parsed, int):
        assert 0 <= parsed < 2**63
    else:
        assert parsed.startswith("GD-") and 0 <= int(parsed[3:]) < 2**63
