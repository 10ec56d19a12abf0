"""Voice notes, first version: the audio reaches the flow; it is acknowledged and recorded.

The engine downloads the audio through the platform's adapter *before* the event's transaction
(network I/O never runs inside one) and hands the bytes here. This version records the note on
the ticket it belongs to and tells the sender; transcription and the structured diagnosis card
(``bot/nlp/asr.py``, ``bot/nlp/diagnosis.py``) replace the acknowledgement in the next release.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.events import Text, Voice
from bot.flows import FlowContext
from bot.texts import say
from bot.tickets import OPEN_STATES
from storage import repo
from storage.models import Ticket

__all__ = ["Audio", "handle_voice"]


@dataclass(frozen=True, slots=True)
class Audio:
    """What the engine could fetch for a voice note."""

    data: bytes | None
    problem: str | None = None  # "too_large" | "unavailable"


async def _ticket_for(ctx: FlowContext, event: Voice) -> Ticket | None:
    assert ctx.person is not None
    open_states = [s.value for s in OPEN_STATES]
    if ctx.person.role == "customer":
        found = await repo.list_tickets(
            ctx.session,
            states=open_states,
            reporter_id=ctx.person.id,
            origin_chat=event.chat.ref,
            limit=1,
        )
    else:
        found = await repo.list_tickets(
            ctx.session, states=open_states, assignee_id=ctx.person.id, limit=1
        )
    return found[0] if found else None


async def handle_voice(ctx: FlowContext, event: Voice, audio: Audio) -> None:
    assert ctx.person is not None
    locale = ctx.locale
    if audio.problem == "too_large":
        await ctx.reply(Text(say("voice.too_large", locale)))
        return
    if audio.data is None and not event.platform_transcript:
        await ctx.reply(Text(say("voice.unavailable", locale)))
        return
    size_kb = max(1, round(len(audio.data) / 1024)) if audio.data else 0
    ticket = await _ticket_for(ctx, event)
    if ticket is not None:
        await repo.append_event(
            ctx.session,
            ticket.id,
            actor=ctx.person.name,
            actor_id=ctx.person.id,
            kind="voice_note",
            via="voice",
            data={
                "bytes": len(audio.data) if audio.data else 0,
                "duration_s": event.duration_s,
                "mime_hint": event.mime_hint,
                "platform_transcript": event.platform_transcript,
            },
        )
    parts = [say("voice.received", locale, size=size_kb)]
    if ticket is not None:
        parts.append(say("voice.recorded", locale, number=ticket.number))
    if event.platform_transcript:
        parts.append(say("voice.platform_transcript", locale, text=event.platform_transcript))
    parts.append(say("voice.later", locale))
    await ctx.reply(Text("\n".join(parts)))
