"""Repeat reports: the same fault reported again, by another customer or the same one.

A report about to become a ticket is compared with the tickets of the same asset (or, when it
names no registered asset, the same site) changed within ``[intake] repeat_hours``:

- **Same fault, still open** (not resolved, closed or cancelled; created within the window):
  the report is a *suspected repeat*. It still becomes its own ticket (nothing is lost), but
  unassigned and not routed — no second engineer is paged while staff decide — in the team of
  the ticket it repeats. The reporter is told "似乎与 GD-n 相同…", and the staff card (team
  chats and the direct chat of GD-n's assignee) shows the link with [合并] [不是同一问题].
  The SLA clocks run as for any new ticket, so an undecided repeat still reminds the team.
- **Same fault, settled lately** (resolved or closed within the window): the new ticket is
  routed as usual and links the last one ("上次 GD-n 原因：…" on the staff card); the reporter
  is told it is linked. Nothing is reopened (the customer may have confirmed the last fix).

*Same fault* is one explainable rule: both name the same alarm code; or neither names a
different alarm code and their words overlap — the share of the shorter report's tokens
(jieba, ``bot.nlp.similar.case_tokens``, less the machine's and the site's own words) found in
the other is at least ``WORDS_AT_LEAST``. Without an asset, two reports that name different
devices are never the same.

合并 closes the repeat into GD-n through the state table (``TicketAction.MERGE``: closed,
``merged_into`` set); its reporter becomes a follower of GD-n and hears every later milestone
of GD-n in their own chat and language (``bot.lifecycle``). 不是同一问题 routes the ticket
now. Dispatchers, managers and the assignee of GD-n may press either; both are on the record
of both tickets.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot import lifecycle
from bot.adapters.codec import ActionToken
from bot.errors import InvalidTransition, NotAllowed, QuestionAnswered, StaleTransition
from bot.events import Address, Text
from bot.flows import routing
from bot.nlp.similar import case_tokens
from bot.texts import say
from bot.tickets import OPEN_STATES, IntakeAction, Role, TicketAction, TicketState, roles_of
from bot.unit import Turn
from storage.records import Person, Ticket

__all__ = [
    "WORDS_AT_LEAST",
    "Repeat",
    "announce",
    "detect",
    "intake_of",
    "pressed",
    "same_fault",
    "undecided",
]

#: The share of the shorter report's own words that the other must have too.
WORDS_AT_LEAST = 0.5

_S = TicketState
_WORKING = frozenset(s.value for s in OPEN_STATES - {_S.RESOLVED})
_SETTLED = frozenset({_S.RESOLVED.value, _S.CLOSED.value})
_DECIDERS = frozenset({Role.DISPATCHER, Role.MANAGER})
_LOOKED_AT = 10  # the newest tickets of the asset (or site) compared with


@dataclass(frozen=True, slots=True)
class Repeat:
    """What a report repeats: an open ticket (a suspected repeat) or a settled one (a link)."""

    original: Ticket
    open: bool
    why: dict[str, Any]  # {"scope": "asset" | "site", "alarm": str | None, "score": float}


@functools.lru_cache(maxsize=1024)
def _words(text: str) -> frozenset[str]:
    """A report's words, kept for the next report that is compared with it (a burst about
    one line stop compares each new report with the same few tickets)."""
    return frozenset(case_tokens(text))


def same_fault(
    new_text: str,
    new_alarm: str | None,
    old_text: str,
    old_alarm: str | None,
    *,
    own_words: str = "",
) -> dict[str, Any] | None:
    """Why two reports are the same fault (``{"alarm", "score"}``), or None."""
    a, b = (new_alarm or "").upper(), (old_alarm or "").upper()
    if a and b:
        return {"alarm": a, "score": 1.0} if a == b else None
    ignore = _words(own_words) | {a.lower(), b.lower()}
    mine = _words(new_text) - ignore
    theirs = _words(old_text) - ignore
    if not mine or not theirs:
        return None
    score = len(mine & theirs) / min(len(mine), len(theirs))
    return {"alarm": None, "score": round(score, 2)} if score >= WORDS_AT_LEAST else None


async def detect(
    turn: Turn,
    *,
    asset_id: int | None,
    asset_name: str | None,
    site: str | None,
    device: str | None,
    alarm: str | None,
    text: str,
) -> Repeat | None:
    """The ticket a report about to be made repeats, if any (see the module's docstring)."""
    hours = turn.env.settings.intake.repeat_hours
    if hours <= 0 or (asset_id is None and not site):
        return None
    since = turn.now - timedelta(hours=hours)
    candidates = await _candidates(turn, asset_id=asset_id, site=site, since=since)
    scope = "asset" if asset_id is not None else "site"
    own_words = " ".join(w for w in (asset_name, device, site) if w)
    working: list[Repeat] = []
    settled: list[Repeat] = []
    for old in candidates:
        if old.merged_into is not None or undecided(old):
            continue  # the original of a chain is the one to link to
        if scope == "site" and device and old.device_code and device != old.device_code:
            continue
        why = same_fault(
            text, alarm, old.description or old.title, old.alarm_code, own_words=own_words
        )
        if why is None:
            continue
        why = {"scope": scope, **why}
        if old.state in _WORKING and old.created_at >= since:
            working.append(Repeat(old, True, why))
        elif old.state in _SETTLED and (old.closed_at or old.updated_at) >= since:
            settled.append(Repeat(old, False, why))
    if working:
        return min(working, key=lambda r: r.original.id)  # the first report of the fault
    return max(settled, key=lambda r: r.original.id) if settled else None


async def _candidates(
    turn: Turn, *, asset_id: int | None, site: str | None, since: datetime
) -> list[Ticket]:
    """The asset's (else the site's) tickets changed since ``since``, newest first: one read;
    what this unit holds, changed or new, wins over the stored copy."""
    unit = turn.unit
    stored = await unit.recent_tickets(asset_id=asset_id, site=site, since=since, limit=_LOOKED_AT)
    found = {t.id: unit.tickets.get(t.id, t) for t in stored}
    for t in unit.tickets.values():
        if (t.asset_id == asset_id) if asset_id is not None else (t.site == site):
            found.setdefault(t.id, t)
    return sorted(found.values(), key=lambda t: t.id, reverse=True)


def intake_of(found: Repeat | None) -> dict[str, Any]:
    """What the new ticket keeps of it (on its ``intake``; the cards draw from it)."""
    if found is None:
        return {}
    old = found.original
    if found.open:
        link = {"id": old.id, "number": old.number, "what": _what(old), **found.why}
        return {"repeat": {**link, "status": "suspected"}}
    cause = old.root_cause or (old.diagnosis or {}).get("suspected_cause")
    return {"previous": {"id": old.id, "number": old.number, "cause": cause, **found.why}}


async def announce(turn: Turn, chat: Address, ticket: Ticket, found: Repeat | None) -> None:
    """Tell the reporter what their report is linked to; a suspected repeat's card also goes to
    the direct chat of the assignee of the ticket it repeats (who knows the fault best)."""
    if found is None:
        return
    old, locale = found.original, turn.locale
    key = "repeat.told" if found.open else "repeat.previous_told"
    turn.send(chat, Text(say(key, locale, number=old.number, what=_what(old))), ticket_id=ticket.id)
    if not found.open:
        return
    env = turn.env
    assignee = await turn.unit.person(old.assignee_id)
    dm = env.directory.direct_address(assignee.key, set(env.platforms)) if assignee else None
    shown = {r.destination for r in turn.unit.refs.get(ticket.id, []) if not r.stale}
    if assignee is not None and dm is not None and dm.ref not in shown:
        their = assignee.locale or env.settings.locale
        await lifecycle.publish(turn, ticket, dm, "staff", their)


async def pressed(turn: Turn, token: ActionToken, ticket: Ticket) -> None:
    """合并 or 不是同一问题 on a suspected repeat's staff card."""
    assert turn.person is not None
    link = dict((ticket.intake or {}).get("repeat") or {})
    if not undecided(ticket):
        raise QuestionAnswered()
    original = await turn.unit.ticket(int(link["id"]))
    if original is None:
        raise QuestionAnswered()
    if not _may_decide(turn.person, ticket, original):
        raise NotAllowed(action=token.action.value, state=ticket.state)
    if token.action == IntakeAction.SAME_FAULT:
        await _merge(turn, ticket, original, link, token.version)
    else:
        await _split(turn, ticket, original, link, token.version)


def undecided(ticket: Ticket) -> bool:
    """A suspected repeat staff have not decided about: nothing may route it meanwhile."""
    return ((ticket.intake or {}).get("repeat") or {}).get("status") == "suspected"


def _may_decide(person: Person, ticket: Ticket, original: Ticket) -> bool:
    """Dispatchers and managers; and the engineer working on the ticket it would merge into."""
    if roles_of(person, ticket) & _DECIDERS:
        return True
    return original.assignee_id is not None and original.assignee_id == person.id


async def _merge(
    turn: Turn, ticket: Ticket, original: Ticket, link: dict[str, Any], version: int
) -> None:
    if original.state not in _WORKING | {_S.RESOLVED.value}:
        raise InvalidTransition(action=TicketAction.MERGE.value, state=original.state)
    ticket.intake = {**(ticket.intake or {}), "repeat": {**link, "status": "merged"}}
    ticket.merged_into = original.id  # (a refusal below undoes the whole turn: bot/unit.py)
    await lifecycle.apply(
        turn, ticket, TicketAction.MERGE, turn.person, via="button", version=version
    )
    follower = {"ticket": ticket.id, "number": ticket.number, "reporter": ticket.reporter_id,
                "chat": ticket.origin_chat}  # fmt: skip
    intake = dict(original.intake or {})
    intake["followers"] = [*intake.get("followers", []), follower]
    original.intake = intake  # (replaced, never mutated)
    original.updated_at = turn.now
    turn.record(ticket, "repeat", via="button", data={"decision": "merge", "into": original.number})
    merged = {"decision": "merge", "from": ticket.number, "follower": follower}
    turn.record(original, "repeat", via="button", data=merged)
    await lifecycle.refresh(turn, original)  # its cards list the merged report
    await _tell_reporter(turn, ticket, "repeat.merged_told", original)
    turn.notify_presser(say("repeat.merged", turn.locale, own=ticket.number,
                            number=original.number))  # fmt: skip


async def _split(
    turn: Turn, ticket: Ticket, original: Ticket, link: dict[str, Any], version: int
) -> None:
    if version != ticket.version:
        raise StaleTransition()
    ticket.intake = {**(ticket.intake or {}), "repeat": {**link, "status": "split"}}
    ticket.version += 1  # the buttons go
    ticket.updated_at = turn.now
    turn.record(ticket, "repeat", via="button", data={"decision": "split", "of": original.number})
    turn.record(original, "repeat", via="button",
                data={"decision": "split", "from": ticket.number})  # fmt: skip
    routable = ticket.state == _S.NEW.value and ticket.assignee_id is None  # (not claimed)
    decision = await routing.decide(turn, routing.job_of(turn.unit, ticket)) if routable else None
    if decision is None or decision.winner is None:
        await lifecycle.refresh(turn, ticket)
    elif not await routing.broadcast(turn, ticket, decision):
        await routing.assign(turn, ticket, decision)
    await _tell_reporter(turn, ticket, "repeat.split_told", original)
    turn.notify_presser(say("repeat.split", turn.locale, own=ticket.number))


async def _tell_reporter(turn: Turn, ticket: Ticket, key: str, original: Ticket) -> None:
    reporter = await turn.unit.person(ticket.reporter_id)
    locale = (reporter.locale if reporter else None) or turn.env.settings.locale
    text = say(key, locale, own=ticket.number, number=original.number)
    turn.send(Address.parse(ticket.origin_chat), Text(text), ticket_id=ticket.id)


def _what(ticket: Ticket) -> str:
    """A ticket in a few words: "3号注塑机 停机了，报警E102"."""
    title = ticket.title if len(ticket.title) <= 30 else ticket.title[:30] + "…"
    device = ticket.device_code
    return f"{device} {title}" if device and device not in title else title
