"""The SLA sweep: nag before a deadline, escalate after it, fold nags into digests under limits.

Ticked by the scheduler, the sweep claims tickets whose ``sla_next_at`` has come (``FOR UPDATE
SKIP LOCKED`` on PostgreSQL, so any number of hubs share the work and each nag is decided by
exactly one of them), asks each clock what is due (``bot.sla.clocks.due_events``), writes every
warning, breach and escalation step to the audit trail, and queues the messages in the same
transaction — so a nag exists exactly when the step that sent it does, across crashes and
restarts.

Who hears what: a warning goes to the assignee (or, unclaimed, to the team's group); the
escalation chain's steps notify the assignee, post in the origin group, post in the team group
with an @-mention of the lead, notify the managers, or hand the ticket to the next candidate.
Direct messages are cards with buttons (接单, 我来处理, 转派, 延期); group posts are texts that
@-mention (the buttons are on the ticket's card in that group).

Digests: when a destination already has nags waiting (a rate limit or a 429 holds them), or
this sweep has several for it, or sending them all would exceed the destination's declared
limit, the waiting ones are taken back and everything goes out as one digest message (split
every ``digest_max_lines`` tickets) — nothing is dropped and nothing queues for minutes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.base import RateLimit
from bot.adapters.codec import ActionToken
from bot.errors import FlowError
from bot.events import Address, Button, Card, Text, outbound_to_json
from bot.flows import FlowContext, cards, routing, sla
from bot.sla.clocks import Breach, Step, Warning, due_events
from bot.texts import say
from bot.tickets import (
    TRANSITIONS,
    SlaAction,
    TicketAction,
    TicketState,
    action_label,
    allowed_actions,
    state_label,
)
from storage import clocks as store
from storage import queues, repo
from storage.db import Database
from storage.models import SlaClock, Ticket, utcnow

__all__ = ["Limits", "nag_card", "sweep"]

log = logging.getLogger(__name__)

Limits = Callable[[Address], Sequence[RateLimit]]
#: The ticket buttons a nag card offers (those the state table allows now), then 延期.
NAG_ACTIONS = (TicketAction.ACCEPT, TicketAction.CLAIM, TicketAction.REASSIGN)


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


@dataclass
class Nag:
    destination: Address
    direct: bool
    locale: str
    ticket: Ticket
    item: Item


# --------------------------------------------------------------------------------- sweeping


async def sweep(
    db: Database,
    context: Callable[[AsyncSession, str], FlowContext],
    limits: Limits,
    *,
    now: datetime,
    batch: int = 50,
) -> int:
    """One pass: handle up to ``batch`` tickets that are due; return how many were handled."""
    async with db.read() as s:
        if not await store.any_due(s, now):
            return 0
    async with db.transaction() as s:
        tickets = await store.claim_due(s, now, batch)
        if not tickets:
            return 0
        clocks = await store.clocks_of(s, [t.id for t in tickets])
        nags: list[Nag] = []
        for ticket, ticket_id in [(t, t.id) for t in tickets]:
            ctx = context(s, f"sla:{ticket_id}:{now.timestamp():.3f}")
            ctx.now = now
            try:
                async with s.begin_nested():
                    nags += await _ticket(ctx, ticket, clocks[ticket_id])
            except Exception:  # one broken ticket must not stop the sweep for all others
                log.exception("SLA sweep of ticket %d failed; looking again in a minute", ticket_id)
                await store.postpone(s, ticket_id, now + timedelta(minutes=1))
        ctx = context(s, f"sla-deliver:{now.timestamp():.3f}")
        ctx.now = now
        await _deliver(ctx, nags, limits)
    return len(tickets)


async def _ticket(ctx: FlowContext, ticket: Ticket, clocks: list[SlaClock]) -> list[Nag]:
    assert ctx.policies is not None
    policy = await sla.policy_of(ctx.session, ctx.policies, ticket)
    if not clocks or any(c.signature != policy.signature for c in clocks):
        clocks = await sla.sync(ctx, ticket, actor=None)  # the policy changed: apply it first
    nags: list[Nag] = []
    for clock in clocks:
        for due in due_events(clock, ctx.now, policy):
            match due:
                case Warning():
                    to = await _warn_targets(ctx, ticket)
                    assert clock.due_at is not None  # (a snoozed clock warns anew: new due)
                    when = f"{clock.due_at:%Y%m%dT%H%M%S}"
                    nags += await _nags(ctx, ticket, clock, to, f"w{due.level}@{when}")
                    await _audit(ctx, ticket, "sla_warning", clock, to, fraction=due.fraction)
                case Breach():
                    await _audit(ctx, ticket, "sla_breach", clock, [], due=due.at.isoformat())
                case Step() if due.step.do == "reassign":
                    await _reassign(ctx, ticket, clock, due)  # later steps see the new assignee
                case Step():
                    to = await _step_targets(ctx, ticket, due.step.do)
                    k = due.round * len(policy.chain.steps) + due.index
                    assert clock.breached_at is not None  # (after a snooze: another breach)
                    when = f"{clock.breached_at:%Y%m%dT%H%M%S}"
                    nags += await _nags(ctx, ticket, clock, to, f"s{k}@{when}")
                    where = {"step": due.index, "round": due.round, "do": due.step.do}
                    if to:
                        await _audit(ctx, ticket, "sla_escalation", clock, to, **where)
                    else:
                        reason = _NOBODY[due.step.do]
                        await _audit(ctx, ticket, "sla_skipped", clock, [], **where, reason=reason)
    await sla.project(ctx.session, ticket.id, clocks)
    return nags


async def _audit(
    ctx: FlowContext,
    ticket: Ticket,
    kind: str,
    clock: SlaClock,
    to: Sequence[tuple[Address, bool, str, list[str]]],
    **data: Any,
) -> None:
    ctx.metrics.sla_events.labels(kind.removeprefix("sla_"), clock.kind).inc()
    await repo.append_event(
        ctx.session,
        ticket.id,
        actor="system",
        kind=kind,
        via="system",
        data={
            "clock": clock.kind,
            **({"state": clock.state} if clock.state else {}),
            "policy": clock.policy,
            **data,
            **({"to": [a.ref for a, *_ in to]} if to else {}),
        },
        at=ctx.now,
    )


# ------------------------------------------------------------------------------- recipients

_NOBODY = {
    "notify_assignee": "no assignee with a direct chat on a running platform",
    "post_origin": "the ticket came from a one-to-one chat (or its platform is not running)",
    "post_team": "no team group chat on a running platform",
    "notify_manager": "no manager with a direct chat on a running platform",
}

Target = tuple[Address, bool, str, list[str]]  # where, direct?, locale, people to @-mention


async def _direct(ctx: FlowContext, person_key: str) -> Target | None:
    dm = ctx.directory.direct_address(person_key, ctx.platforms)
    if dm is None:
        return None
    person = ctx.directory.people[person_key]
    return dm, True, person.locale or ctx.settings.locale, []


async def _assignee_key(ctx: FlowContext, ticket: Ticket) -> str | None:
    if ticket.assignee_id is None:
        return None
    person = await repo.get_person(ctx.session, ticket.assignee_id)
    return person.key if person is not None else None


def _team(ctx: FlowContext, ticket: Ticket) -> Any:
    return ctx.directory.teams.get(ticket.team_key or "") or ctx.directory.team_for(None)


async def _group_targets(ctx: FlowContext, ticket: Ticket, mention: list[str]) -> list[Target]:
    team = _team(ctx, ticket)
    chats = [Address.parse(c) for c in team.chats] if team is not None else []
    return [(c, False, ctx.settings.locale, mention) for c in chats if c.platform in ctx.platforms]


async def _warn_targets(ctx: FlowContext, ticket: Ticket) -> list[Target]:
    key = await _assignee_key(ctx, ticket)
    if key is not None:
        dm = await _direct(ctx, key)
        if dm is not None:
            return [dm]
    team = _team(ctx, ticket)
    return await _group_targets(ctx, ticket, [team.lead] if team and team.lead else [])


async def _step_targets(ctx: FlowContext, ticket: Ticket, do: str) -> list[Target]:
    key = await _assignee_key(ctx, ticket)
    team = _team(ctx, ticket)
    match do:
        case "notify_assignee":
            dm = await _direct(ctx, key) if key else None
            return [dm] if dm else []
        case "post_origin":
            origin = Address.parse(ticket.origin_chat)
            kind = await repo.chat_kind(ctx.session, origin.platform, origin.chat_id)
            if kind != "group" or origin.platform not in ctx.platforms:
                return []  # a one-to-one chat is the customer's own: no staff escalation there
            return [(origin, False, ctx.settings.locale, [key] if key else [])]
        case "post_team":
            mention = [team.lead] if team and team.lead else []
            return await _group_targets(ctx, ticket, mention + ([key] if key else []))
        case "notify_manager":
            people = ctx.directory.people
            lead = team.lead if team else None
            managers = (
                [lead]
                if lead and people[lead].role == "manager"
                else [p.id for p in people.values() if p.role == "manager"]
            )
            found = [await _direct(ctx, m) for m in managers]
            return [t for t in found if t is not None]
    return []


async def _nags(
    ctx: FlowContext, ticket: Ticket, clock: SlaClock, to: list[Target], event: str
) -> list[Nag]:
    assert ctx.policies is not None
    out = []
    for dest, direct, locale, mentions in to:
        line = sla.clock_line(clock, ctx.now, ctx.policies, locale, ctx.settings.tz)
        item = Item(
            key=f"sla:{ticket.id}:{clock.kind}:{clock.state or ''}:{event}",
            number=ticket.number or "",
            priority=ticket.priority,
            title=ticket.title,
            lines=[line],
            mentions=list(mentions),
        )
        out.append(Nag(dest, direct, locale, ticket, item))
    return out


async def _reassign(ctx: FlowContext, ticket: Ticket, clock: SlaClock, due: Step) -> None:
    """Hand a ticket nobody accepted to the next candidate (the state table decides if it
    still may be: only new or assigned tickets are reassigned by the system)."""
    from bot.flows.actions import apply_action

    where = {"step": due.index, "round": due.round, "do": "reassign"}
    reason = None
    current = await repo.get_ticket(ctx.session, ticket.id)
    assert current is not None
    if current.state not in (TicketState.NEW, TicketState.ASSIGNED):
        reason = f"state {current.state}"
    else:
        exclude = {current.assignee_id} if current.assignee_id else set()
        candidate = await routing.pick_engineer(ctx, current, exclude=exclude)
        if candidate is None:
            reason = "no other engineer has capacity"
        else:
            try:
                await apply_action(
                    ctx, current, TicketAction.ASSIGN, None, via="system", target=candidate
                )
            except FlowError as exc:
                reason = repr(exc)
            else:
                person = await repo.get_person(ctx.session, candidate)
                assignee = person.key if person else None
                await _audit(ctx, current, "sla_escalation", clock, [], **where, assignee=assignee)
    if reason is not None:
        await _audit(ctx, current, "sla_skipped", clock, [], **where, reason=reason)


# ---------------------------------------------------------------------------------- delivery


async def _deliver(ctx: FlowContext, nags: list[Nag], limits: Limits) -> None:
    by_dest: dict[str, list[Nag]] = {}
    for nag in nags:
        by_dest.setdefault(nag.destination.ref, []).append(nag)
    for ref, group in sorted(by_dest.items()):  # one lock order for every node: no deadlock
        merged = _merge(group)
        coalesce = f"sla:{ref}"
        folded = await store.fold_pending(ctx.session, coalesce)
        dest = group[0].destination
        if len(merged) == 1 and not folded and not await _crowded(ctx, dest, limits, 1):
            await _send_one(ctx, merged[0], coalesce)
            continue
        await _send_digests(ctx, dest, group[0], merged, folded, coalesce)


def _merge(group: list[Nag]) -> list[Nag]:
    """One nag per ticket and destination (several clocks: several lines)."""
    out: dict[int, Nag] = {}
    for nag in group:
        seen = out.get(nag.ticket.id)
        if seen is None:
            out[nag.ticket.id] = nag
            continue
        seen.item.key += "+" + nag.item.key.rpartition(":")[2]
        seen.item.lines += [x for x in nag.item.lines if x not in seen.item.lines]
        seen.item.mentions += [m for m in nag.item.mentions if m not in seen.item.mentions]
    return list(out.values())


async def _crowded(ctx: FlowContext, dest: Address, limits: Limits, extra: int) -> bool:
    """Would ``extra`` more messages break one of the destination's declared limits? (Rate
    limits count wall-clock time, whatever "now" the tickets' clocks run on.)"""
    waiting = await store.pending_to(ctx.session, dest.ref)
    for lim in limits(dest):
        since = utcnow() - timedelta(seconds=lim.per)
        if await store.sent_since(ctx.session, dest.ref, since) + waiting + extra > lim.count:
            return True
    return False


