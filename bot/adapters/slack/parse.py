"""Verified Slack requests → neutral events (pure functions, no I/O).

Two kinds of request reach us: Events API callbacks (``event_callback`` with one ``event``) and
interactivity payloads (``block_actions``). Each goes through a ``{type: builder}`` table; a type
we do not handle gives no event and a debug log, never an error.

Dedupe keys (the inbox stores each ``(platform, event_id)`` once):

- a post (``message`` or ``app_mention``) is ``<channel>:<ts>`` — the post's own identity, not
  Slack's ``event_id``. A retry carries the same post, and so does the ``app_mention`` Slack
  sends *in addition to* the ``message`` event when the bot is mentioned in a channel it reads:
  both land on the same key, so one post makes one ticket whichever arrives first;
- a voice clip in a post is ``<channel>:<ts>:<file id>``;
- a button press is ``act:<trigger_id>`` (block_actions carry no ``event_id``; ``trigger_id`` is
  unique per interaction), falling back to ``act:<message_ts>:<action_ts>:<user>``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.signature import SignatureVerifier

from bot.errors import SignatureInvalid
from bot.events import Action, Address, ChatType, Inbound, Message, Sender, Voice

__all__ = [
    "PLATFORM",
    "BotIdentity",
    "chat_type_of",
    "parse_block_actions",
    "parse_event_callback",
    "verify_signature",
]

log = logging.getLogger(__name__)

PLATFORM = "slack"
#: Slack's replay window for signed requests (seconds).
MAX_SKEW_S = 60 * 5
#: Message subtypes that are a person's post. Everything else (bot_message, message_changed,
#: message_deleted, channel_join, …) is not for us.
_POST_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})
_MAX_ID = 300  # inbound_events.event_id


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who we are in the workspace (from ``auth.test``)."""

    user_id: str | None  # U… — what ``<@…>`` mentions of the bot contain
    bot_id: str | None = None  # B… — what our own posts carry as ``bot_id``
    team_id: str | None = None


def verify_signature(verifier: SignatureVerifier, headers: Mapping[str, str], body: bytes) -> None:
    """Slack's v0 HMAC over the raw body, within five minutes of the verifier's clock."""
    timestamp = headers.get("X-Slack-Request-Timestamp")
    signature = headers.get("X-Slack-Signature")
    if not timestamp or not signature:
        raise SignatureInvalid("missing X-Slack-Signature or X-Slack-Request-Timestamp")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise SignatureInvalid("malformed X-Slack-Request-Timestamp") from None
    if abs(verifier.clock.now() - sent_at) > MAX_SKEW_S:
        raise SignatureInvalid("request timestamp is outside the 5-minute window (replayed?)")
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        raise SignatureInvalid("Slack signature does not match")


def chat_type_of(channel: str, channel_type: str | None = None) -> ChatType:
    """``direct`` for a 1:1 chat with the app, else ``group``."""
    if channel_type is not None:
        return "direct" if channel_type == "im" else "group"
    return "direct" if channel.startswith("D") else "group"


# ---------------------------------------------------------------------------------- events


def parse_event_callback(body: Mapping[str, Any], bot: BotIdentity, now: datetime) -> list[Inbound]:
    event = body.get("event")
    if body.get("type") != "event_callback" or not isinstance(event, dict):
        log.debug("slack: ignored payload of type %r", body.get("type"))
        return []
    builder = _EVENT_BUILDERS.get(str(event.get("type")))
    if builder is None:
        log.debug("slack: ignored %r event", event.get("type"))
        return []
    return builder(event, bot, now)


def _post(event: dict[str, Any], bot: BotIdentity, now: datetime) -> list[Inbound]:
    """``message`` and ``app_mention``: one post becomes a Message and/or Voice events."""
    kind, subtype = event.get("type"), event.get("subtype")
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    if subtype not in _POST_SUBTYPES or event.get("hidden"):
        log.debug("slack: ignored %s with subtype %r", kind, subtype)
        return []
    if event.get("bot_id") or (bot.user_id is not None and user == bot.user_id):
        log.debug("slack: ignored a bot's own %s (bot_id=%r)", kind, event.get("bot_id"))
        return []
    if not (isinstance(user, str) and isinstance(channel, str) and isinstance(ts, str)):
        log.debug("slack: ignored %s without user/channel/ts", kind)
        return []
    profile = event.get("user_profile") or {}
    name = str(profile.get("display_name") or profile.get("real_name") or "")
    common: dict[str, Any] = {
        "chat": Address(PLATFORM, channel),
        "sender": Sender(PLATFORM, user, name),
        "chat_type": chat_type_of(channel, event.get("channel_type")),
        "received_at": now,
    }
    out: list[Inbound] = []
    for file in event.get("files") or ():
        if isinstance(file, dict) and _is_audio(file):
            voice = _voice(file, f"{channel}:{ts}", common)
            if voice is not None:
                out.append(voice)
    text, mentioned = _strip_bot_mention(str(event.get("text") or ""), bot.user_id)
    if text:
        out.insert(
            0,
            Message(
                event_id=f"{channel}:{ts}"[:_MAX_ID],
                text=text,
                mentions_bot=mentioned or kind == "app_mention",
                **common,
            ),
        )
    if not out:
        log.debug("slack: ignored a %s with no text and no audio", kind)
    return out


