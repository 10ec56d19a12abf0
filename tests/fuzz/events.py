"""What a parser's output must be when it is not a refusal: events the inbox can store."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.events import Inbound, inbound_from_json, inbound_to_json
from bot.inbox import TextCap
from storage import inbound
from tests.conftest import RunningHub


def assert_storable(events: Iterable[Any]) -> None:
    """Each is an ``Inbound`` with string ids that round-trips through its stored form, and
    stays within the text cap once the inbox has applied it."""
    cap = TextCap()
    for event in events:
        assert isinstance(event, Inbound)
        for value in (event.event_id, event.chat.chat_id, event.chat.platform):
            assert isinstance(value, str)
        assert isinstance(event.sender.user_id, str) and isinstance(event.sender.name, str)
        capped = cap.apply(event)
        assert inbound_from_json(inbound_to_json(capped)) == capped
        assert len(getattr(capped, "text", "")) <= cap.text_chars


async def stored(hub: RunningHub) -> int:
    """How many inbound events the hub holds (whatever became of them since)."""
    async with hub.hub.db.read() as s:
        return sum((await inbound.counts(s)).values())
