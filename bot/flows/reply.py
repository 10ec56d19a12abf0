"""Staff write to the customer: "GD-12 回复：明早9点到场" (or "GD-12 reply: on site at 9") in
any chat, or the reply box on the console (which sends the same words).

Only staff get here (``bot.flows.intake`` hands a customer's text to the intake, whatever it
says), and only engineers, dispatchers and managers may write: the words go to the ticket's
origin chat as "【GD-12】工程师 李工：…" in the customer's language, with the link to the
ticket's progress page; they go on the ticket's audit trail (``customer_reply``: who, what,
to which chat) and on the progress page's timeline; the writer is told it was sent. Like
every message, it is sent once: the outbox's idempotency key is the event's.
"""

from __future__ import annotations

import re

from bot.errors import NotAllowed
from bot.events import Address, Text
from bot.lifecycle import progress_link
from bot.progress import staff_role
from bot.texts import say
from bot.unit import Turn
from storage.records import Ticket

__all__ = ["COMMAND", "STAFF_ROLES", "command"]

#: "回复：明早到" / "回复 明早到" / "reply: on my way" (after the ticket number)
COMMAND = re.compile(
    r"^\s*(?:回复|答复|reply)(?:\s*[:：]\s*|\s+|$)(.*)$", re.IGNORECASE | re.DOTALL
)
#: Who may write to a customer.
STAFF_ROLES = frozenset({"engineer", "dispatcher", "manager"})
#: The longest reply (a chat message, not a report); longer ones are refused, never cut.
MAX_CHARS = 1000


async def command(turn: Turn, ticket: Ticket, m: re.Match[str]) -> None:
    """Deliver ``m``'s words to the customer of ``ticket``, audited; confirm to the writer."""
    person = turn.person
    if person is None or person.role not in STAFF_ROLES:
        raise NotAllowed(action="reply", state=ticket.state)
    text = m.group(1).strip()
    if not text or len(text) > MAX_CHARS:
        turn.reply(Text(say("reply.empty", turn.locale, number=ticket.number)))
        return
    reporter = await turn.unit.person(ticket.reporter_id)
    locale = (reporter.locale if reporter else None) or turn.env.settings.locale
    words = say("milestone.prefix", locale, number=ticket.number) + say(
        "reply.from_staff", locale, role=staff_role(person.role, locale), name=person.name,
        text=text,
    )  # fmt: skip
    link = progress_link(turn, ticket)
    if link:
        words += "\n" + say("progress.link", locale, url=link)
    turn.send(Address.parse(ticket.origin_chat), Text(words), ticket_id=ticket.id)
    turn.record(
        ticket,
        "customer_reply",
        via="message",
        data={"text": text, "role": person.role, "to": ticket.origin_chat},
    )
    turn.reply(Text(say("reply.sent", turn.locale, number=ticket.number, text=text)))
