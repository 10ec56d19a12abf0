"""Voice notes: transcript → structured diagnosis → a card the engineer confirms with one tap.

The engine does the slow part outside any transaction — download the audio, transcribe it in
the worker pool, read the diagnosis — and hands the result (``Heard``) to ``handle_voice``:

- from a customer, the transcript is their report, exactly as if they had typed it;
- from staff, it becomes a draft ``VoiceNote`` and a card in the same chat: transcript, the
  diagnosis fields and buttons [确认] [重录] plus the suggested transition (e.g. [待备件]). With
  several open tickets the card asks which one it belongs to ([确认 → GD-3] …).

Confirming stores the diagnosis on the ticket (it counts as evidence for resolve), writes it to
the audit trail and moves an on-site ticket to 诊断中; a suggested-transition button confirms
and then moves the ticket on, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.adapters.codec import ActionToken
from bot.errors import AudioRejected, NotAllowed, NoteAlreadyDecided
from bot.events import Button, Card, Text, Voice
from bot.flows import FlowContext, cards
from bot.flows.intake import customer_report
from bot.texts import say
from bot.tickets import (
    OPEN_STATES,
    REMOTE_CATEGORIES,
    Category,
    NoteAction,
    TicketAction,
    TicketState,
    action_label,
    state_label,
)
from storage import repo
from storage.models import Person, Ticket, VoiceNote

__all__ = ["Heard", "acknowledge", "build_voice_card", "confirm_note", "decide", "handle_voice"]

#: The transition that leads to the state a diagnosis suggests.
SUGGESTED_ACTION = {
    "waiting_parts": TicketAction.NEED_PARTS,
    "third_party": TicketAction.NEED_THIRD_PARTY,
    "repairing": TicketAction.REPAIR,
    "resolved": TicketAction.RESOLVE,
}


@dataclass(frozen=True, slots=True)
class Heard:
    """What the engine made of a voice note before the flow runs."""

    transcript: str | None = None
    language: str = "zh"
    duration_s: float | None = None
    diagnosis: dict[str, Any] | None = None  # ``Diagnosis.as_json()``
    problem: AudioRejected | None = None


async def acknowledge(ctx: FlowContext) -> None:
    """The immediate "transcribing…" reply, sent before the slow part starts."""
    await ctx.reply(Text(say("voice.transcribing", ctx.locale)))


async def handle_voice(ctx: FlowContext, event: Voice, heard: Heard) -> None:
    assert ctx.person is not None
    if heard.problem is not None:
        await ctx.reply(Text(heard.problem.reason(ctx.locale)))
        return
    text = (heard.transcript or event.platform_transcript or "").strip()
    if not text:
        await ctx.reply(Text(say("voice.unheard", ctx.locale)))
        return
    if ctx.person.role == "customer":
        await customer_report(ctx, event, text, addressed=True)
        return
    candidates = await _open_tickets(ctx, ctx.person)
    diagnosis = heard.diagnosis
    if diagnosis is None:
        from bot.nlp.diagnosis import diagnose

        diagnosis = diagnose(text).as_json()
    note = await repo.add_voice_note(
        ctx.session,
        source_event=ctx.key,
        person_id=ctx.person.id,
        chat=event.chat.ref,
        ticket_id=candidates[0].id if len(candidates) == 1 else None,
        transcript=text,
        language=heard.language,
        duration_s=heard.duration_s or event.duration_s,
        platform_transcript=event.platform_transcript,
        diagnosis=diagnosis,
        created_at=ctx.now,
    )
    if not candidates:
        card = build_voice_card(ctx, note, [], ctx.locale)
        await ctx.reply(card)
        await ctx.reply(Text(say("voice.no_ticket", ctx.locale)))
        return
    ref = await repo.add_card_ref(
        ctx.session, candidates[0].id, event.chat.ref, f"voice:{note.id}", ctx.locale
    )
    card = build_voice_card(ctx, note, candidates, ctx.locale)
    await ctx.send(event.chat, card, ticket_id=candidates[0].id, card_ref_id=ref.id)


async def _open_tickets(ctx: FlowContext, person: Person) -> list[Ticket]:
    states = [s.value for s in OPEN_STATES - {TicketState.RESOLVED}]
    return await repo.list_tickets(ctx.session, states=states, assignee_id=person.id, limit=5)


def _summary(diagnosis: dict[str, Any], locale: str) -> list[tuple[str, str]]:
    parts = "、".join(f"{p['name']}×{p['qty']}" for p in diagnosis.get("parts_needed", []))
    measured = "；".join(
        f"{m['quantity']} {m['value']:g}{m['unit']}" for m in diagnosis.get("measurements", [])
    )
    rows = [
        ("diag.equipment", diagnosis.get("equipment")),
        ("diag.symptom", diagnosis.get("symptom")),
        ("diag.cause", diagnosis.get("suspected_cause")),
        ("diag.actions", "；".join(diagnosis.get("actions_taken", []))),
        ("diag.parts", parts),
        ("diag.measurements", measured),
        ("diag.next", diagnosis.get("next_step")),
    ]
    return [(say(k, locale), str(v)) for k, v in rows if v]


def build_voice_card(
    ctx: FlowContext, note: VoiceNote, candidates: list[Ticket], locale: str
) -> Card:
    """The diagnosis card; buttons only while the note is a draft."""
    suggested = str(note.diagnosis.get("suggested_state", "diagnosing"))
    fields = [(say("diag.transcript", locale), note.transcript[:500])]
    fields += _summary(note.diagnosis, locale)
    if suggested in TicketState.__members__.values():
        fields.append((say("diag.suggested", locale), state_label(TicketState(suggested), locale)))
    fields.append((say("diag.status", locale), say(f"diag.status.{note.status}", locale)))
    buttons: list[Button] = []
    if note.status == "draft" and candidates:
        buttons = _draft_buttons(ctx, note, candidates, suggested, locale)
    numbers = " / ".join(t.number or "" for t in candidates)
    return Card(
        ticket_id=candidates[0].id if candidates else 0,
        version=candidates[0].version if candidates else 0,
        title=f"{numbers} · {say('diag.title', locale)}" if numbers else say("diag.title", locale),
        fields=tuple(fields),
        buttons=tuple(buttons),
    )


def _draft_buttons(
    ctx: FlowContext, note: VoiceNote, candidates: list[Ticket], suggested: str, locale: str
) -> list[Button]:
    def token(ticket: Ticket, action: TicketAction | NoteAction) -> str:
        return ctx.codec.encode(ActionToken(ticket.id, action, ticket.version, note.id))

    confirm = action_label(NoteAction.CONFIRM_DIAGNOSIS, locale)
    buttons: list[Button] = []
    if len(candidates) == 1:
        ticket = candidates[0]
        buttons.append(
            Button(
                confirm,
                token(ticket, NoteAction.CONFIRM_DIAGNOSIS),
                "primary",
                action=NoteAction.CONFIRM_DIAGNOSIS.value,
            )
        )
        move = SUGGESTED_ACTION.get(suggested)
        if move is not None and _reachable(ticket, move):
            label = say("diag.confirm_and", locale, action=action_label(move, locale))
            buttons.append(Button(label, token(ticket, move), "default", action=move.value))
    else:
        for ticket in candidates:
            buttons.append(
                Button(
                    f"{confirm} → {ticket.number}",
                    token(ticket, NoteAction.CONFIRM_DIAGNOSIS),
                    "primary",
                    action=NoteAction.CONFIRM_DIAGNOSIS.value,
                )
            )
    discard = NoteAction.DISCARD_DIAGNOSIS
    buttons.append(
        Button(
            action_label(discard, locale),
            token(candidates[0], discard),
            "danger",
            action=discard.value,
        )
    )
    return buttons


def _reachable(ticket: Ticket, action: TicketAction) -> bool:
    """Whether confirming (which moves an on-site ticket to 诊断中) puts ``action`` in reach."""
    from bot.tickets import TRANSITIONS

    state = TicketState(ticket.state)
    if _needs_diagnose_first(ticket):
        state = TicketState.DIAGNOSING
    return state in TRANSITIONS[action].source


def _needs_diagnose_first(ticket: Ticket) -> bool:
    state = TicketState(ticket.state)
    remote = Category(ticket.category) in REMOTE_CATEGORIES
    return state == TicketState.ON_SITE or (state == TicketState.ACCEPTED and remote)


async def confirm_note(ctx: FlowContext, ticket: Ticket, note_id: int, presser: Person) -> Ticket:
    """Store the note's diagnosis on ``ticket``; return the ticket as it is afterwards."""
    from bot.flows.actions import apply_action

    note = await repo.get_voice_note(ctx.session, note_id)
    state = TicketState(ticket.state)
    if note is None or (note.person_id != presser.id and presser.role != "manager"):
        raise NotAllowed(action=NoteAction.CONFIRM_DIAGNOSIS, state=state)
    if not await repo.decide_voice_note(ctx.session, note.id, "confirmed", ticket.id):
        raise NoteAlreadyDecided()
    diagnosis = {
        **note.diagnosis,
        "transcript": note.transcript,
        "language": note.language,
        "note_id": note.id,
        "confirmed_by": presser.key,
        "confirmed_at": ctx.now.isoformat(),
    }
    await repo.set_ticket_fields(ctx.session, ticket.id, diagnosis=diagnosis)
    await repo.append_event(
        ctx.session,
        ticket.id,
        actor=presser.name,
        actor_id=presser.id,
        kind="diagnosis",
        via="voice",
        data=diagnosis,
        at=ctx.now,
    )
    ticket = await _fresh(ctx, ticket.id)
    if _needs_diagnose_first(ticket):
        ticket = await apply_action(ctx, ticket, TicketAction.DIAGNOSE, presser, via="voice")
    else:
        await cards.refresh(ctx, ticket)
    return ticket


