"""Intake: a customer's words become a ticket, an answer, a chase or a question — never nothing.

Every customer message goes one way, in this order (each outcome is counted in metrics):

0. **rating_comment** — the customer rated a closed ticket from this chat within
   ``[csat] comment_window`` and this is not a confident new fault report: the message is that
   rating's comment (``bot/flows/csat.py``).

1. **chase** — the reader says it follows up a fault (人呢？/still broken/any update?) and the
   customer has an open ticket: it goes on that ticket, raises it to ``chase_priority`` and
   nags its assignee. Never a new ticket.
2. **slot** — the customer's last report lacked a site or device and this message, within
   ``slot_minutes``, names one: the ticket (and its cards) get it.
3. **ticket** — a fault report read with confidence: a ticket, routed and acknowledged, with a
   one-tap impact question when the priority is uncertain or P0/P1.
4. **comment** — addressed to us, not clearly a new fault, and the customer has an open ticket
   in this chat: on that ticket's record.
5. **asked** — the reader is unsure: "需要报修吗？[报修] [不用]" (in a group, once per person
   per ``slot_minutes``).
6. **answered** — small talk addressed to us: how to report.
7. **ignored** — in a group, what is not for us (counted, never answered).

How a group reads its messages is its intake mode (``[intake] group_mode``, per-chat
``[[intake.chats]]``): ``reports`` (the above, small talk ignored), ``all`` (as a direct
chat), ``mentions`` (only messages that @-mention the bot). A staff member's text is a note
on the ticket it names.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

from bot import lifecycle
from bot.adapters.codec import ActionToken
from bot.events import Address, Button, Card, Message, Text, Voice
from bot.flows import csat, followups, parts, repeats, reply, routing, signin, snooze
from bot.nlp.classify import Reading, classify
from bot.sla.clocks import sync
from bot.texts import say, short_time
from bot.ticket_labels import action_label
from bot.tickets import OPEN_STATES, Category, IntakeAction, Priority, TicketState
from bot.unit import Turn
from storage.assets import AssetEntry
from storage.records import Ticket

__all__ = [
    "as_report",
    "create_ticket",
    "customer_report",
    "handle_message",
]

_TICKET_REF = re.compile(r"\bGD-(\d+)\b", re.IGNORECASE)
_ROOT_CAUSE = re.compile(r"^\s*(原因|根因|故障原因|root\s*cause|cause)\s*[:：]\s*", re.IGNORECASE)
_OPEN = frozenset(s.value for s in OPEN_STATES)


async def handle_message(turn: Turn, event: Message) -> None:
    assert turn.person is not None
    text = event.text.strip()
    if not text:
        return
    if turn.person.role != "customer" and signin.asks_to_sign_in(text):
        await signin.send_link(turn, event)
    elif turn.person.role == "customer":
        await customer_report(turn, event, text)
    elif event.chat_type == "direct" or event.mentions_bot or _TICKET_REF.search(text):
        await _staff_text(turn, text)


async def customer_report(turn: Turn, event: Message | Voice, text: str) -> None:
    """A customer's words, typed or from a voice note (see the module's docstring)."""
    assert turn.person is not None
    settings = turn.env.settings.intake
    direct = event.chat_type == "direct"
    mode = settings.mode_for(event.chat.ref, event.chat_type)
    mentioned = isinstance(event, Message) and event.mentions_bot
    count = turn.env.metrics.intake
    if mode == "mentions" and not mentioned:
        count.labels("ignored", mode).inc()
        return
    addressed = direct or mentioned or mode in ("all", "mentions") or isinstance(event, Voice)
    reading = classify(text)
    via = "voice" if isinstance(event, Voice) else "message"
    sure = reading.confidence.report >= settings.ask_below
    named_fault = reading.is_fault_report and sure and reading.evidence and not reading.followup
    if not named_fault and await csat.took(turn, event, text):  # a rating's comment
        count.labels("rating_comment", mode).inc()
        return
    mine: list[Ticket] = []
    if reading.followup or not (reading.is_fault_report and sure and reading.evidence):
        # (a confident report naming a fault skips this read: no chase, no slot answer)
        mine = await turn.unit.open_tickets(
            _OPEN, reporter_id=turn.person.id, origin_chat=event.chat.ref, limit=1
        )
    if reading.followup and (reading.is_fault_report or addressed):
        chased = mine[0] if mine else await followups.open_anywhere(turn)
        if chased is not None:
            await followups.chase(turn, chased, text, via)
            count.labels("chase", mode).inc()
            return
    if mine and await followups.fill_slots(turn, mine[0], text, reading, via):
        count.labels("slot", mode).inc()
        return
    p_report = (
        reading.confidence.report if reading.is_fault_report else 1 - reading.confidence.report
    )
    if reading.is_fault_report and sure and (reading.evidence or not mine):
        turn.unit.seen_chat(event.chat, event.chat_type)
        await create_ticket(turn, event, text, reading, via=via, source=turn.key)
        count.labels("ticket", mode).inc()
    elif mine and addressed:  # about their open ticket, as far as we can tell: on its record
        turn.record(mine[0], "comment", via=via, data={"text": text})
        turn.reply(Text(say("comment.added", turn.locale, number=mine[0].number)))
        count.labels("comment", mode).inc()
    elif p_report >= settings.ask_above and isinstance(event, Voice):
        # a voice note was sent on purpose and has no text to quote in a question: a ticket
        turn.unit.seen_chat(event.chat, event.chat_type)
        await create_ticket(turn, event, text, as_report(reading), via=via, source=turn.key)
        count.labels("ticket", mode).inc()
    elif p_report >= settings.ask_above and _may_ask(turn, event, direct):
        _ask_report(turn, text)
        count.labels("asked", mode).inc()
    elif not addressed:
        count.labels("ignored", mode).inc()
    else:
        turn.reply(Text(say("ask.describe", turn.locale)))
        count.labels("answered", mode).inc()


def _may_ask(turn: Turn, event: Message | Voice, direct: bool) -> bool:
    """Direct chats are always asked; a group at most once per person per slot window (a
    chatty group is not flooded with questions)."""
    if direct:
        return True
    assert turn.person is not None
    asked = turn.env.asked
    key = f"{event.chat.ref}|{turn.person.id}"
    last = asked.get(key)
    window = timedelta(minutes=turn.env.settings.intake.slot_minutes)
    if last is not None and turn.now - last < window:
        return False
    if len(asked) > 10_000:  # forget the oldest half; a bounded memory, not a log
        for stale in sorted(asked, key=asked.__getitem__)[: len(asked) // 2]:
            del asked[stale]
    asked[key] = turn.now
    return True


def _ask_report(turn: Turn, text: str) -> None:
    """ "需要报修吗？[报修] [不用]": the buttons name this message, stored in the inbox."""
    assert turn.row_id is not None
    locale, codec = turn.locale, turn.env.codec
    buttons = tuple(
        Button(
            label=action_label(action, locale),
            token=codec.encode(ActionToken(turn.row_id, action, 0)),
            style="primary" if action == IntakeAction.REPORT else "default",
            action=action.value,
        )
        for action in (IntakeAction.REPORT, IntakeAction.DISMISS)
    )
    quote = say("ask.report_quote", locale, text=text[:80] + ("…" if len(text) > 80 else ""))
    turn.reply(Card(ticket_id=0, version=0, title=say("ask.report", locale), text=quote,
                    buttons=buttons))  # fmt: skip


async def create_ticket(
    turn: Turn, event: Message | Voice, text: str, reading: Reading, *, via: str, source: str
) -> Ticket:
    """A ticket from a report: routed, its clocks started, the customer answered (with the
    impact question when needed) and staff cards posted."""
    assert turn.person is not None
    env, unit = turn.env, turn.unit
    settings = env.settings.intake
    title = reading.title[:200]
    asset = _asset_of(turn, event, reading, text)
    site, site_from = reading.location, None
    if site is None and asset is not None:
        site = asset.site_name
    if site is None and settings.reuse_days > 0:
        since = turn.now - timedelta(days=settings.reuse_days)
        last = await unit.last_site(turn.person.id, event.chat.ref, since)
        if last is not None:
            site, site_from = last
    named = asset.name if asset is not None else reading.device  # (rather than "机器")
    device = reading.device_code or reading.device_name or named
    missing = [slot for slot, value in (("device", device), ("site", site)) if not value]
    ask_impact = (
        reading.priority in (Priority.P0, Priority.P1)
        or reading.confidence.priority < settings.ask_impact_below
    ) and reading.category.value != "safety"
    intake = {
        **({"impact": "asked", "urgent": reading.urgent} if ask_impact else {}),
        **({"slots": missing} if missing else {}),
        **({"site_from": site_from} if site_from else {}),
    }
    found = await repeats.detect(turn, asset_id=asset.id if asset else None,
                                 asset_name=asset.name if asset else None, site=site,
                                 device=device, alarm=reading.alarm_code, text=text)  # fmt: skip
    intake.update(repeats.intake_of(found))  # a suspected repeat waits for staff, unrouted:
    job = routing.job_for(category=reading.category.value, title=title, device=device, asset=asset)
    decision = None if found and found.open else await routing.decide(turn, job)
    picked = decision.winner.candidate.person_id if decision and decision.winner else None
    assignee = env.staff.by_id.get(picked) if picked is not None else None
    team = env.directory.team_for(assignee.key if assignee else None)
    team_key = team.id if team is not None else (found.original.team_key if found else None)
    ticket = await unit.new_ticket(
        title=title,
        description=text,
        priority=reading.priority.value,
        category=reading.category.value,
        state=TicketState.NEW.value,
        device_code=device,
        site=site,
        alarm_code=reading.alarm_code,
        asset_id=asset.id if asset is not None else None,
        reporter_id=turn.person.id,
        origin_chat=event.chat.ref,
        source_event=source,
        team_key=team_key,
        intake={**intake, **_full_text(event)} or None,  # (the audit keeps the cut text)
        created_at=turn.now,
        updated_at=turn.now,
    )
    turn.record(
        ticket,
        "created",
        via=via,
        to_state=TicketState.NEW.value,
        data={
            "text": text,
            "reading": reading.as_json(None),
            **intake,
            **({"asset": asset.code} if asset is not None else {}),
        },
    )
    env.metrics.tickets_created.inc()
    if decision and picked is not None and not await routing.broadcast(turn, ticket, decision):
        await routing.assign(turn, ticket, decision)  # (its clocks start, counted from creation)
    else:
        await sync(unit, ticket, actor=None, since=ticket.created_at)  # its clocks start
    await _acknowledge(turn, event.chat, ticket, missing)
    await repeats.announce(turn, event.chat, ticket, found)
    return ticket


def _asset_of(turn: Turn, event: Message | Voice, reading: Reading, text: str) -> AssetEntry | None:
    """The registered asset a report is about: the one its signed link named (a QR code),
    else the one its tag or machine name resolves to (in memory: no statement)."""
    index = turn.env.assets
    if isinstance(event, Message) and event.asset_id is not None:
        named = index.get(event.asset_id)
        if named is not None:
            return named
    if not len(index):
        return None
    return index.resolve(reading.device_code, reading.device_name, text)


async def _acknowledge(turn: Turn, chat: Address, ticket: Ticket, missing: list[str]) -> None:
    locale = turn.locale
    assignee = await turn.unit.person(ticket.assignee_id)
    who = (
        say("ack.assigned", locale, name=assignee.name)
        if assignee
        else say("ack.unassigned", locale)
    )
    ack = say("ack", locale, number=ticket.number, priority=ticket.priority, who=who)
    ack += _promise(turn, ticket, locale)
    if missing:
        names = [
            say("missing.device" if m == "device" else "missing.location", locale) for m in missing
        ]
        ack += "\n" + say(
            "ask.missing", locale, missing=("、" if locale == "zh" else ", ").join(names)
        )
    site_from = (ticket.intake or {}).get("site_from")
    if site_from:
        ack += "\n" + say("site.reused", locale, site=ticket.site)
    link = lifecycle.progress_link(turn, ticket)  # the page to come back to, from any tab
    if link:
        ack += "\n" + say("progress.link", locale, url=link)
    turn.send(chat, Text(ack), ticket_id=ticket.id)
    await lifecycle.publish(turn, ticket, chat, "customer", locale)
    await lifecycle.publish_staff_cards(turn, ticket)


def _promise(turn: Turn, ticket: Ticket, locale: str) -> str:
    """The times the customer may hold us to (the SLA clocks' deadlines), if any."""
    tz = turn.env.settings.tz
    promises = [
        say(f"promise.{kind}", locale, at=short_time(at, tz, turn.now))
        for kind, at in (
            ("respond", ticket.respond_due),
            ("arrive", ticket.arrive_due),
            ("resolve", ticket.resolve_due),
        )
        if at is not None
    ]
    sep = "，" if locale == "zh" else ", "
    return say("ack.promise", locale, promises=sep.join(promises)) if promises else ""


def _full_text(event: Message | Voice) -> dict[str, str]:
    """The whole text of a report that was cut on its way in (``bot.inbox.TextCap``)."""
    if isinstance(event, Message) and event.full_text is not None:
        return {"full_text": event.full_text}
    return {}


def as_report(reading: Reading) -> Reading:
    """The reading of a message its writer says is a report (报修), or sent as a voice note."""
    if reading.is_fault_report:
        return reading
    category = reading.category if reading.category.value != "other" else Category.EQUIPMENT_FAILURE
    priority = reading.priority if reading.priority != Priority.P3 else Priority.P2
    return replace(reading, is_fault_report=True, category=category, priority=priority)


async def _staff_text(turn: Turn, text: str) -> None:
    assert turn.person is not None
    locale = turn.locale
    m = _TICKET_REF.search(text)
    ticket = await turn.unit.ticket_by_number(f"GD-{m.group(1)}") if m else None
    if ticket is None and await parts.answer(turn, None, text):  # 需要哪些备件？/ when?
        return
    if ticket is None:
        mine = await turn.unit.open_tickets(_OPEN, assignee_id=turn.person.id, limit=10)
        numbers = ", ".join(t.number or "" for t in mine)
        listing = say("staff.open", locale, numbers=numbers) if mine else say("staff.none", locale)
        turn.reply(Text(say("staff.help", locale, open=listing)))
        return
    note = _TICKET_REF.sub("", text, count=1).strip(" ：:,，")
    command = snooze.COMMAND.match(note)
    if command:
        await snooze.command(turn, ticket, command)
        return
    words = reply.COMMAND.match(note)
    if words:  # "GD-12 回复：…": to the customer
        await reply.command(turn, ticket, words)
        return
    cause = _ROOT_CAUSE.match(note)
    if cause:
        root_cause = note[cause.end() :].strip()
        ticket.root_cause = root_cause
        ticket.updated_at = turn.now
        turn.record(ticket, "evidence", via="message", data={"root_cause": root_cause})
        await lifecycle.refresh(turn, ticket)
        turn.reply(Text(say("staff.evidence", locale, number=ticket.number)))
        return
    if await parts.answer(turn, ticket, note):  # "GD-12 轴承 ×2" to its parts question
        return
    turn.record(ticket, "comment", via="message", data={"text": note})
    turn.reply(Text(say("staff.noted", locale, number=ticket.number)))
