"""Routing, first version: the least-loaded engineer whose skills fit, within capacity.

Later issues add distance and team rules; the contract stays "who should take this ticket",
and the assignment itself goes through the state table (``ASSIGN`` by the system).
"""

from __future__ import annotations

from bot.unit import Turn

__all__ = ["pick_engineer"]


async def pick_engineer(
    turn: Turn,
    *,
    category: str,
    device_code: str | None,
    title: str,
    exclude: set[int] | None = None,
) -> int | None:
    """The person id to assign, or None when nobody has capacity (dispatch by hand);
    ``exclude``: people not to pick (an escalation looking for the next candidate)."""
    wanted = {category, *(w for w in (device_code, title) if w)}
    best: tuple[int, int, str, int] | None = None
    for cfg in turn.env.directory.engineers():
        person = turn.env.staff.by_key.get(cfg.id)
        if person is None or not person.active or (exclude and person.id in exclude):
            continue
        load = await turn.unit.load_of(person.id)
        if load >= cfg.max_open:
            continue
        fits = any(skill and any(skill in w for w in wanted) for skill in cfg.skills)
        key = (0 if fits else 1, load, cfg.id, person.id)
        if best is None or key < best:
            best = key
    return best[3] if best else None