async def decide(ctx: FlowContext, ticket: Ticket, action: NoteAction, note_id: int) -> None:
    """A press of [确认] or [重录] on a diagnosis card."""
    assert ctx.person is not None
    if action == NoteAction.CONFIRM_DIAGNOSIS:
        await confirm_note(ctx, ticket, note_id, ctx.person)
        await ctx.notify_presser(say("diag.confirmed", ctx.locale, number=ticket.number))
        return
    note = await repo.get_voice_note(ctx.session, note_id)
    if note is None or note.person_id != ctx.person.id:
        raise NotAllowed(action=action, state=TicketState(ticket.state))
    if not await repo.decide_voice_note(ctx.session, note.id, "discarded", note.ticket_id):
        raise NoteAlreadyDecided()
    await cards.refresh(ctx, ticket)
    await ctx.notify_presser(say("diag.discarded", ctx.locale))


async def voice_card_for(ctx: FlowContext, ticket: Ticket, note_id: int, locale: str) -> Card:
    """Rebuild a diagnosis card (for ``cards.refresh``)."""
    note = await repo.get_voice_note(ctx.session, note_id)
    assert note is not None
    person = await repo.get_person(ctx.session, note.person_id)
    candidates = [ticket]
    if note.status == "draft" and note.ticket_id is None and person is not None:
        candidates = await _open_tickets(ctx, person) or [ticket]
    return build_voice_card(ctx, note, candidates, locale)


async def _fresh(ctx: FlowContext, ticket_id: int) -> Ticket:
    ticket = await repo.get_ticket(ctx.session, ticket_id)
    assert ticket is not None
    return ticket
