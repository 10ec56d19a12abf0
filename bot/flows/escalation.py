"""The SLA sweep: nag before a deadline, escalate after it.

Ticked by the scheduler, the sweep claims tickets whose ``sla_next_at`` has come (``FOR UPDATE
SKIP LOCKED`` on PostgreSQL, so any number of hubs share the work and each nag is decided by
exactly one of them), asks each clock what is due (``bot.sla.clocks.due_events``), writes every
warning, breach and escalation step to the audit trail, and queues the messages in the same
unit of work — so a nag exists exactly when the step that sent it does, across crashes and
restarts.

Who hears what: a warning goes to the assignee (or, unclaimed, to the team's group); the
escalation chain's steps notify the assignee, post in the origin group, post in the team group
with an @-mention of the lead, notify the managers, or hand the ticket to the next candidate
(``ASSIGN`` through the state table). Direct messages are cards with buttons (接单, 我来处理,
转派, 延期); group posts are texts that @-mention (the buttons are on the ticket's card in that
group). A post in the customer's own group (``post_origin``) is worded for the customer — the
promise that is late, never a clock's staff name such as 停留「待备件」 — with the progress link.

Every nag to a chat carries that chat's coalesce key: when several wait for one chat (a rate
limit or a 429 holds them, or a sweep has several for it) the outbox folds them into digests.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot import progress
from bot.cards.nag import nag_card
from bot.cards.parts import customer_stay_line
from bot.errors import FlowError
from bot.events import Address, Text
from bot.flows import routing
from bot.lifecycle import progress_link
from bot.sla.clocks import Breach, Step, Warning, due_events, policy_of, project, sync
from bot.sla.digest import Item, group_text
from bot.sla.view import clock_line
from bot.texts import say
from bot.unit import Turn
from bot.work import Work
from storage import tickets as ticket_table
from storage.records import Clock, Ticket

__all__ = ["manager_targets", "sweep"]

log = logging.getLogger(__name__)

Target = tuple[Address, bool, str, list[str]]  # where, direct?, locale, people to @-mention

_NOBODY = {
    "notify_assignee": "no assignee with a direct chat on a running platform",
    "post_origin": "the ticket came from a one-to-one chat (or its platform is not running)",
    "post_team": "no team group chat on a running platform",
    "notify_manager": "no manager with a direct chat on a running platform",
}


@dataclass
class _Nag:
    destination: Address
    direct: bool
    locale: str
    item: Item
    keys: list[str] = field(default_factory=list)


async def sweep(work: Work, *, now: datetime, batch: int = 50) -> int:
    """One pass: handle up to ``batch`` tickets that are due; return how many were handled."""
    async with work.db.read() as s:
        if not await ticket_table.any_due(s, now):
            return 0  # an idle sweep only reads: it never takes SQLite's write lock
    async with work.unit(now=now) as tx:
        ids = await ticket_table.claim_due(tx.store.conn, now, batch)
        await tx.unit.preload(ids)
        for ticket_id in ids:
            ticket = tx.unit.tickets[ticket_id]
            try:
                with tx.unit.turn():
                    turn = Turn(tx.unit, f"sla:{ticket_id}:{now.timestamp():.3f}")
                    await _ticket(turn, ticket)
            except Exception:  # one broken ticket must not stop the sweep for all others
                log.exception("SLA sweep of ticket %d failed; looking again in a minute", ticket_id)
                ticket.sla_next_at = now + timedelta(minutes=1)
    return len(ids)


async def _ticket(turn: Turn, ticket: Ticket) -> None:
    unit = turn.unit
    unit.touch(ticket.id)
    policy = await policy_of(unit, ticket)
    clocks = unit.clocks.get(ticket.id, [])
    if not clocks or any(c.signature != policy.signature for c in clocks):
        clocks = await sync(unit, ticket, actor=None)  # the policy changed: apply it first
    nags: dict[str, _Nag] = {}
    for clock in list(clocks):
        for due in due_events(clock, turn.now, policy):
            match due:
                case Warning():
                    to = await _warn_targets(turn, ticket)
                    assert clock.due_at is not None  # (a snoozed clock warns anew: new due)
                    _nags(
                        turn, nags, ticket, clock, to, f"w{due.level}@{clock.due_at:%Y%m%dT%H%M%S}"
                    )
                    _audit(turn, ticket, "sla_warning", clock, to, fraction=due.fraction)
                case Breach():
                    _audit(turn, ticket, "sla_breach", clock, [], due=due.at.isoformat())
                case Step() if due.step.do == "reassign":
                    await _reassign(turn, ticket, clock, due)  # later steps see the new assignee
                case Step():
                    to = await _step_targets(turn, ticket, due.step.do)
                    k = due.round * len(policy.chain.steps) + due.index
                    assert clock.breached_at is not None  # (after a snooze: another breach)
                    when = f"{clock.breached_at:%Y%m%dT%H%M%S}"
                    _nags(turn, nags, ticket, clock, to, f"s{k}@{when}")
                    where = {"step": due.index, "round": due.round, "do": due.step.do}
                    if to:
                        _audit(turn, ticket, "sla_escalation", clock, to, **where)
                    else:
                        reason = _NOBODY[due.step.do]
                        _audit(turn, ticket, "sla_skipped", clock, [], **where, reason=reason)
    project(ticket, unit.clocks.get(ticket.id, []))
    for nag in nags.values():
        await _send(turn, ticket, nag)


def _audit(
    turn: Turn, ticket: Ticket, kind: str, clock: Clock, to: Sequence[Target], **data: Any
) -> None:
    turn.env.metrics.sla_events.labels(kind.removeprefix("sla_"), clock.kind).inc()
    turn.record(
        ticket,
        kind,
        via="system",
        data={
            "clock": clock.kind,
            **({"state": clock.state} if clock.state else {}),
            "policy": clock.policy,
            **data,
            **({"to": [a.ref for a, *_ in to]} if to else {}),
        },
    )


# ------------------------------------------------------------------------------- recipients


def _direct(turn: Turn, person_key: str) -> Target | None:
    env = turn.env
    dm = env.directory.direct_address(person_key, set(env.platforms))
    if dm is None:
        return None
    person = env.directory.people[person_key]
    return dm, True, person.locale or env.settings.locale, []


async def _assignee_key(turn: Turn, ticket: Ticket) -> str | None:
    person = await turn.unit.person(ticket.assignee_id)
    return person.key if person is not None else None


def _team(turn: Turn, ticket: Ticket) -> Any:
    directory = turn.env.directory
    return directory.teams.get(ticket.team_key or "") or directory.team_for(None)


def _group_targets(turn: Turn, ticket: Ticket, mention: list[str]) -> list[Target]:
    team = _team(turn, ticket)
    chats = [Address.parse(c) for c in team.chats] if team is not None else []
    locale = turn.env.settings.locale
    return [(c, False, locale, mention) for c in chats if c.platform in turn.env.platforms]


async def _warn_targets(turn: Turn, ticket: Ticket) -> list[Target]:
    key = await _assignee_key(turn, ticket)
    if key is not None:
        dm = _direct(turn, key)
        if dm is not None:
            return [dm]
    team = _team(turn, ticket)
    return _group_targets(turn, ticket, [team.lead] if team and team.lead else [])


async def _step_targets(turn: Turn, ticket: Ticket, do: str) -> list[Target]:
    key = await _assignee_key(turn, ticket)
    team = _team(turn, ticket)
    match do:
        case "notify_assignee":
            dm = _direct(turn, key) if key else None
            return [dm] if dm else []
        case "post_origin":
            origin = Address.parse(ticket.origin_chat)
            kind = await turn.unit.chat_kind(origin)
            if kind != "group" or origin.platform not in turn.env.platforms:
                return []  # a one-to-one chat is the customer's own: no staff escalation there
            return [(origin, False, turn.env.settings.locale, [key] if key else [])]
        case "post_team":
            mention = [team.lead] if team and team.lead else []
            return _group_targets(turn, ticket, mention + ([key] if key else []))
        case "notify_manager":
            people = turn.env.directory.people
            lead = team.lead if team else None
            managers = (
                [lead]
                if lead and people[lead].role == "manager"
                else [p.id for p in people.values() if p.role == "manager"]
            )
            found = [_direct(turn, m) for m in managers]
            return [t for t in found if t is not None]
    return []


async def manager_targets(turn: Turn, ticket: Ticket) -> list[Target]:
    """Where a ticket's managers hear of it outside the SLA chain (a low CSAT score): the
    ``notify_manager`` step's direct chats, else the team's group chats."""
    found = await _step_targets(turn, ticket, "notify_manager")
    return found or await _step_targets(turn, ticket, "post_team")


def _nags(
    turn: Turn,
    nags: dict[str, _Nag],
    ticket: Ticket,
    clock: Clock,
    to: list[Target],
    event: str,
) -> None:
    """One nag per destination and ticket; several clocks due at once give it several lines."""
    policies = turn.env.policies
    assert policies is not None
    key = f"sla:{ticket.id}:{clock.kind}:{clock.state or ''}:{event}"
    tz = turn.env.settings.tz
    for dest, direct, locale, mentions in to:
        if _customers(ticket, dest, direct):  # the customer's group: their words, not ours
            line = customer_stay_line(ticket, clock, locale) or progress.overdue_line(
                clock, locale, tz
            )
        else:
            line = clock_line(clock, turn.now, policies, locale, tz)
        seen = nags.get(dest.ref)
        if seen is None:
            item = Item(
                key=key,
                number=ticket.number or "",
                priority=ticket.priority,
                title=ticket.title,
                lines=[line],
                mentions=list(mentions),
            )
            nags[dest.ref] = _Nag(dest, direct, locale, item)
            continue
        seen.item.key += "+" + event
        seen.item.lines += [line] if line not in seen.item.lines else []
        seen.item.mentions += [m for m in mentions if m not in seen.item.mentions]


def _customers(ticket: Ticket, dest: Address, direct: bool) -> bool:
    """Whether a group post lands in the customer's own chat (``post_origin``)."""
    return not direct and dest.ref == ticket.origin_chat


