"""The voice-diagnosis card: transcript, the diagnosis read from it, and [确认] [重录] plus the
transition the diagnosis suggests — offered only where the state table leads there once the
diagnosis is confirmed (confirming is evidence, and moves an on-site ticket to 诊断中)."""

from __future__ import annotations

import dataclasses
from typing import Any

from bot.cards.parts import stock_text
from bot.cards.ticket import action_button
from bot.events import Button, Card
from bot.parts_catalog import PartsCatalog
from bot.texts import say
from bot.ticket_labels import action_label, state_label
from bot.tickets import (
    OPEN_STATES,
    NoteAction,
    Role,
    TicketAction,
    TicketFacts,
    TicketState,
    allowed_actions,
    applies,
    facts_of,
)
from bot.unit import Turn
from storage.records import Ticket, VoiceNote

__all__ = ["SUGGESTED_ACTION", "after_confirming", "build_voice_card", "drafts_of", "voice_card"]

#: The transition that leads to the state a diagnosis suggests.
SUGGESTED_ACTION = {
    "waiting_parts": TicketAction.NEED_PARTS,
    "third_party": TicketAction.NEED_THIRD_PARTY,
    "repairing": TicketAction.REPAIR,
    "resolved": TicketAction.RESOLVE,
}
#: Tickets a voice note can belong to: its author's, still being worked on.
WORKING = frozenset(s.value for s in OPEN_STATES - {TicketState.RESOLVED})


def after_confirming(ticket: Ticket) -> TicketFacts:
    """The ticket's facts once a diagnosis is confirmed: evidence, and 诊断中 where the table's
    DIAGNOSE leads from here."""
    facts = facts_of(ticket, has_evidence=True)
    if applies(TicketAction.DIAGNOSE, facts):
        facts = dataclasses.replace(facts, state=TicketState.DIAGNOSING)
    return facts


async def drafts_of(turn: Turn, person_id: int) -> list[Ticket]:
    """The tickets a note by ``person_id`` may be filed on."""
    return await turn.unit.open_tickets(WORKING, assignee_id=person_id, limit=5)


async def voice_card(turn: Turn, ticket: Ticket, audience: str, locale: str) -> Card:
    """Draw a diagnosis card again (``audience`` is ``voice:<note id>``)."""
    note = await turn.unit.note(int(audience.partition(":")[2]))
    assert note is not None
    candidates = [ticket]
    if note.status == "draft" and note.ticket_id is None:
        candidates = await drafts_of(turn, note.person_id) or [ticket]
    return build_voice_card(turn, note, candidates, locale)


def _reading(m: dict[str, Any]) -> str:
    """排气温度 85℃; a range 70–80℃; approximate ≈55A."""
    value = f"{m['value']:g}–{m['high']:g}" if m.get("high") is not None else f"{m['value']:g}"
    return f"{m['quantity']} {'≈' if m.get('approx') else ''}{value}{m['unit']}"


def _summary(
    diagnosis: dict[str, Any], locale: str, catalog: PartsCatalog
) -> list[tuple[str, str]]:
    needed = diagnosis.get("parts_needed", [])
    if needed and len(catalog):  # each part's catalog code and stock: what 待备件 will ask for
        parts = stock_text(needed, catalog, locale)
    else:
        parts = "、".join(f"{p['name']}×{p['qty']}" for p in needed)
    measured = "；".join(_reading(m) for m in diagnosis.get("measurements", []))
    unsure = set(diagnosis.get("unsure", []))  # fields the reader is unsure of: shown with "?"
    rows = [
        ("diag.equipment", "equipment", diagnosis.get("equipment")),
        ("diag.symptom", "symptom", diagnosis.get("symptom")),
        ("diag.cause", "suspected_cause", diagnosis.get("suspected_cause")),
        ("diag.actions", "actions_taken", "；".join(diagnosis.get("actions_taken", []))),
        ("diag.parts", "parts_needed", parts),
        ("diag.measurements", "measurements", measured),
        ("diag.next", "next_step", diagnosis.get("next_step")),
    ]
    return [(say(k, locale), f"{v} ?" if name in unsure else str(v)) for k, name, v in rows if v]


def build_voice_card(turn: Turn, note: VoiceNote, candidates: list[Ticket], locale: str) -> Card:
    """The diagnosis card; buttons only while the note is a draft."""
    suggested = str(note.diagnosis.get("suggested_state", "diagnosing"))
    fields = [(say("diag.transcript", locale), note.transcript[:500])]
    fields += _summary(note.diagnosis, locale, turn.env.parts)
    if suggested in TicketState.__members__.values():
        label = state_label(TicketState(suggested), locale)
        unsure = "suggested_state" in note.diagnosis.get("unsure", [])
        fields.append((say("diag.suggested", locale), f"{label} ?" if unsure else label))
    fields.append((say("diag.status", locale), say(f"diag.status.{note.status}", locale)))
    buttons: list[Button] = []
    if note.status == "draft" and candidates:
        buttons = _draft_buttons(turn, note, candidates, suggested, locale)
    numbers = " / ".join(t.number or "" for t in candidates)
    return Card(
        ticket_id=candidates[0].id if candidates else 0,
        version=candidates[0].version if candidates else 0,
        title=f"{numbers} · {say('diag.title', locale)}" if numbers else say("diag.title", locale),
        fields=tuple(fields),
        buttons=tuple(buttons),
    )


def _draft_buttons(
    turn: Turn, note: VoiceNote, candidates: list[Ticket], suggested: str, locale: str
) -> list[Button]:
    codec = turn.env.codec
    confirm = NoteAction.CONFIRM_DIAGNOSIS
    buttons: list[Button] = []
    if len(candidates) == 1:
        ticket = candidates[0]
        buttons.append(action_button(codec, ticket, confirm, locale, arg=note.id, style="primary"))
        move = SUGGESTED_ACTION.get(suggested)
        work = frozenset({Role.ASSIGNEE})
        if move is not None and move in allowed_actions(after_confirming(ticket), work):
            label = say("diag.confirm_and", locale, action=action_label(move, locale))
            buttons.append(
                action_button(
                    codec, ticket, move, locale, arg=note.id, label=label, style="default"
                )
            )
    else:
        for ticket in candidates:
            label = f"{action_label(confirm, locale)} → {ticket.number}"
            buttons.append(
                action_button(
                    codec, ticket, confirm, locale, arg=note.id, label=label, style="primary"
                )
            )
    discard = NoteAction.DISCARD_DIAGNOSIS
    buttons.append(
        action_button(codec, candidates[0], discard, locale, arg=note.id, style="danger")
    )
    return buttons
