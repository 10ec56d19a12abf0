"""Routing, first version: the least-loaded engineer whose skills fit, within capacity.

Later issues add distance and team rules; the contract stays ``route(ctx, ticket)``.
"""

from __future__ import annotations

from bot.flows import FlowContext
from bot.tickets import OPEN_STATES, TicketState
from storage import repo
from storage.models import Ticket

__all__ = ["pick_engineer", "route"]


async def pick_engineer(
    ctx: FlowContext, ticket: Ticket, *, exclude: set[int] | None = None
) -> int | None:
    """The person id to assign, or None when nobody has capacity (dispatch by hand);
    ``exclude``: people not to pick (an escalation looking for the next candidate)."""
    wanted = {ticket.category, *(w for w in (ticket.device_code, ticket.title) if w)}
    best: tuple[int, int, str, int] | None = None
    for cfg in ctx.directory.engineers():
        person = await repo.person_by_key(ctx.session, cfg.id)
        if person is None or not person.active or (exclude and person.id in exclude):
            continue
        load = len(
            await repo.list_tickets(
                ctx.session, states=[s.value for s in OPEN_STATES], assignee_id=person.id
            )
        )
        if load >= cfg.max_open:
            continue
        fits = any(skill and any(skill in w for w in wanted) for skill in cfg.skills)
        key = (0 if fits else 1, load, cfg.id, person.id)
        if best is None or key < best:
            best = key
    return best[3] if best else None


async def route(ctx: FlowContext, ticket: Ticket) -> Ticket:
    """Assign a new ticket if someone fits; write the assignment to the audit trail."""
    person_id = await pick_engineer(ctx, ticket)
    if person_id is None:
        return ticket
    ok = await repo.transition(
        ctx.session,
        ticket.id,
        expected_state=TicketState.NEW,
        expected_version=ticket.version,
        new_state=TicketState.ASSIGNED,
        assignee_id=person_id,
    )
    if ok:
        assignee = await repo.get_person(ctx.session, person_id)
        await repo.append_event(
            ctx.session,
            ticket.id,
            actor="system",
            kind="transition",
            via="system",
            from_state=TicketState.NEW,
            to_state=TicketState.ASSIGNED,
            data={"action": "assign", "assignee": assignee.key if assignee else None},
        )
    refreshed = await repo.get_ticket(ctx.session, ticket.id)
    assert refreshed is not None
    return refreshed