def _is_audio(file: Mapping[str, Any]) -> bool:
    mime = str(file.get("mimetype") or "")
    return (
        file.get("subtype") == "slack_audio"
        or mime.startswith("audio/")
        or file.get("media_display_type") == "audio"
    )


def _voice(file: Mapping[str, Any], post_id: str, common: dict[str, Any]) -> Voice | None:
    ref = file.get("url_private_download") or file.get("url_private")
    if not isinstance(ref, str) or not ref:
        log.debug("slack: ignored an audio file without a download URL")
        return None
    duration_ms = file.get("duration_ms")
    preview = ((file.get("transcription") or {}).get("preview") or {}).get("content")
    return Voice(
        event_id=f"{post_id}:{file.get('id', '')}"[:_MAX_ID],
        media_ref=ref,
        mime_hint=str(file.get("mimetype") or ""),
        duration_s=duration_ms / 1000 if isinstance(duration_ms, int | float) else None,
        platform_transcript=preview if isinstance(preview, str) and preview.strip() else None,
        **common,
    )


def _strip_bot_mention(text: str, bot_user_id: str | None) -> tuple[str, bool]:
    """Drop ``<@BOT>`` (and ``<@BOT|name>``); undo Slack's ``&amp; &lt; &gt;`` escaping."""
    mentioned = False
    if bot_user_id:
        pattern = re.compile(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>")
        text, count = pattern.subn(" ", text)
        mentioned = count > 0
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]{2,}", " ", text).strip(), mentioned


def _lost_access(event: dict[str, Any], bot: BotIdentity, now: datetime) -> list[Inbound]:
    log.warning("slack: %s — the app was removed or its token revoked", event.get("type"))
    return []


_EVENT_BUILDERS: dict[str, Callable[[dict[str, Any], BotIdentity, datetime], list[Inbound]]] = {
    "message": _post,
    "app_mention": _post,
    "app_uninstalled": _lost_access,
    "tokens_revoked": _lost_access,
}


# --------------------------------------------------------------------------- interactivity


def parse_block_actions(payload: Mapping[str, Any], now: datetime) -> list[Inbound]:
    """A press of one of our buttons → an ``Action`` carrying the button's ``value``."""
    user = payload.get("user") or {}
    container = payload.get("container") or {}
    channel = (payload.get("channel") or {}).get("id") or container.get("channel_id")
    user_id = user.get("id")
    if not isinstance(channel, str) or not isinstance(user_id, str):
        log.debug("slack: ignored block_actions outside a conversation (container %r)", container)
        return []
    message_ts = container.get("message_ts")
    name = str(user.get("name") or user.get("username") or "")
    reply_ctx = {
        "channel": channel,
        "user": user_id,
        "message_ts": message_ts,
        "response_url": payload.get("response_url"),
        "ephemeral": bool(container.get("is_ephemeral", False)),
    }
    out: list[Inbound] = []
    for index, action in enumerate(payload.get("actions") or ()):
        value = action.get("value") if isinstance(action, dict) else None
        if not isinstance(value, str) or not value or action.get("type") != "button":
            log.debug("slack: ignored an action element that is not one of our buttons")
            continue
        key = payload.get("trigger_id") or f"{message_ts}:{action.get('action_ts')}:{user_id}"
        suffix = f":{index}" if index else ""
        out.append(
            Action(
                event_id=f"act:{key}{suffix}"[:_MAX_ID],
                chat=Address(PLATFORM, channel),
                sender=Sender(PLATFORM, user_id, name),
                chat_type=chat_type_of(channel),
                received_at=now,
                token=value,
                card_message_id=message_ts if isinstance(message_ts, str) else None,
                reply_ctx=reply_ctx,
            )
        )
    return out
