"""Customer satisfaction after close: a star pressed, a comment kept, one reminder, and a word
to the managers about a low score.

- **A press** (``CsatAction.RATE``, the score in the token's argument) counts once per close:
  only the ticket's reporter rates, only while it is closed, and a second press — another star
  or the same — is answered with the rating already given and changes nothing. The score goes
  on the ticket's audit trail (``csat``) and in ``csat_ratings`` (a compare-and-set: a press
  racing another is decided again on what won). A forged token never gets here (the codec
  refuses it); a press on a ticket reopened since is answered and changes nothing.
- **A comment**: after a rating the customer is invited to say more; their next message in that
  chat within ``[csat] comment_window`` minutes (in a group: one addressed to the bot) is kept
  as the rating's comment — not read as a new report (``bot/flows/intake.py`` asks ``took``).
- **The reminder** (a hub job, ``remind``): a question unanswered after ``remind_after`` hours
  is asked once more, with the same stars; the reminder is claimed with a conditional update
  (``reminded_at IS NULL``), so however many workers run the job it goes out once, and never
  after a rating.
- **A low score** (≤ ``low_score``) is told to the managers the SLA escalation's
  ``notify_manager`` step reaches (or the team's group chats), with the comment when it comes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.adapters.codec import ActionToken
from bot.cards.csat import AUDIENCE, SCORES, csat_card, rated_audience, stars
from bot.csat import post_stars
from bot.errors import TokenInvalid, UnknownTicket
from bot.events import Action, Address, Message, Text, Voice
from bot.flows.escalation import manager_targets
from bot.texts import say
from bot.tickets import Role, TicketState, roles_of
from bot.unit import Turn
from bot.work import Work
from storage import csat as csat_rows
from storage.records import Ticket
from storage.unit import Conflict

__all__ = ["COMMENT_MAX", "pressed", "remind", "took"]

log = logging.getLogger(__name__)

#: The longest comment kept (characters); the rest is cut.
COMMENT_MAX = 1000


class _Taken(Exception):
    """Another worker sent this reminder (or the customer rated meanwhile)."""


async def pressed(turn: Turn, token: ActionToken, event: Action) -> None:
    assert turn.person is not None
    score = token.arg
    if score not in SCORES:
        raise TokenInvalid()  # (signed by us: never drawn, so never pressed)
    assert score is not None
    ticket = await turn.unit.ticket(token.ticket_id)
    if ticket is None:
        raise UnknownTicket()
    locale = turn.locale
    number = ticket.number
    if Role.CUSTOMER not in roles_of(turn.person, ticket):
        turn.notify_presser(say("csat.not_reporter", locale, number=number))
        return
    if ticket.state != TicketState.CLOSED:
        turn.notify_presser(say("csat.reopened", locale, number=number))
        return
    row = await turn.unit.reads.csat(ticket.id)
    if row is not None and row.score is not None:
        given = stars(row.score, locale)
        turn.notify_presser(say("csat.already", locale, number=number, stars=given))
        return
    ticket_id, rater_id, now = ticket.id, turn.person.id, turn.now

    async def rated(conn: AsyncConnection) -> None:
        if not await csat_rows.rate(conn, ticket_id, rater_id, score, now):
            raise Conflict(f"ticket {ticket_id} was rated meanwhile")

    turn.unit.statements.append(rated)
    turn.record(ticket, "csat", via="button", data={"score": score})
    turn.env.metrics.csat.labels(str(score)).inc()
    settings = turn.env.settings.csat
    text = say("csat.thanks", locale, number=number, stars=stars(score, locale))
    if settings.comment_window > 0:
        minutes = f"{settings.comment_window:g}"
        text += "\n" + say("csat.invite", locale, minutes=minutes)
    turn.reply(Text(text), ticket_id=ticket.id)
    turn.notify_presser(say("csat.recorded", locale, stars=stars(score, locale)))
    for ref in turn.unit.refs.get(ticket.id, []):  # the stars become the score given
        if ref.audience == AUDIENCE and not ref.stale:
            ref.audience = rated_audience(score)
            card = await csat_card(turn, ticket, ref.audience, ref.locale)
            dest = Address.parse(ref.destination)
            turn.send(dest, card, ticket_id=ticket.id, card_ref=ref, op="update")
    if score <= settings.low_score:
        await _tell_managers(turn, ticket, score, None)


async def took(turn: Turn, event: Message | Voice, text: str) -> bool:
    """Whether the customer's message is the comment on a rating they just gave (then it is
    kept, acknowledged, and is nothing else)."""
    settings = turn.env.settings.csat
    person = turn.person
    if not settings.enabled or settings.comment_window <= 0 or person is None:
        return False
    if event.chat_type == "group" and not (isinstance(event, Message) and event.mentions_bot):
        return False  # in a group, only what is said to us
    since = turn.now - timedelta(minutes=settings.comment_window)
    row = await turn.unit.reads.csat_awaiting_comment(person.id, event.chat.ref, since)
    if row is None or row.score is None:
        return False
    ticket = await turn.unit.ticket(row.ticket_id)
    if ticket is None:
        return False
    comment, rating_id = text[:COMMENT_MAX], row.id

    async def kept(conn: AsyncConnection) -> None:
        if not await csat_rows.comment(conn, rating_id, comment):
            raise Conflict(f"rating {rating_id} got its comment meanwhile")

    turn.unit.statements.append(kept)
    turn.record(ticket, "csat_comment", via="chat", data={"comment": comment})
    turn.env.metrics.csat.labels("comment").inc()
    turn.reply(
        Text(say("csat.comment_thanks", turn.locale, number=ticket.number)), ticket_id=ticket.id
    )
    if row.score <= settings.low_score:
        await _tell_managers(turn, ticket, row.score, comment)
    return True


async def _tell_managers(turn: Turn, ticket: Ticket, score: int, comment: str | None) -> None:
    """The low score (or, later, its comment) to the managers, each chat once."""
    customer = await turn.unit.person(ticket.reporter_id)
    engineer = await turn.unit.person(ticket.assignee_id)
    for dest, _direct, locale, mentions in await manager_targets(turn, ticket):
        given = stars(score, locale)
        if comment is None:
            text = say(
                "csat.low", locale, number=ticket.number, title=ticket.title, stars=given,
                customer=customer.name if customer else "",
                engineer=engineer.name if engineer else say("csat.nobody", locale),
            )  # fmt: skip
        else:
            text = say("csat.low_comment", locale, number=ticket.number, stars=given,
                       comment=comment)  # fmt: skip
        kind = "comment" if comment is not None else "score"
        key = f"csat-low:{ticket.id}:{ticket.audit_seq}:{kind}>{dest.ref}"[:300]
        turn.send(dest, Text(text, mentions=tuple(mentions)), ticket_id=ticket.id, key=key)


async def remind(work: Work, *, batch: int = 50) -> int:
    """Ask once more where a question went unanswered for ``remind_after`` hours; returns how
    many reminders this worker sent."""
    settings = work.env.settings.csat
    if not settings.enabled or settings.remind_after <= 0:
        return 0
    now = work.clock()
    async with work.db.reads() as conn:
        due = await csat_rows.due_reminders(
            conn, now - timedelta(hours=settings.remind_after), batch
        )
    sent = 0
    for row in due:
        if await _remind_one(work, row, now):
            sent += 1
    return sent


async def _remind_one(work: Work, row: csat_rows.CsatRow, now: datetime) -> bool:
    try:
        async with work.unit(now=now) as tx:
            ticket = await tx.unit.ticket(row.ticket_id, lock=False)
            reporter = await tx.unit.person(row.rater_id)
            if ticket is None or ticket.state != TicketState.CLOSED or reporter is None:
                tx.idle = True
                return False
            turn = Turn(tx.unit, f"csat-remind:{row.id}:{row.asked_at.timestamp():.0f}")
            await post_stars(turn, ticket, reporter, key=turn.key, reminder=True)

            async def claim(conn: AsyncConnection) -> None:
                if not await csat_rows.claim_reminder(conn, row.id, now):
                    raise _Taken()

            tx.before_write.append(claim)
    except _Taken:
        log.info("CSAT reminder %d was sent by another worker (or rated meanwhile)", row.id)
        return False
    return True