async def _send_one(ctx: FlowContext, nag: Nag, coalesce: str) -> None:
    payload_extra = {"nag": {"locale": nag.locale, "items": [nag.item.as_json()]}}
    key = f"{nag.item.key}>{nag.destination.ref}"[:300]
    if nag.direct:
        # A card with buttons; it replaces this chat's earlier nag card for the ticket.
        olds = [
            r.id
            for r in await repo.card_refs_for(ctx.session, nag.ticket.id)
            if r.audience == "nag" and r.destination == nag.destination.ref
        ]
        await repo.mark_card_refs_stale(ctx.session, olds)
        ref = await repo.add_card_ref(
            ctx.session, nag.ticket.id, nag.destination.ref, "nag", nag.locale
        )
        ticket = await repo.get_ticket(ctx.session, nag.ticket.id)
        assert ticket is not None
        card = await nag_card(ctx, ticket, nag.locale, lines=nag.item.lines)
        payload = {**outbound_to_json(card), **payload_extra}
        card_ref_id: int | None = ref.id
    else:
        payload = {**outbound_to_json(_group_text(nag.item, nag.locale)), **payload_extra}
        card_ref_id = None
    await queues.enqueue(
        ctx.session,
        destination=nag.destination.ref,
        op="send",
        payload=payload,
        idempotency_key=key,
        ticket_id=nag.ticket.id,
        card_ref_id=card_ref_id,
        coalesce_key=coalesce,
    )


