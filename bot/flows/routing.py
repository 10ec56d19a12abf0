"""Routing: which engineer should take a ticket, decided by the rules in ``bot/routing_rules.py``
from what the unit sees now (loads, shifts, where people are, their latest tickets).

The assignment itself goes through the state table (``ASSIGN`` by the system); its reason is
kept with the ticket (``intake["routing"]``) and in the assignment's audit row.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any
from weakref import WeakKeyDictionary

from bot import lifecycle
from bot.cards.ticket import action_button
from bot.config import Person as PersonConfig
from bot.errors import FlowError
from bot.events import Card
from bot.routing_rules import Candidate, Job, Ranking, rank, reason_text, recorded_reason
from bot.shifts import parse_shift
from bot.texts import say
from bot.tickets import TicketAction
from bot.unit import Turn, Unit
from storage.assets import AssetEntry
from storage.records import Ticket

__all__ = [
    "assign",
    "broadcast",
    "chosen",
    "decide",
    "job_for",
    "job_of",
    "offer",
    "pick_engineer",
    "ranking",
]


def _coords(asset: AssetEntry | None) -> tuple[float, float] | None:
    if asset is None:
        return None
    lat, lon = asset.site_lat, asset.site_lon
    return (lat, lon) if lat is not None and lon is not None else None


def job_for(*, category: str, title: str, device: str | None, asset: AssetEntry | None) -> Job:
    """What is to be routed: a ticket's fields and, when it names one, its asset."""
    return Job(
        category=category,
        title=title,
        device=device,
        asset_category=asset.category if asset else None,
        asset_model=asset.model if asset else None,
        has_asset=asset is not None,
        preferred=asset.preferred_engineer if asset else None,
        site=_coords(asset),
    )


def job_of(unit: Unit, ticket: Ticket) -> Job:
    asset = unit.env.assets.get(ticket.asset_id)
    return job_for(
        category=ticket.category, title=ticket.title, device=ticket.device_code, asset=asset
    )


def _shifts(unit: Unit, cfg: PersonConfig) -> tuple[str, ...]:
    if cfg.shifts:
        return tuple(cfg.shifts)
    for team in unit.env.directory.teams_of(cfg.id):
        if team.shifts:
            return tuple(team.shifts)
    return ()


#: What each unit read of the engineers' newest tickets (stored rows do not change while a
#: unit is open, so a batch of reports reads each engineer's once; it goes with the unit).
_STORED: WeakKeyDictionary[Unit, dict[int, list[Ticket]]] = WeakKeyDictionary()


async def _load_recent(unit: Unit, person_ids: list[int], n: int) -> None:
    """Every engineer's newest ``n`` stored tickets, in two statements for all of them (the
    first brings the engineers' loads along)."""
    stored = _STORED.setdefault(unit, {})
    wanted = [p for p in person_ids if p not in stored]
    if not wanted:
        return
    by_person = await unit.recent_assigned(wanted, n)
    missing = list({i for ids in by_person.values() for i in ids if i not in unit.tickets})
    loaded = {t.id: t for t in await unit.reads.tickets(missing)} if missing else {}
    for person_id, ids in by_person.items():
        stored[person_id] = [
            unit.tickets.get(i) or loaded[i] for i in ids if i in unit.tickets or i in loaded
        ]


async def _recent(unit: Unit, person_id: int, n: int) -> list[Ticket]:
    """The person's newest ``n`` tickets (any state), as this unit sees them."""
    stored = _STORED.setdefault(unit, {})
    if person_id not in stored:
        await _load_recent(unit, [person_id], n)
    found = {t.id: unit.tickets.get(t.id, t) for t in stored[person_id]}
    for t in unit.tickets.values():  # what this unit assigned or moved wins
        if t.assignee_id == person_id:
            found[t.id] = t
        else:
            found.pop(t.id, None)
    return sorted(found.values(), key=lambda t: t.id, reverse=True)[:n]


async def _candidate(unit: Unit, cfg: PersonConfig, person_id: int, job: Job) -> Candidate:
    rules = unit.env.settings.routing
    recent = await _recent(unit, person_id, max(rules.fatigue_after, 1))
    streak = 0
    for t in recent:
        asset = unit.env.assets.get(t.asset_id)
        if ((asset.category if asset else None) or t.category) != job.kind:
            break
        streak += 1
    last_site = None
    if recent and unit.now - recent[0].updated_at <= timedelta(hours=rules.last_site_hours):
        last_site = _coords(unit.env.assets.get(recent[0].asset_id))
    return Candidate(
        key=cfg.id,
        person_id=person_id,
        name=cfg.name,
        skills=tuple(cfg.skills),
        max_open=cfg.max_open,
        load=await unit.load_of(person_id),
        shifts=tuple(parse_shift(s) for s in _shifts(unit, cfg)),
        base=cfg.base,
        last_site=last_site,
        streak=streak,
        last_ticket=recent[0].id if recent else None,
    )


