"""Voice notes: transcript → structured diagnosis → a card the engineer confirms with one tap.

The engine does the slow part outside any transaction — download the audio, transcribe it in
the worker pool, read the diagnosis — and hands the result (``Heard``) to ``handle_voice``:

- from a customer, the transcript is their report, exactly as if they had typed it;
- from staff, it becomes a draft voice note and a card in the same chat: transcript, the
  diagnosis fields and buttons [确认] [重录] plus the suggested transition (e.g. [待备件]). With
  several open tickets the card asks which one it belongs to ([确认 → GD-3] …).

Confirming stores the diagnosis on the ticket (it counts as evidence for resolve), writes it to
the audit trail and, where the state table leads there (an on-site ticket), moves the ticket to
诊断中; a suggested-transition button confirms and then moves the ticket on, in one unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot import lifecycle
from bot.cards.voice import build_voice_card, drafts_of
from bot.errors import AudioRejected, NotAllowed, NoteAlreadyDecided
from bot.events import Text, Voice
from bot.flows.intake import customer_report
from bot.parts_catalog import with_codes
from bot.texts import refusal, say
from bot.tickets import NoteAction, TicketAction, applies, facts_of
from bot.unit import Turn
from storage.records import Person, Ticket

__all__ = ["Heard", "acknowledge", "confirm_note", "decide", "handle_voice"]


@dataclass(frozen=True, slots=True)
class Heard:
    """What the engine made of a voice note before the flow runs."""

    transcript: str | None = None
    language: str = "zh"
    duration_s: float | None = None
    diagnosis: dict[str, Any] | None = None  # ``Diagnosis.as_json()``
    problem: AudioRejected | None = None


def acknowledge(turn: Turn) -> None:
    """The immediate "transcribing…" reply, sent before the slow part starts."""
    turn.reply(Text(say("voice.transcribing", turn.locale)))


async def handle_voice(turn: Turn, event: Voice, heard: Heard) -> None:
    assert turn.person is not None
    if heard.problem is not None:
        turn.reply(Text(refusal(heard.problem, turn.locale)))
        return
    text = (heard.transcript or event.platform_transcript or "").strip()
    if not text:
        turn.reply(Text(say("voice.unheard", turn.locale)))
        return
    if turn.person.role == "customer":
        await customer_report(turn, event, text)
        return
    candidates = await drafts_of(turn, turn.person.id)
    diagnosis = heard.diagnosis
    if diagnosis is None:
        from bot.nlp.diagnosis import diagnose  # (jieba and the readers load on first use)

        diagnosis = diagnose(text).as_json()
    diagnosis = with_codes(diagnosis, turn.env.parts)  # the catalog's code of each part
    note = await turn.unit.new_note(
        source_event=turn.key,
        person_id=turn.person.id,
        chat=event.chat.ref,
        ticket_id=candidates[0].id if len(candidates) == 1 else None,
        transcript=text,
        language=heard.language,
        duration_s=heard.duration_s or event.duration_s,
        platform_transcript=event.platform_transcript,
        diagnosis=diagnosis,
        created_at=turn.now,
    )
    if not candidates:
        turn.reply(build_voice_card(turn, note, [], turn.locale))
        turn.reply(Text(say("voice.no_ticket", turn.locale)))
        return
    ref = await turn.unit.new_card_ref(candidates[0], event.chat, f"voice:{note.id}", turn.locale)
    card = build_voice_card(turn, note, candidates, turn.locale)
    turn.send(event.chat, card, ticket_id=candidates[0].id, card_ref=ref)


async def confirm_note(turn: Turn, ticket: Ticket, note_id: int, presser: Person) -> None:
    """Store the note's diagnosis on ``ticket`` (and move it to 诊断中 where the table leads)."""
    note = await turn.unit.note(note_id)
    if note is None or (note.person_id != presser.id and presser.role != "manager"):
        raise NotAllowed(action=NoteAction.CONFIRM_DIAGNOSIS, state=ticket.state)
    if note.status != "draft":
        raise NoteAlreadyDecided()
    turn.unit.touch(ticket.id)
    note.status, note.ticket_id, note.decided_at = "confirmed", ticket.id, turn.now
    diagnosis = {
        **note.diagnosis,
        "transcript": note.transcript,
        "language": note.language,
        "note_id": note.id,
        "confirmed_by": presser.key,
        "confirmed_at": turn.now.isoformat(),
    }
    ticket.diagnosis = diagnosis
    ticket.updated_at = turn.now
    turn.unit.record(ticket, "diagnosis", actor=presser, via="voice", data=diagnosis)
    if applies(TicketAction.DIAGNOSE, facts_of(ticket)):
        await lifecycle.apply(turn, ticket, TicketAction.DIAGNOSE, presser, via="voice")
    else:
        await lifecycle.refresh(turn, ticket)


async def decide(turn: Turn, ticket: Ticket, action: NoteAction, note_id: int) -> None:
    """A press of [确认] or [重录] on a diagnosis card."""
    assert turn.person is not None
    if action == NoteAction.CONFIRM_DIAGNOSIS:
        await confirm_note(turn, ticket, note_id, turn.person)
        turn.notify_presser(say("diag.confirmed", turn.locale, number=ticket.number))
        return
    note = await turn.unit.note(note_id)
    if note is None or note.person_id != turn.person.id:
        raise NotAllowed(action=action, state=ticket.state)
    if note.status != "draft":
        raise NoteAlreadyDecided()
    note.status, note.decided_at = "discarded", turn.now
    await lifecycle.refresh(turn, ticket)
    turn.notify_presser(say("diag.discarded", turn.locale))
