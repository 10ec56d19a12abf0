"""The parts a ticket waits for, on its card (``bot/flows/parts.py`` keeps them on the ticket).

While 待备件: "备件 轴承 6205 ×2，预计 12月8日 到货" (or "到货时间待定", or, before the engineer
has said which, "正在确认所需备件"), for the customer and staff alike — staff also see each
part's catalog code and stock ("轴承 6205 ×2 · BRG-6205 · 总仓 5 / 二仓 0", "无库存") when
there is a parts catalog (``stock_text``; the customer never does). Once they arrived, staff
see what was fetched ("（已到货）") and the customer sees when the repair is expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from bot.parts_catalog import PartsCatalog, match
from bot.parts_settings import CHOICE, PartsSettings
from bot.texts import say
from bot.tickets import TicketState
from bot.unit import Turn
from storage.records import Clock, Ticket

__all__ = [
    "choice_label",
    "choice_time",
    "customer_stay_line",
    "day_end",
    "day_text",
    "part_line",
    "parts_fields",
    "parts_text",
    "stock_text",
]

_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_SETTLED = frozenset(
    {TicketState.RESOLVED.value, TicketState.CLOSED.value, TicketState.CANCELLED.value}
)


def parts_fields(turn: Turn, ticket: Ticket, audience: str, locale: str) -> list[tuple[str, str]]:
    settings, tz = turn.env.settings.parts, turn.env.settings.tz
    label = say("field.parts", locale)
    parts = parts_text(ticket.parts, locale) if ticket.parts else None
    if ticket.state == TicketState.WAITING_PARTS.value:
        if parts is not None and audience != "customer":
            parts = stock_text(ticket.parts, turn.env.parts, locale)
        if parts is None:
            return [(label, say("parts.field_asking", locale))]
        if ticket.parts_eta is None:
            return [(label, say("parts.field_no_eta", locale, parts=parts))]
        eta = day_text(ticket.parts_eta, locale, settings, tz)
        return [(label, say("parts.field_waiting", locale, parts=parts, eta=eta))]
    out: list[tuple[str, str]] = []
    arrived = bool((ticket.intake or {}).get("parts_used"))
    if parts is not None and arrived and audience != "customer":
        out.append((label, say("parts.field_arrived", locale, parts=parts)))
    visit = (ticket.intake or {}).get("parts_visit")
    if visit and ticket.state not in _SETTLED:
        at = day_text(datetime.fromisoformat(visit), locale, settings, tz)
        out.append((say("field.visit", locale), say("parts.field_visit", locale, visit=at)))
    return out


def parts_text(parts: Sequence[dict[str, Any]] | None, locale: str) -> str:
    """ "轴承 6205 ×2、密封圈 ×3" / "bearing 6205 ×2, seal ×3"."""
    if not parts:
        return say("parts.none", locale)
    lines = [say("parts.line", locale, name=p["name"], qty=p["qty"]) for p in parts]
    return say("parts.sep", locale).join(lines)


def stock_text(parts: Sequence[dict[str, Any]] | None, catalog: PartsCatalog, locale: str) -> str:
    """ "轴承 6205 ×2 · BRG-6205 · 总仓 5 / 二仓 0；密封圈 ×3 · SEAL-50 · 无库存" — each part with
    its catalog code and stock; without a catalog, what ``parts_text`` says."""
    if not parts or not len(catalog):
        return parts_text(parts, locale)
    return say("parts.stock_sep", locale).join(part_line(p, catalog, locale) for p in parts)


def part_line(part: dict[str, Any], catalog: PartsCatalog, locale: str) -> str:
    """One part with its catalog code and each store's stock ("无库存" when none holds any,
    "（库存不足）" when all of them hold fewer than asked), or "目录中无此备件"."""
    line = say("parts.line", locale, name=part["name"], qty=part["qty"])
    if not len(catalog):
        return line
    code = part.get("code")
    entry = catalog.by_code(code) if isinstance(code, str) else None
    if entry is None:
        found = match(str(part["name"]), catalog)
        entry = found.entry if found is not None else None
    if entry is None:
        return say("parts.line_unknown", locale, line=line)
    if entry.in_stock <= 0:
        stock = say("parts.out_of_stock", locale)
    else:
        stock = say("parts.store_sep", locale).join(
            say("parts.store_qty", locale, store=store, qty=_number(qty))
            for store, qty in entry.stock
        )
        if isinstance(part["qty"], int | float) and entry.in_stock < part["qty"]:
            stock = say("parts.short", locale, stock=stock)
    return say("parts.line_stock", locale, line=line, code=entry.code, stock=stock)


def _number(qty: float) -> str:
    return str(int(qty)) if float(qty).is_integer() else f"{qty:.3f}".rstrip("0")


def day_text(at: datetime, locale: str, settings: PartsSettings, tz: tzinfo) -> str:
    """ "12月8日" for a day-only time (the configured end of day), else "12月8日 15:00"."""
    local = at.astimezone(tz)
    values = {"month": local.month, "day": local.day, "mon": _MONTHS_EN[local.month - 1]}
    if (local.hour, local.minute) == (settings.day_ends, 0):
        return say("parts.day", locale, **values)
    return say("parts.day_time", locale, time=local.strftime("%H:%M"), **values)


def choice_label(choice: str, locale: str) -> str:
    """A button's label: 今天, 明天, 4小时内, 3天内, 1周内."""
    m = CHOICE.match(choice)
    if m is None or m["n"] is None:
        return say(f"parts.choice.{choice}", locale)
    if (m["unit"], m["n"]) == ("w", "1"):
        return say("parts.choice.w1", locale)
    return say(f"parts.choice.{m['unit']}", locale, n=m["n"])


def day_end(day: date, settings: PartsSettings, tz: tzinfo, now: datetime) -> datetime:
    at = datetime.combine(day, time(settings.day_ends), tzinfo=tz).astimezone(UTC)
    return max(at, now)


def choice_time(choice: str, now: datetime, settings: PartsSettings, tz: tzinfo) -> datetime:
    """When a choice means: a span from now (4h), or the end of a day (today, tomorrow, 3d)."""
    today = now.astimezone(tz).date()
    m = CHOICE.match(choice)
    assert m is not None  # the settings are validated
    if choice in ("today", "tomorrow"):
        return day_end(today + timedelta(days=choice == "tomorrow"), settings, tz, now)
    n = int(m["n"])
    if m["unit"] == "h":
        return now + timedelta(hours=n)
    return day_end(today + timedelta(days=n * (7 if m["unit"] == "w" else 1)), settings, tz, now)


def customer_stay_line(ticket: Ticket, clock: Clock, locale: str) -> str | None:
    """What an SLA escalation posted in the customer's own group says of the 待备件 stay clock,
    in their words (never "停留「待备件」"); None for any other clock."""
    if clock.kind != "stay" or clock.state != TicketState.WAITING_PARTS.value:
        return None
    if not ticket.parts:
        return say("parts.overdue_unknown", locale)
    return say("parts.overdue", locale, parts=parts_text(ticket.parts, locale))
