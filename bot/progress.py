"""The customer's view of a ticket: signed progress links, and where the ticket stands in the
customer's words.

``ProgressLinks`` signs a ticket id into a short token for ``/t/<token>``: no sign-in and no
database row; the key is derived from the hub's secret with a label of its own (as
``bot.adapters.codec.TokenCodec`` does), so a progress token can never pass for a button token,
an asset link or a session, nor name another ticket. A link has no clock of its own: it works
while its ticket is open and for ``[progress] expire_days`` after the ticket was closed or
cancelled (``expired``), so an old message's link keeps working as long as it is useful.

The rest is pure wording (no I/O): the short label and the sentence for each state
(``label``, ``status``), the milestone text for a transition (``milestone_key``), the promises
on the customer's card (``promise_summary``) and the page's timeline (``timeline``).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.mac import KeyedSha256
from bot.texts import TEXTS, local_time, say, short_time
from bot.tickets import ClockKind, TicketAction, TicketState
from storage.records import Clock

__all__ = [
    "ProgressLinks",
    "Step",
    "expired",
    "label",
    "milestone_key",
    "overdue_line",
    "promise_summary",
    "staff_role",
    "status",
    "timeline",
]

_SETTLED = frozenset({TicketState.CLOSED.value, TicketState.CANCELLED.value})


class ProgressLinks:
    """Tokens naming a ticket: ``base64url(varint-free big-endian id | HMAC[:12])``."""

    MAC_LEN = 12
    MAX_ID_BYTES = 8

    def __init__(self, secret: bytes) -> None:
        self._keyed = KeyedSha256.derived(secret, b"gongdan/progress-link/v1")

    def _mac(self, body: bytes) -> bytes:
        return self._keyed.digest(body)[: self.MAC_LEN]

    def sign(self, ticket_id: int) -> str:
        if ticket_id < 0:
            raise ValueError("a ticket id is not negative")
        body = ticket_id.to_bytes(max(1, (ticket_id.bit_length() + 7) // 8), "big")
        return base64.urlsafe_b64encode(body + self._mac(body)).rstrip(b"=").decode()

    def verify(self, token: object) -> int | None:
        """The ticket id a token names, or None when it is malformed, forged or tampered."""
        if not isinstance(token, str) or not 16 <= len(token) <= 40 or not token.isascii():
            return None
        if not token.replace("-", "").replace("_", "").isalnum():
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            return None
        body, mac = raw[: -self.MAC_LEN], raw[-self.MAC_LEN :]
        if not 1 <= len(body) <= self.MAX_ID_BYTES:
            return None
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != token:
            return None  # one spelling per token (no trailing bits that decode the same)
        return int.from_bytes(body, "big") if hmac.compare_digest(mac, self._mac(body)) else None

    def url(self, public_url: str, ticket_id: int) -> str:
        return f"{public_url.rstrip('/')}/t/{self.sign(ticket_id)}"


def expired(state: str, closed_at: datetime | None, updated_at: datetime, now: datetime,
            days: int) -> bool:  # fmt: skip
    """Whether a ticket's link no longer works: ``days`` after it was closed or cancelled (a
    cancelled ticket has no ``closed_at``: its last change counts)."""
    if state not in _SETTLED:
        return False
    ended = closed_at or updated_at
    return now - ended > timedelta(days=days)


def label(state: str, locale: str) -> str:
    """The state in two or three words, as the customer's card and page show it."""
    return say(f"progress.label.{state}", locale)


def status(state: str, locale: str, engineer: str | None) -> str:
    """The state in a sentence, naming the engineer where it helps."""
    name = engineer or say("progress.engineer", locale)
    return say(f"progress.status.{state}", locale, name=name)


def milestone_key(action: TicketAction, target: TicketState) -> str:
    """What the customer is told after ``action``: its own words when the state it leads to
    would say it wrong (备件已到 leads to 维修中, as 没修好 does), else the state's."""
    own = f"progress.told.{action.value}"
    return own if own in TEXTS else f"milestone.{target.value}"


def staff_role(role: str, locale: str) -> str:
    """工程师 / 调度 / 经理, as a reply to the customer is signed."""
    return say(f"reply.role.{role}", locale) if f"reply.role.{role}" in TEXTS else ""


_PROMISED = (ClockKind.RESPOND, ClockKind.ARRIVE, ClockKind.RESOLVE)


def promise_summary(clocks: Sequence[Clock], now: datetime, locale: str, tz: ZoneInfo) -> str:
    """For the customer's card: "10:10 前到场 · 18:00 前修好" — the promises not yet kept
    (a running respond, arrive or resolve clock), never a stay clock or its internal state."""
    parts = []
    for kind in _PROMISED:
        clock = next((c for c in clocks if c.kind == kind), None)  # (a StrEnum equals its text)
        if clock is None or clock.met_at is not None or clock.due_at is None:
            continue
        if clock.running_since is None:
            continue  # paused (waiting for the customer's confirmation, out of hours)
        at = short_time(clock.due_at, tz, now)
        text = say(f"progress.promise.{kind.value}", locale, at=at)
        if clock.breached_at is not None:
            text += "（" if locale == "zh" else " ("
            text += say("progress.promise.late", locale) + ("）" if locale == "zh" else ")")
        parts.append(text)
    return " · ".join(parts)


def overdue_line(clock: Clock, locale: str, tz: ZoneInfo) -> str:
    """A breached clock as the customer reads it (an escalation posted in their own group):
    the promise that is late and what we do about it — never the clock's staff name."""
    if clock.kind == ClockKind.STAY.value:
        state = clock.state or ""
        if f"progress.overdue.stay.{state}" in TEXTS:
            return say(f"progress.overdue.stay.{state}", locale)
        named = label(state, locale) if f"progress.label.{state}" in TEXTS else ""
        return say("progress.overdue.stay", locale, label=named)
    due = local_time(clock.due_at, tz)[5:] if clock.due_at is not None else "—"
    return say(f"progress.overdue.{clock.kind}", locale, due=due)


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the page's timeline."""

    at: datetime
    text: str
    kind: str  # the action, "reported" or "reply"
    current: bool = False


def timeline(
    created_at: datetime,
    events: Iterable[Any],
    locale: str,
    names: Mapping[str, str],
) -> list[Step]:
    """The steps a customer cares about, oldest first: the report, each transition worth a
    word (who was assigned, accepted, set off, arrived; parts, repair, fixed, closed) and each
    staff reply. ``events``: audit rows (``at``, ``actor``, ``kind``, ``data``); ``names``:
    staff person keys → names (who an assignment named)."""
    steps = [Step(created_at, say("progress.event.reported", locale), "reported")]
    for e in events:
        data = e.data or {}
        if e.kind == "transition":
            action = str(data.get("action", ""))
            key = f"progress.event.{action}"
            if key not in TEXTS:
                continue
            name = e.actor
            if action == "assign":
                name = names.get(str(data.get("assignee")), "")
                if not name:
                    continue
            steps.append(Step(e.at, say(key, locale, name=name), action))
        elif e.kind == "customer_reply":
            role = staff_role(str(data.get("role", "engineer")), locale)
            text = say("progress.event.reply", locale, role=role, name=e.actor,
                       text=str(data.get("text", "")))  # fmt: skip
            steps.append(Step(e.at, text, "reply"))
    now = max(i for i, step in enumerate(steps) if step.kind != "reply")  # where it stands
    steps[now] = Step(steps[now].at, steps[now].text, steps[now].kind, current=True)
    return steps
