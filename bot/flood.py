"""Team-group card floods: new-ticket cards a group's rate limit cannot carry are folded.

Each new ticket's card for a team's group chat carries its digest line beside the card
(``payload["team_card"]``: number, priority, title, assignee, locale), and the outbox gives
those rows the chat's coalesce key, so that a group's waiting cards are claimed together.
``plan`` decides how they go out:

- **No flood** — the group's declared limits can send every waiting card within ``HORIZON``
  seconds: each goes as its own card, P0 first.
- **Flood** — they cannot: the cards are folded into digests of at most ``MAX_LINES`` lines
  ("又有 37 张新工单：…"), in priority order, and marked superseded; their card references
  become stale. A P0's card is never folded: P0 cards go first, as many as the limit carries
  besides the digests of the rest. A P0 beyond that (a flood of P0s) is named at the top of
  the first digest ("card follows") so the group hears of it now, and its card is still sent,
  as soon as the limit allows (``payload["team_card"]["announced"]``: it is not named again).

A folded card was never shown: its ticket's later changes are not sent to that group (no
update is queued for a stale reference, and one queued before the fold is dropped, never posted
as a card out of the blue). The group has the ticket's digest line; the assignee has their own
card in a direct chat. If the ticket changes hands later, the group gets a fresh card for it
(``lifecycle.publish_staff_cards``), folded again if a flood is still on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.events import Text
from bot.texts import say
from storage.models import OutboxMessage
from storage.outbox import TEAM_CARD

__all__ = [
    "HORIZON",
    "MAX_LINES",
    "TEAM_CARD",
    "Step",
    "announce",
    "announced",
    "digest",
    "keeps_card",
    "line",
    "plan",
]

#: Seconds within which a group should hear of a new ticket: when its limits cannot send every
#: waiting card within this long, they are folded. (A candidate for ``[outbox]`` settings.)
HORIZON = 30.0
#: Tickets per digest: 20 lines stay within every platform's message size.
MAX_LINES = 20


@dataclass(frozen=True, slots=True)
class Step:
    """One message of a plan: a row's own card, or a digest of several rows' lines."""

    rows: tuple[OutboxMessage, ...]
    digest: bool = False


def line(
    number: str, priority: str, title: str, assignee: str | None, locale: str
) -> dict[str, Any]:
    """What a team-group card carries beside it: its line in a digest."""
    return {
        "number": number,
        "priority": priority,
        "title": title[:30],
        "assignee": assignee,
        "locale": locale,
    }


def _line(row: OutboxMessage) -> dict[str, Any]:
    found: dict[str, Any] = row.payload[TEAM_CARD]
    return found


def keeps_card(row: OutboxMessage) -> bool:
    """A P0's card is never folded (in a digest, its line says the card follows)."""
    return bool(_line(row)["priority"] == "P0")


def announced(row: OutboxMessage) -> bool:
    """Named in a digest already; its card is still owed."""
    return bool(_line(row).get("announced"))


def plan(
    rows: Sequence[OutboxMessage],
    capacity: int | None,
    *,
    max_lines: int = MAX_LINES,
) -> list[Step]:
    """How a group's waiting cards go out, given how many messages its limits can send within
    the horizon (``None``: no limit)."""
    ordered = sorted(rows, key=lambda r: (_line(r)["priority"], r.id))
    if capacity is None or len(ordered) <= capacity:
        return [Step((r,)) for r in ordered]
    fresh = [r for r in ordered if not announced(r)]
    owed = [r for r in ordered if announced(r)]
    first = [r for r in fresh if keeps_card(r)]
    rest = [r for r in fresh if not keeps_card(r)]
    budget = 0  # P0 cards that fit, besides the digests of every other line
    for cards in range(min(len(first), capacity), 0, -1):
        if cards + math.ceil((len(first) - cards + len(rest)) / max_lines) <= capacity:
            budget = cards
            break
    lines = first[budget:] + rest
    steps = [Step((r,)) for r in first[:budget]]
    for start in range(0, len(lines), max_lines):
        chunk = tuple(lines[start : start + max_lines])
        steps.append(Step(chunk, digest=len(chunk) > 1))  # a digest of one: the card itself
    return steps + [Step((r,)) for r in owed]


def digest(rows: Sequence[OutboxMessage]) -> Text:
    """The digest of ``rows``' lines, in the first row's language."""
    locale = _line(rows[0])["locale"]
    out = [say("flood.title", locale, n=len(rows))]
    for row in rows:
        item = _line(row)
        who = item.get("assignee") or say("unassigned", locale)
        if keeps_card(row):
            who += say("flood.card_follows", locale)
        out.append(
            say(
                "flood.line",
                locale,
                number=item["number"],
                priority=item["priority"],
                title=item["title"],
                who=who,
            )
        )
    out.append(say("flood.hint", locale))
    return Text("\n".join(out))


def announce(row: OutboxMessage) -> dict[str, Any]:
    """``row``'s payload once a digest has named it (its card is still to be sent)."""
    return {**row.payload, TEAM_CARD: {**_line(row), "announced": True}}