async def _send_digests(
    ctx: FlowContext,
    dest: Address,
    first: Nag,
    merged: list[Nag],
    folded: list[tuple[dict[str, Any], datetime, int | None]],
    coalesce: str,
) -> None:
    items: dict[str, Item] = {}
    not_before = utcnow()  # the outbox runs on wall-clock time
    for payload, at, _ in folded:
        not_before = max(not_before, at)  # a Retry-After the folded ones waited for still holds
        for raw in payload.get("nag", {}).get("items", []):
            items.setdefault(raw["key"], Item(**raw))
    stale = [ref for _, _, ref in folded if ref is not None]
    await repo.mark_card_refs_stale(ctx.session, stale)  # a folded card was never shown
    for nag in merged:
        items.setdefault(nag.item.key, nag.item)
    locale = first.locale
    size = ctx.settings.sla.digest_max_lines
    ordered = list(items.values())
    # Keyed by everything this pass sends here (what it took back and what is new), not by
    # one chunk: a chunk may list exactly the nags of a digest it took back, whose row
    # (superseded) still holds that chunk's key.
    digest = hashlib.sha256("|".join(i.key for i in ordered).encode()).hexdigest()[:20]
    for start in range(0, len(ordered), size):
        chunk = ordered[start : start + size]
        mentions = tuple(dict.fromkeys(m for i in chunk for m in i.mentions))
        lines = [say("sla.digest_title", locale, n=len(chunk))]
        lines += [
            say(
                "sla.digest_line",
                locale,
                number=i.number,
                priority=i.priority,
                title=i.title[:40],
                what="；".join(i.lines) if locale == "zh" else "; ".join(i.lines),
            )
            for i in chunk
        ]
        if not first.direct:
            lines.append(say("sla.group_hint", locale))
        payload = {
            **outbound_to_json(Text("\n".join(lines), mentions=mentions)),
            "nag": {"locale": locale, "items": [i.as_json() for i in chunk]},
        }
        await queues.enqueue(
            ctx.session,
            destination=dest.ref,
            op="send",
            payload=payload,
            idempotency_key=f"sla-digest:{dest.ref}:{digest}:{start // size}"[:300],
            not_before=not_before,
            coalesce_key=coalesce,
        )


