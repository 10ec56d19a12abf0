"""待备件 with substance: which parts, how many, when they come — and who is told.

When the assignee presses 待备件 (``NEED_PARTS``):

1. **Which parts.** The ticket's confirmed voice diagnosis names them (``parts_needed``), or
   the engineer is asked in one question — "需要哪些备件？例如：轴承 6205 ×2" — and their next
   message in a direct chat (or one naming the ticket, "GD-12 轴承 ×2") is the answer, read by
   ``bot.nlp.parts.read_parts``. A diagnosis whose parts a previous request already fetched is
   not used twice: the engineer is asked.
2. **The stores chat** (``[parts] stores_chat``) gets the request once: ticket, site, machine,
   each part and quantity, with its catalog code and stock per store when the parts catalog
   knows it (``bot.parts_catalog``; "无库存" when no store holds any). The outbox's idempotency
   key is the ticket and the request's round, so a retried event or a changed ETA never sends
   it again.
3. **When.** A card asks the ETA: [今天] [明天] [3天内] [1周内] [待定] (``[parts]
   eta_choices``), or a typed day (12月8日, 12-08, 周五). An answer in the same message as the
   parts ("轴承 ×2，明天到") counts.
4. **The customer** then hears it in their words — "正在等待备件：轴承 6205 ×2，预计 12月8日
   到货" — once the parts and their ETA are known (a changed ETA is told again). The card shows
   the parts and ETA instead of the internal stay clock.

When the parts arrive (``PARTS_ARRIVED``): ``parts_eta`` is cleared (nothing is awaited; the
ETA stays on the audit trail, ``parts`` stays as the record of what was used), the stores chat
is told the request is fulfilled, and the presser is asked when they will repair — [4小时内]
[今天] [明天] (``visit_choices``), or ``visit_default`` without asking — and the customer is
told "备件已到货，工程师预计 … 前为您维修".

Every step is on the ticket's audit trail: ``parts``, ``parts_eta``, ``parts_arrived``,
``parts_visit``. The open question lives in ``ticket.intake["parts_ask"]``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from bot import lifecycle
from bot.adapters.codec import ActionToken
from bot.cards.parts import (
    choice_label,
    choice_time,
    day_end,
    day_text,
    part_line,
    parts_text,
    stock_text,
)
from bot.errors import NotAllowed, QuestionAnswered
from bot.events import Address, Button, Card, Text
from bot.nlp.parts import MAX_QTY, PartLine, read_date, read_parts, split_answer
from bot.texts import say
from bot.tickets import OTHER_ACTION_ROLES, PartsAction, TicketAction, TicketState, roles_of
from bot.unit import Turn
from storage.records import Person, Ticket

__all__ = ["FOLLOWS", "after", "answer", "before", "pressed"]

#: The transitions this flow completes (``bot/flows/actions.py`` calls ``before``/``after``).
FOLLOWS = frozenset({TicketAction.NEED_PARTS, TicketAction.PARTS_ARRIVED, TicketAction.CANCEL})
log = logging.getLogger(__name__)
_WAITING = TicketState.WAITING_PARTS.value
_REPAIRING = TicketState.REPAIRING.value


# ------------------------------------------------------------------------------ the press


def before(turn: Turn, ticket: Ticket, action: TicketAction) -> None:
    """What the ticket holds once the press has happened, set before its cards are drawn."""
    if action == TicketAction.NEED_PARTS:
        _new_request(turn, ticket)
    elif action == TicketAction.PARTS_ARRIVED:
        _arrival(turn, ticket)
    elif action == TicketAction.CANCEL and ticket.state == _WAITING:
        intake = {k: v for k, v in (ticket.intake or {}).items() if k != "parts_ask"}
        ticket.intake = {**intake, "parts_withdrawn": bool(ticket.parts)}
        ticket.parts_eta = None  # nothing is awaited any more


async def after(turn: Turn, ticket: Ticket, action: TicketAction) -> None:
    """Once the transition is made: the record, the stores chat, the questions, the customer."""
    intake = ticket.intake or {}
    round_ = int(intake.get("parts_round", 1))
    if action == TicketAction.CANCEL:
        if intake.get("parts_withdrawn"):  # the stores were asked: the request is withdrawn
            turn.record(ticket, "parts_withdrawn", via="button", data={"round": round_})
            _to_stores(turn, ticket, round_, kind="withdrawn")
        return
    if action == TicketAction.NEED_PARTS:
        if ticket.parts:
            turn.record(ticket, "parts", via="diagnosis",
                        data={"parts": ticket.parts, "round": round_})  # fmt: skip
            _to_stores(turn, ticket, round_)
            where = _question_chat(turn)
            text = say("parts.from_diagnosis", turn.locale, number=ticket.number,
                       parts=parts_text(ticket.parts, turn.locale))  # fmt: skip
            turn.send(where, Text(text), ticket_id=ticket.id)
            _ask_eta(turn, ticket, round_, where)
        else:
            turn.record(ticket, "parts_asked", via="button", data={"round": round_})
            text = say("parts.ask", turn.locale, number=ticket.number)
            turn.send(_question_chat(turn), Text(text), ticket_id=ticket.id)
        return
    # PARTS_ARRIVED
    eta = intake.get("parts_eta_was")
    turn.record(ticket, "parts_arrived", via="button",
                data={"parts": ticket.parts or [], "eta_was": eta, "round": round_})  # fmt: skip
    _to_stores(turn, ticket, round_, kind="arrived")
    visit = intake.get("parts_visit")
    if visit is not None:  # ([parts] visit_default)
        turn.record(ticket, "parts_visit", via="system", data={"at": visit, "default": True})
        await _tell_arrived(turn, ticket, datetime.fromisoformat(visit))
    else:
        _ask_visit(turn, ticket, round_, _question_chat(turn))


def _new_request(turn: Turn, ticket: Ticket) -> None:
    intake = dict(ticket.intake or {})
    round_ = int(intake.get("parts_round", 0)) + 1
    used = [p for r in intake.get("parts_used", []) for p in r]
    diagnosed = _diagnosis_parts(ticket)
    ticket.parts_eta = None
    intake.pop("parts_visit", None)
    intake.pop("parts_eta_was", None)
    intake["parts_round"] = round_
    assert turn.person is not None
    if diagnosed and diagnosed != used:
        ticket.parts = diagnosed
        intake["parts_ask"] = _asking(turn, "eta", round_)
    else:
        ticket.parts = None
        intake["parts_ask"] = _asking(turn, "parts", round_)
    ticket.intake = intake


def _arrival(turn: Turn, ticket: Ticket) -> None:
    settings = turn.env.settings.parts
    intake = dict(ticket.intake or {})
    round_ = int(intake.get("parts_round", 1))
    intake["parts_eta_was"] = ticket.parts_eta.isoformat() if ticket.parts_eta else None
    intake["parts_used"] = [*intake.get("parts_used", []), ticket.parts or []]
    ticket.parts_eta = None  # nothing is awaited any more; the ETA stays on the audit trail
    intake.pop("parts_ask", None)
    if settings.visit_default is not None:
        at = choice_time(settings.visit_default, turn.now, settings, turn.env.settings.tz)
        intake["parts_visit"] = at.isoformat()
    else:
        intake.pop("parts_visit", None)
        intake["parts_ask"] = _asking(turn, "visit", round_)
    ticket.intake = intake


def _asking(turn: Turn, step: str, round_: int) -> dict[str, Any]:
    assert turn.person is not None
    return {"step": step, "by": turn.person.id, "at": turn.now.isoformat(), "round": round_}


def _diagnosis_parts(ticket: Ticket) -> list[dict[str, Any]]:
    found = (ticket.diagnosis or {}).get("parts_needed") or []
    out = []
    for p in found:
        name, qty, code = str(p.get("name") or "").strip(), p.get("qty"), p.get("code")
        if name:
            count = qty if isinstance(qty, int) and 0 < qty <= MAX_QTY else 1
            part: dict[str, Any] = {"name": name[:60], "qty": count}
            if isinstance(code, str) and code.strip():  # the reader's catalog match, kept
                part["code"] = code.strip()[:100]
            out.append(part)
    return out


def _question_chat(turn: Turn) -> Address:
    """Where to ask the presser: the direct chat they pressed in, else their own direct chat,
    else where they pressed (a group: they answer there naming the ticket)."""
    event = turn.event
    assert event is not None and turn.person is not None
    if event.chat_type == "direct":
        return event.chat
    dm = turn.env.directory.direct_address(turn.person.key, set(turn.env.platforms))
    return dm or event.chat


# ------------------------------------------------------------------------------ questions


def _ask_eta(turn: Turn, ticket: Ticket, round_: int, where: Address) -> None:
    settings, locale, codec = turn.env.settings.parts, turn.locale, turn.env.codec
    labels = [choice_label(c, locale) for c in settings.eta_choices]
    labels.append(say("parts.unknown", locale))
    buttons = tuple(
        Button(label=label, token=codec.encode(ActionToken(ticket.id, PartsAction.ETA, round_, i)),
               style="primary" if i == 0 else "default", action=PartsAction.ETA.value)
        for i, label in enumerate(labels)
    )  # fmt: skip
    turn.send(
        where,
        Card(ticket_id=ticket.id, version=ticket.version,
             title=say("parts.eta_title", locale, number=ticket.number),
             text=say("parts.eta_hint", locale,
                      parts=stock_text(ticket.parts, turn.env.parts, locale)),
             buttons=buttons),
        ticket_id=ticket.id,
    )  # fmt: skip


def _ask_visit(turn: Turn, ticket: Ticket, round_: int, where: Address) -> None:
    settings, locale, codec = turn.env.settings.parts, turn.locale, turn.env.codec
    buttons = tuple(
        Button(label=choice_label(c, locale),
               token=codec.encode(ActionToken(ticket.id, PartsAction.VISIT, round_, i)),
               style="primary" if i == 0 else "default", action=PartsAction.VISIT.value)
        for i, c in enumerate(settings.visit_choices)
    )  # fmt: skip
    turn.send(
        where,
        Card(ticket_id=ticket.id, version=ticket.version,
             title=say("parts.visit_title", locale, number=ticket.number), buttons=buttons),
        ticket_id=ticket.id,
    )  # fmt: skip


async def pressed(turn: Turn, ticket: Ticket, token: ActionToken) -> None:
    """An ETA or visit-time button. Its round must be the ticket's current request, the ticket
    where that question applies, and the presser its assignee or a dispatcher/manager."""
    assert turn.person is not None
    if not roles_of(turn.person, ticket) & OTHER_ACTION_ROLES[token.action] or token.arg is None:
        raise NotAllowed(action=token.action.value, state=ticket.state)
    intake = ticket.intake or {}
    settings = turn.env.settings.parts
    if token.version != int(intake.get("parts_round", 0)):
        raise QuestionAnswered()  # a question of an earlier request
    if token.action == PartsAction.ETA:
        if ticket.state != _WAITING or not ticket.parts or token.arg > len(settings.eta_choices):
            raise QuestionAnswered()
        choice = settings.eta_choices[token.arg] if token.arg < len(settings.eta_choices) else None
        at = choice_time(choice, turn.now, settings, turn.env.settings.tz) if choice else None
        if "parts_ask" not in intake and at == ticket.parts_eta:
            raise QuestionAnswered()  # the same answer again: the customer was told already
        await _set_eta(turn, ticket, at, via="button", said=choice or "unknown")
        return
    # PartsAction.VISIT
    ask = intake.get("parts_ask") or {}
    if ticket.state != _REPAIRING or ask.get("step") != "visit":
        raise QuestionAnswered()
    if token.arg >= len(settings.visit_choices):
        raise NotAllowed(action=token.action.value, state=ticket.state)
    choice = settings.visit_choices[token.arg]
    at = choice_time(choice, turn.now, settings, turn.env.settings.tz)
    ticket.intake = {**{k: v for k, v in intake.items() if k != "parts_ask"},
                     "parts_visit": at.isoformat()}  # fmt: skip
    ticket.updated_at = turn.now
    turn.record(ticket, "parts_visit", via="button", data={"at": at.isoformat(), "choice": choice})
    await lifecycle.refresh(turn, ticket)
    await _tell_arrived(turn, ticket, at)
    visit = day_text(at, turn.locale, settings, turn.env.settings.tz)
    turn.notify_presser(say("parts.visit_set", turn.locale, number=ticket.number, visit=visit))


async def _set_eta(
    turn: Turn, ticket: Ticket, at: datetime | None, *, via: str, said: str, reply: bool = False
) -> None:
    """The ETA is known (or known to be unknown): on the record, the cards, the customer."""
    intake = dict(ticket.intake or {})
    intake.pop("parts_ask", None)
    ticket.intake = intake
    ticket.parts_eta = at
    ticket.updated_at = turn.now
    turn.record(ticket, "parts_eta", via=via,
                data={"eta": at.isoformat() if at else None, "said": said})  # fmt: skip
    await lifecycle.refresh(turn, ticket)
    await _tell_waiting(turn, ticket)
    locale, settings, tz = turn.locale, turn.env.settings.parts, turn.env.settings.tz
    if at is None:
        text = say("parts.eta_unknown_set", locale, number=ticket.number)
    else:
        text = say("parts.eta_set", locale, number=ticket.number,
                   eta=day_text(at, locale, settings, tz))  # fmt: skip
    if reply:
        turn.reply(Text(text), ticket_id=ticket.id)
    else:
        turn.notify_presser(text)


# ------------------------------------------------------------------------------ typed answers


async def answer(turn: Turn, ticket: Ticket | None, text: str) -> bool:
    """The assignee's message as the answer to their open parts question: ``ticket`` when the
    message named one, else their newest ticket with a question open. False: it is not."""
    person = turn.person
    assert person is not None
    if ticket is None:
        waiting = await turn.unit.open_tickets({_WAITING}, assignee_id=person.id, limit=5)
        asked = [t for t in waiting if _open_question(turn, t, person)]
        if not asked:
            return False
        ticket = asked[0]
    elif not _open_question(turn, ticket, person):
        return False
    step = (ticket.intake or {})["parts_ask"]["step"]
    _, days = split_answer(text)
    today = turn.now.astimezone(turn.env.settings.tz).date()
    day = next((d for d in (read_date(s, today) for s in days) if d is not None), None)
    if day is None and step == "eta":
        day = read_date(text, today)
    if step == "parts":
        found = read_parts(text)
        if not found:
            turn.reply(Text(say("parts.ask_again", turn.locale)), ticket_id=ticket.id)
            return True
        _take_parts(turn, ticket, found)
        if day is None:
            await lifecycle.refresh(turn, ticket)
            assert turn.event is not None
            _ask_eta(turn, ticket, int((ticket.intake or {})["parts_round"]), turn.event.chat)
            return True
    elif day is None:  # step == "eta"
        turn.reply(Text(say("parts.eta_again", turn.locale)), ticket_id=ticket.id)
        return True
    assert day is not None
    settings = turn.env.settings.parts
    at = day_end(day, settings, turn.env.settings.tz, turn.now)
    await _set_eta(turn, ticket, at, via="message", said=text[:200], reply=True)
    return True


def _open_question(turn: Turn, ticket: Ticket, person: Person) -> bool:
    ask = (ticket.intake or {}).get("parts_ask") or {}
    if ticket.state != _WAITING or ask.get("step") not in ("parts", "eta"):
        return False
    if ask.get("by") != person.id:
        return False
    window = timedelta(minutes=turn.env.settings.parts.ask_minutes)
    return turn.now - datetime.fromisoformat(ask["at"]) <= window


def _take_parts(turn: Turn, ticket: Ticket, found: list[PartLine]) -> None:
    intake = dict(ticket.intake or {})
    round_ = int(intake.get("parts_round", 1))
    ticket.parts = [p.as_json() for p in found]
    intake["parts_ask"] = _asking(turn, "eta", round_)
    ticket.intake = intake
    ticket.updated_at = turn.now
    turn.record(ticket, "parts", via="message", data={"parts": ticket.parts, "round": round_})
    turn.reply(
        Text(say("parts.noted", turn.locale, number=ticket.number,
                 parts=parts_text(ticket.parts, turn.locale))),
        ticket_id=ticket.id,
    )  # fmt: skip
    _to_stores(turn, ticket, round_)


# ------------------------------------------------------------------------------ telling


def _to_stores(turn: Turn, ticket: Ticket, round_: int, *, kind: str = "request") -> None:
    """The stores chat hears of a request once, and once of its arrival or withdrawal (the
    outbox's idempotency keys)."""
    ref = turn.env.settings.parts.stores_chat
    if ref is None:
        return
    where = Address.parse(ref)
    if where.platform not in turn.env.platforms:  # like a team chat there: not posted
        log.warning("[parts] stores_chat %s: %s is not running; not told", ref, where.platform)
        return
    locale = turn.env.settings.locale
    who = turn.person.name if turn.person is not None else ""
    parts = parts_text(ticket.parts, locale)
    if kind == "arrived":
        text = say("parts.stores_arrived", locale, number=ticket.number, parts=parts, who=who)
    elif kind == "withdrawn":
        text = say("parts.stores_withdrawn", locale, number=ticket.number, parts=parts, who=who)
    else:
        none = say("parts.none", locale)
        lines = "\n".join(say("parts.stores_line", locale,
                              line=part_line(p, turn.env.parts, locale))
                          for p in ticket.parts or [])  # fmt: skip
        where_text = say("parts.stores_where", locale, site=ticket.site or none,
                         device=ticket.device_code or none)  # fmt: skip
        text = say("parts.stores_request", locale, number=ticket.number, priority=ticket.priority,
                   title=ticket.title, where=where_text, lines=lines, who=who)  # fmt: skip
    turn.send(where, Text(text), ticket_id=ticket.id, key=f"parts:{ticket.id}:{round_}:{kind}")


async def _tell_waiting(turn: Turn, ticket: Ticket) -> None:
    settings, tz = turn.env.settings.parts, turn.env.settings.tz
    eta = ticket.parts_eta

    def text_of(locale: str) -> str:
        parts = parts_text(ticket.parts, locale)
        if eta is None:
            return say("parts.told_waiting_unknown", locale, parts=parts)
        return say(
            "parts.told_waiting", locale, parts=parts, eta=day_text(eta, locale, settings, tz)
        )

    await lifecycle.tell_reporters(turn, ticket, text_of)


async def _tell_arrived(turn: Turn, ticket: Ticket, at: datetime) -> None:
    settings, tz = turn.env.settings.parts, turn.env.settings.tz

    def text_of(locale: str) -> str:
        return say("parts.told_arrived", locale, visit=day_text(at, locale, settings, tz))

    await lifecycle.tell_reporters(turn, ticket, text_of)