async def _send(turn: Turn, ticket: Ticket, nag: _Nag) -> None:
    dest = nag.destination
    if _customers(ticket, dest, nag.direct):
        # The customer's group reads it in their words, with the page to follow it on; the
        # @-mention still presses the assignee. Never folded into a staff digest.
        text = say("milestone.prefix", nag.locale, number=ticket.number)
        text += "\n".join(nag.item.lines)
        link = progress_link(turn, ticket)
        if link:
            text += "\n" + say("progress.link", nag.locale, url=link)
        key = f"{nag.item.key}>{dest.ref}"[:300]
        turn.send(dest, Text(text, mentions=tuple(nag.item.mentions)), ticket_id=ticket.id, key=key)
        return
    extra = {"nag": {"locale": nag.locale, "direct": nag.direct, "items": [nag.item.as_json()]}}
    key = f"{nag.item.key}>{dest.ref}"[:300]
    coalesce = f"sla:{dest.ref}"
    if not nag.direct:
        message = group_text(nag.item, nag.locale)
        turn.send(dest, message, ticket_id=ticket.id, key=key, coalesce_key=coalesce, extra=extra)
        return
    # A card with buttons; it replaces this chat's earlier nag card for the ticket.
    for ref in turn.unit.refs.get(ticket.id, []):
        if ref.audience == "nag" and ref.destination == dest.ref:
            ref.stale = True
    ref = await turn.unit.new_card_ref(ticket, dest, "nag", nag.locale)
    card = await nag_card(turn, ticket, "nag", nag.locale, lines=nag.item.lines)
    turn.send(
        dest,
        card,
        ticket_id=ticket.id,
        card_ref=ref,
        key=key,
        coalesce_key=coalesce,
        extra=extra,
    )


async def _reassign(turn: Turn, ticket: Ticket, clock: Clock, due: Step) -> None:
    """Hand a ticket nobody accepted to the next candidate, if the state table lets the
    system do that now."""
    where = {"step": due.index, "round": due.round, "do": "reassign"}
    exclude = {ticket.assignee_id} if ticket.assignee_id else set()
    decision = await routing.decide(turn, routing.job_of(turn.unit, ticket), exclude=exclude)
    candidate = decision.winner.candidate.person_id if decision.winner else None
    reason = None
    if candidate is None:
        reason = "no other engineer has capacity"
    else:
        try:
            await routing.assign(turn, ticket, decision)
        except FlowError as exc:
            reason = repr(exc)
        else:
            assignee = await turn.unit.person(candidate)
            key = assignee.key if assignee else None
            _audit(turn, ticket, "sla_escalation", clock, [], **where, assignee=key)
    if reason is not None:
        _audit(turn, ticket, "sla_skipped", clock, [], **where, reason=reason)