def _group_text(item: Item, locale: str) -> Text:
    lines = [
        say("sla.nag_title", locale, number=item.number, priority=item.priority, title=item.title),
        *item.lines,
        say("sla.group_hint", locale),
    ]
    return Text("\n".join(lines), mentions=tuple(item.mentions))


# -------------------------------------------------------------------------------- nag cards


async def nag_card(
    ctx: FlowContext, ticket: Ticket, locale: str, *, lines: list[str] | None = None
) -> Card:
    """The card a nag shows in a direct chat: the clocks, and what can be done about them."""
    assignee = (
        await repo.get_person(ctx.session, ticket.assignee_id) if ticket.assignee_id else None
    )
    shown = lines if lines is not None else await sla.clock_lines(ctx, ticket, locale)
    fields: list[tuple[str, str]] = [
        (say("field.state", locale), state_label(TicketState(ticket.state), locale)),
        (say("field.assignee", locale), assignee.name if assignee else say("unassigned", locale)),
    ]
    fields += [(say("field.sla", locale), line) for line in shown]
    allowed = set(allowed_actions(cards.facts_of(ticket), cards.AUDIENCE_ROLES["staff"]))
    buttons = [
        Button(
            label=action_label(action, locale),
            token=ctx.codec.encode(ActionToken(ticket.id, action, ticket.version)),
            style=TRANSITIONS[action].style.value,
            confirm=say("confirm.action", locale, action=action_label(action, locale))
            if TRANSITIONS[action].confirm
            else None,
            action=action.value,
        )
        for action in NAG_ACTIONS
        if action in allowed
    ]
    if TicketState(ticket.state) not in (TicketState.CLOSED, TicketState.CANCELLED):
        minutes = ctx.settings.sla.snooze_minutes
        token = ActionToken(ticket.id, SlaAction.SNOOZE, ticket.version, minutes)
        buttons.append(
            Button(
                label=action_label(SlaAction.SNOOZE, locale),
                token=ctx.codec.encode(token),
                action=SlaAction.SNOOZE.value,
            )
        )
    return Card(
        ticket_id=ticket.id,
        version=ticket.version,
        title=say(
            "sla.nag_title",
            locale,
            number=ticket.number,
            priority=ticket.priority,
            title=ticket.title,
        ),
        fields=tuple(fields),
        buttons=tuple(buttons),
    )