async def ranking(unit: Unit, job: Job, *, exclude: Collection[int] = ()) -> Ranking:
    """Every active engineer scored for ``job`` now."""
    engineers = []
    for cfg in unit.env.directory.engineers():
        person = unit.env.staff.by_key.get(cfg.id)
        if person is not None and person.active:
            engineers.append((cfg, person.id))
    n = max(unit.env.settings.routing.fatigue_after, 1)
    await _load_recent(unit, [pid for _, pid in engineers], n)
    candidates = [await _candidate(unit, cfg, pid, job) for cfg, pid in engineers]
    local = unit.now.astimezone(unit.env.settings.tz)
    return rank(unit.env.settings.routing, job, candidates, local, exclude=frozenset(exclude))


async def decide(turn: Turn, job: Job, *, exclude: Collection[int] = ()) -> Ranking:
    return await ranking(turn.unit, job, exclude=exclude)


async def assign(turn: Turn, ticket: Ticket, decision: Ranking) -> None:
    """Assign the winner through the state table; the reason goes on the ticket and into the
    assignment's audit row (in the hub's default language; cards say it in their own)."""
    win = decision.winner
    assert win is not None
    why = decision.as_json(turn.env.settings.locale)
    before = ticket.intake
    ticket.intake = {**(before or {}), "routing": why}  # (replaced, never mutated)
    try:
        await lifecycle.apply(
            turn,
            ticket,
            TicketAction.ASSIGN,
            None,
            via="system",
            target=win.candidate.person_id,
            routing=why,
        )
    except FlowError:
        ticket.intake = before  # the table said no: the ticket keeps its old reason
        raise


async def broadcast(turn: Turn, ticket: Ticket, decision: Ranking) -> bool:
    """A P0 with ``routing.p0_broadcast`` on: its card goes to the best engineers' direct chats
    at once, unassigned (抢单); the first claim wins, and every copy then shows who took it.
    False when this ticket is not broadcast (assign it as usual)."""
    env = turn.env
    count = env.settings.routing.p0_broadcast
    best = [s for s in decision.scores if s.excluded is None][:count]
    if ticket.priority != "P0" or count < 1 or len(best) < 2:
        return False
    names = "、".join(s.candidate.name for s in best)
    ticket.intake = {
        **(ticket.intake or {}),
        "routing": {
            "broadcast": [s.candidate.key for s in best],
            "names": names,
            "reason": say("routing.broadcast", env.settings.locale, names=names),
            "scores": {s.candidate.key: None if s.excluded else s.total for s in decision.scores},
        },
    }
    for s in best:
        person = env.staff.by_id.get(s.candidate.person_id)
        dm = env.directory.direct_address(s.candidate.key, set(env.platforms))
        if person is not None and dm is not None:
            locale = person.locale or env.settings.locale
            await lifecycle.publish(turn, ticket, dm, "staff", locale)
    return True


async def chosen(turn: Turn, ticket: Ticket, target: int) -> dict[str, Any]:
    """The reason kept when a dispatcher or manager picks the engineer ("由孙调度指派"), with
    how the rules score that engineer now; it goes on the ticket like the system's."""
    assert turn.person is not None
    scored = await ranking(turn.unit, job_of(turn.unit, ticket))
    mine = next((s for s in scored.scores if s.candidate.person_id == target), None)
    person = await turn.unit.person(target)
    why: dict[str, Any] = {
        "person": person.key if person else None,
        "by": turn.person.key,
        "by_name": turn.person.name,
        "parts": [p.as_json() for p in mine.parts] if mine else [],
    }
    why["reason"] = recorded_reason(why, turn.env.settings.locale)
    ticket.intake = {**(ticket.intake or {}), "routing": why}
    return why


async def offer(turn: Turn, ticket: Ticket, *, exclude: Collection[int], top: int = 3) -> None:
    """After a dispatcher's or manager's 转派: a card listing the best candidates now, each with
    the rules' reason, one plain button each (every platform shows buttons); a press assigns
    through the state table, and the first press wins (the others' tokens are stale then)."""
    locale = turn.locale
    scored = await ranking(turn.unit, job_of(turn.unit, ticket), exclude=exclude)
    best = [s for s in scored.scores if s.excluded is None][:top]
    if not best:
        turn.notify_presser(say("routing.nobody", locale))
        return
    codec = turn.env.codec
    buttons = tuple(
        action_button(codec, ticket, TicketAction.ASSIGN, locale, arg=s.candidate.person_id,
                      label=say("routing.pick.button", locale, name=s.candidate.name,
                                score=f"{s.total:g}"))
        for s in best
    )  # fmt: skip
    lines = [
        say("routing.pick.line", locale, name=s.candidate.name, score=f"{s.total:g}",
            reason=reason_text(s, locale))
        for s in best
    ]  # fmt: skip
    title = say("routing.pick.title", locale, number=ticket.number)
    turn.reply(Card(ticket_id=0, version=0, title=title, text="\n".join(lines), buttons=buttons))


async def pick_engineer(
    turn: Turn,
    *,
    category: str,
    device_code: str | None,
    title: str,
    exclude: set[int] | None = None,
) -> int | None:
    """The person id the rules pick, or None when nobody can be (dispatch by hand)."""
    job = job_for(category=category, title=title, device=device_code, asset=None)
    win = (await decide(turn, job, exclude=exclude or ())).winner
    return win.candidate.person_id if win else None
