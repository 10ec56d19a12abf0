"""The lifecycle in motion: a transition of the state table and everything it declares.

``apply`` is the one place a ticket changes state. It asks the table (``bot.tickets.check``)
whether the action may happen — state, role, requirements — then carries out the transition
and its declared ``effects`` on the unit's records: the new assignee, timestamps, a new version
(older card buttons go stale), the audit row, the SLA clocks settled, every copy of the card
redrawn, staff cards for a new assignee, and the customer's milestone message (in the
customer's words, with the link to the ticket's progress page: ``milestone``).

``publish`` posts a new card and remembers where (so ``refresh`` can redraw it in place later).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot import closure, csat, flood
from bot.cards import build
from bot.errors import StaleTransition
from bot.events import Address, Card, Text
from bot.progress import milestone_key
from bot.sla.clocks import sync
from bot.texts import say
from bot.tickets import (
    TRANSITIONS,
    Effect,
    Role,
    TicketAction,
    Transition,
    check,
    roles_of,
)
from bot.unit import Turn
from storage.records import Person, Ticket

__all__ = [
    "apply",
    "progress_link",
    "publish",
    "publish_staff_cards",
    "refresh",
    "tell_reporters",
]


async def apply(
    turn: Turn,
    ticket: Ticket,
    action: TicketAction,
    actor: Person | None,
    *,
    via: str,
    note: str | None = None,
    target: int | None = None,
    version: int | None = None,
    routing: dict[str, Any] | None = None,
) -> Transition:
    """Run one transition of the state table on ``ticket`` as ``actor`` (None: the system).

    ``version``: the card version the press was made on (a stale card changes nothing);
    ``target``: the engineer an ASSIGN names; ``routing``: why (``bot/routing_rules.py``),
    kept in the audit row. Raises a ``FlowError`` when the rules say no.
    """
    if version is not None and version != ticket.version:
        raise StaleTransition()
    turn.unit.touch(ticket.id)
    roles = roles_of(actor, ticket)
    if note and Effect.NOTE_IS_ROOT_CAUSE in TRANSITIONS[action].effects and Role.ASSIGNEE in roles:
        ticket.root_cause = note  # a written root cause typed with the press is evidence
    facts = closure.facts(turn.env.settings.closure, ticket)  # checklist, root cause
    rule = check(action, facts, roles, target_given=target is not None)
    unit, now = turn.unit, turn.now
    before, assignee_before = ticket.state, ticket.assignee_id
    if Effect.ASSIGN_PRESSER in rule.effects and actor is not None:
        ticket.assignee_id = actor.id
    elif Effect.ASSIGN_TARGET in rule.effects:
        ticket.assignee_id = target
    elif Effect.UNASSIGN in rule.effects:
        ticket.assignee_id = None
    if Effect.CLOSE in rule.effects:
        ticket.closed_at = now
    elif Effect.REOPEN in rule.effects:
        ticket.closed_at = None
    ticket.state = rule.target.value
    ticket.version += 1
    ticket.updated_at = now
    unit.moved(ticket, assignee_before, before)
    data: dict[str, Any] = {"action": action.value}
    if note:
        data["note"] = note
    if rule.assigns:
        assignee = await unit.person(ticket.assignee_id)
        data["assignee"] = assignee.key if assignee else None
        if routing is not None:
            data["routing"] = routing
    unit.record(
        ticket,
        "transition",
        actor=actor,
        via=via,
        from_state=before,
        to_state=rule.target.value,
        data=data,
    )
    turn.env.metrics.transitions.labels(action.value).inc()
    await sync(unit, ticket, actor=actor)  # clocks stop, pause, resume; escalation ends
    await refresh(turn, ticket)
    if rule.assigns and ticket.assignee_id is not None:
        await publish_staff_cards(turn, ticket)
    if Effect.TELL_CUSTOMER in rule.effects:
        # (closed by the hub: the customer is not thanked for a confirmation they never gave)
        said = "closure.auto_closed" if action == TicketAction.AUTO_CLOSE else None
        await _tell_customer(turn, ticket, rule, said)
    if Effect.CLOSE in rule.effects and action != TicketAction.MERGE:
        await csat.ask(turn, ticket)  # (a merged repeat's reporter follows the other ticket)
    elif Effect.REOPEN in rule.effects:
        csat.reopened(turn, ticket)
    return rule


async def publish(
    turn: Turn,
    ticket: Ticket,
    destination: Address,
    audience: str,
    locale: str,
    *,
    card: Card | None = None,
    extra: dict[str, Any] | None = None,
) -> Card:
    """Post a new card and remember where it is, so later changes update it in place.
    ``card``: the same card drawn already for another chat; ``extra``: stored beside it."""
    ref = await turn.unit.new_card_ref(ticket, destination, audience, locale)
    if card is None:
        card = await build(turn, ticket, audience, locale)
    turn.send(destination, card, ticket_id=ticket.id, card_ref=ref, extra=extra)
    return card


async def refresh(turn: Turn, ticket: Ticket) -> None:
    """Update every copy of the ticket's card, on every platform it was posted to (copies for
    the same audience in the same language are drawn once)."""
    drawn: dict[tuple[str, str], Card] = {}
    for ref in list(turn.unit.refs.get(ticket.id, [])):
        if ref.stale:
            continue
        card = drawn.get((ref.audience, ref.locale))
        if card is None:
            card = drawn[(ref.audience, ref.locale)] = await build(
                turn, ticket, ref.audience, ref.locale
            )
        turn.send(
            Address.parse(ref.destination), card, ticket_id=ticket.id, card_ref=ref, op="update"
        )


async def publish_staff_cards(turn: Turn, ticket: Ticket) -> None:
    """The assignee's direct chat and the team's group chats, each once. A group's card carries
    its line for a digest, should a flood of them be more than the group's limit can carry
    (``bot.flood``)."""
    env = turn.env
    destinations: list[tuple[Address, str, bool]] = []
    assignee = await turn.unit.person(ticket.assignee_id)
    if assignee is not None:
        dm = env.directory.direct_address(assignee.key, set(env.platforms))
        if dm is not None:
            destinations.append((dm, assignee.locale or env.settings.locale, False))
    for chat in env.directory.team_chats(ticket.team_key):
        if chat.platform in env.platforms:
            destinations.append((chat, env.settings.locale, True))
    shown = {r.destination for r in turn.unit.refs.get(ticket.id, []) if not r.stale}
    drawn: dict[str, Card] = {}
    for dest, locale, group in destinations:
        if dest.ref not in shown:
            shown.add(dest.ref)
            extra = None
            if group:
                line = flood.line(
                    ticket.number or "",
                    ticket.priority,
                    ticket.title,
                    assignee.name if assignee else None,
                    locale,
                )
                extra = {flood.TEAM_CARD: line}
            drawn[locale] = await publish(
                turn, ticket, dest, "staff", locale, card=drawn.get(locale), extra=extra
            )


async def _tell_customer(
    turn: Turn, ticket: Ticket, rule: Transition, said: str | None = None
) -> None:
    """The milestone of ``rule`` in the customer's words (``bot.progress``; ``said``: other
    words for it), to the reporter and the reporters of reports merged into the ticket."""
    assignee = await turn.unit.person(ticket.assignee_id)
    name = assignee.name if assignee else ""
    key = said or milestone_key(rule.action, rule.target)
    await tell_reporters(turn, ticket, lambda locale: say(key, locale, name=name))


def progress_link(turn: Turn, ticket: Ticket) -> str | None:
    """The ticket's ``/t/<token>`` link (None when the page is off or the hub has no signer)."""
    env = turn.env
    if env.progress is None or not env.settings.progress.enabled:
        return None
    return env.progress.url(env.settings.public_url, ticket.id)


async def tell_reporters(turn: Turn, ticket: Ticket, text_of: Callable[[str], str]) -> None:
    """Tell the reporter, and the reporters of reports merged into the ticket
    (``bot/flows/repeats.py``), something about it (``text_of(locale)``: the words after the
    number), each in their own chat and language, each chat once, with the link to the
    ticket's progress page under it (the same on every platform)."""
    told: set[tuple[int, str]] = set()
    chats = [(ticket.reporter_id, ticket.origin_chat)]
    chats += [(f["reporter"], f["chat"]) for f in (ticket.intake or {}).get("followers") or []]
    link = progress_link(turn, ticket)
    for reporter_id, chat in chats:
        if (reporter_id, chat) in told:
            continue
        told.add((reporter_id, chat))
        person = await turn.unit.person(reporter_id)
        locale = (person.locale if person else None) or turn.env.settings.locale
        text = say("milestone.prefix", locale, number=ticket.number) + text_of(locale)
        if link:
            text = f"{text}\n{say('progress.link', locale, url=link)}"
        turn.send(Address.parse(chat), Text(text), ticket_id=ticket.id)
