"""What an SLA nag says, alone or folded with others into a digest.

A nag carries its ``Item`` (ticket, clock lines, who to @-mention) beside the message, so that
when several wait for one chat the outbox can fold them into digest messages of at most
``digest_max_lines`` tickets each instead of sending them one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.events import Text
from bot.texts import say

__all__ = ["Item", "digests", "group_text"]


@dataclass
class Item:
    """What one nag says about one ticket (one line per clock)."""

    key: str
    number: str
    priority: str
    title: str
    lines: list[str] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "number": self.number,
            "priority": self.priority,
            "title": self.title,
            "lines": self.lines,
            "mentions": self.mentions,
        }


def group_text(item: Item, locale: str) -> Text:
    """A nag posted in a group: a text that @-mentions (the buttons are on the card there)."""
    lines = [
        say("sla.nag_title", locale, number=item.number, priority=item.priority, title=item.title),
        *item.lines,
        say("sla.group_hint", locale),
    ]
    return Text("\n".join(lines), mentions=tuple(item.mentions))


def digests(items: Sequence[Item], locale: str, *, direct: bool, max_lines: int) -> list[Text]:
    """Nags folded into digests of at most ``max_lines`` tickets each."""
    out = []
    for start in range(0, len(items), max_lines):
        chunk = items[start : start + max_lines]
        mentions = tuple(dict.fromkeys(m for i in chunk for m in i.mentions))
        lines = [say("sla.digest_title", locale, n=len(chunk))]
        sep = "；" if locale == "zh" else "; "
        lines += [
            say(
                "sla.digest_line",
                locale,
                number=i.number,
                priority=i.priority,
                title=i.title[:40],
                what=sep.join(i.lines),
            )
            for i in chunk
        ]
        if not direct:
            lines.append(say("sla.group_hint", locale))
        out.append(Text("\n".join(lines), mentions=mentions))
    return out
