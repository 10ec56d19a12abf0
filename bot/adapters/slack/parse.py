"""Verified Slack requests → neutral events (pure functions, no I/O).

Two kinds of request reach us: Events API callbacks (``event_callback`` with one ``event``) and
interactivity payloads (``block_actions``). Each goes through a ``{type: builder}`` table; a type
we do not handle gives no event and a debug log, never an error.

Dedupe keys (the inbox stores each ``(platform, event_id)`` once):

- a post (``message`` or ``app_mention``) is ``<channel>:<ts>`` — the post's own identity, not
  Slack's ``event_id``. A retry carries the same post, and so does the ``app_mention`` Slack
  sends *in addition to* the ``message`` event when the bot is mentioned in a channel it reads:
  both land on the same key, so one post makes one ticket whichever arrives first;
- a voice clip or a picture in a post is ``<channel>:<ts>:<file id>`` (a picture keeps the
  post's text as its caption: it may name the ticket it is evidence for);
- a button press is ``act:<trigger_id>`` (block_actions carry no ``event_id``; ``trigger_id`` is
  unique per interaction), falling back to ``act:<message_ts>:<action_ts>:<user>``.

Malformed input is ``BadRequest`` (400, nothing stored). ``read_body`` reads a verified body as
Bolt will (UTF-8, JSON or ``payload=`` form, within the JSON depth limit) and checks every field
that Bolt's routing or our builders read against the type Slack documents for it (``_SHAPE``):
Bolt indexes into payloads without checking, so a wrong type would otherwise fail inside it.
The builders read each field with ``get``/``need`` and refuse a wrong type by its name.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from slack_sdk.signature import SignatureVerifier

from bot.adapters.body import (
    DEFAULT_JSON_DEPTH,
    Shape,
    check_shape,
    get,
    loads_object,
    need,
    text_of,
)
from bot.errors import BadRequest, SignatureInvalid
from bot.events import Action, Address, ChatType, Image, Inbound, Message, Sender, Voice

__all__ = [
    "PLATFORM",
    "BotIdentity",
    "chat_type_of",
    "parse_block_actions",
    "parse_event_callback",
    "read_body",
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
    """Slack's v0 HMAC over the raw body, within five minutes of the verifier's clock.

    Computed here over the bytes as they came: ``SignatureVerifier`` decodes the body as
    UTF-8 first, which fails (an exception, not a refusal) on bytes that are not — so a forged
    request of such bytes would not be a 401, and a signed one not a 400 after it."""
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
    base = b"v0:" + timestamp.encode() + b":" + body
    mac = hmac.new(verifier.signing_secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(f"v0={mac}".encode(), signature.encode("utf-8", "replace")):
        raise SignatureInvalid("Slack signature does not match")


# ------------------------------------------------------------------------- the envelope

_S, _N, _B, _O, _L, _NUM = (str,), (type(None),), (bool,), (dict,), (list,), (int, float)
_ID: Shape = {"id": (_S + _N, None), "team_id": (_S + _N, None), "enterprise_id": (_S + _N, None)}
_USER: Shape = {**_ID, "name": (_S + _N, None), "username": (_S + _N, None)}
_FILE: Shape = {
    "id": (_S, None),
    "mimetype": (_S + _N, None),
    "subtype": (_S + _N, None),
    "media_display_type": (_S + _N, None),
    "url_private": (_S + _N, None),
    "url_private_download": (_S + _N, None),
    "duration_ms": (_NUM + _N, None),
    "transcription": (_O + _N, {"preview": (_O + _N, {"content": (_S + _N, None)})}),
}
_ACTION: Shape = {
    "type": (_S, None),
    "action_id": (_S, None),
    "block_id": (_S + _N, None),
    "value": (_S + _N, None),
    "action_ts": (_S + _N, None),
}
#: The fields of a request (and of its ``event``, ``message``, ``authorizations``…: one shape
#: for every level, as Bolt reads them with the same functions at every level) that Bolt or our
#: builders read, with the types Slack sends. Null is refused only where Bolt indexes into it.
_SHAPE: dict[str, tuple[tuple[type, ...], Shape | None]] = {
    "type": (_S, None),
    "subtype": (_S + _N, None),
    "token": (_S + _N, None),
    "challenge": (_S, None),
    "team_id": (_S + _N, None),
    "enterprise_id": (_S + _N, None),
    "user_id": (_S + _N, None),
    "channel_id": (_S + _N, None),
    "event_id": (_S, None),
    "trigger_id": (_S + _N, None),
    "response_url": (_S + _N, None),
    "response_urls": (_L, {"response_url": (_S + _N, None)}),
    "is_enterprise_install": (_B + _S + _N, None),
    "is_ext_shared_channel": (_B + _N, None),
    "is_bot": (_B + _N, None),
    "enterprise": (_S + _O + _N, _ID),
    "team": (_S + _O + _N, _ID),
    "user": (_S + _O + _N, _USER),
    "channel": (_S + _O + _N, {"id": (_S + _N, None), "name": (_S + _N, None)}),
    "user_team": (_S + _N, None),
    "channel_type": (_S + _N, None),
    "ts": (_S + _N, None),
    "thread_ts": (_S + _N, None),
    "text": (_S + _N, None),
    "bot_id": (_S + _N, None),
    "hidden": (_B + _N, None),
    "tab": (_S + _N, None),
    "callback_id": (_S + _N, None),
    "action_id": (_S + _N, None),
    "command": (_S + _N, None),
    "function_execution_id": (_S + _N, None),
    "bot_access_token": (_S + _N, None),
    "files": (_L + _N, _FILE),
    "user_profile": (_O + _N, {"display_name": (_S + _N, None), "real_name": (_S + _N, None)}),
    "actions": (_L, _ACTION),
    "container": (
        _O + _N,
        {
            "message_ts": (_S + _N, None),
            "channel_id": (_S + _N, None),
            "is_ephemeral": (_B + _N, None),
        },
    ),
    "view": (_O + _N, {"type": (_S + _N, None), "callback_id": (_S + _N, None), **_ID}),
    "function_data": (_O + _N, {"execution_id": (_S + _N, None), "inputs": (_O + _N, None)}),
    "workflow_step": (_O, None),
}
for _nested in ("event", "message", "previous_message", "item", "assistant_thread"):
    _SHAPE[_nested] = (_O if _nested == "event" else _O + _N, _SHAPE)
_SHAPE["authorizations"] = (_L + _N, _SHAPE)


def read_body(raw: bytes, content_type: str, *, depth: int = DEFAULT_JSON_DEPTH) -> dict[str, Any]:
    """A verified body as Bolt will read it (JSON, a ``payload=`` form, or a plain form), with
    every field Bolt or our builders read of the documented type; else ``BadRequest``."""
    text = text_of(raw, "Slack request")
    if not text:
        return {}
    if content_type == "application/json" or text.startswith("{"):
        body = loads_object(text, depth=depth, what="Slack request")
    elif "payload" in text:  # interactivity: payload=<url-encoded JSON>
        payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
        body = {} if payload is None else loads_object(payload, depth=depth, what="Slack payload")
    else:  # ssl_check, slash commands: a plain form, strings only
        return dict(parse_qsl(text, keep_blank_values=True))
    check_shape(body, _SHAPE, "$")
    if body.get("type") == "event_callback":
        need(body, "event", dict, "$")
        need(body["event"], "type", str, "$.event")
    if body.get("type") == "block_actions":  # Bolt matches the first action's action_id
        if not body.get("actions"):
            raise BadRequest("$.actions must be a non-empty array")
        need(body["actions"][0], "action_id", str, "$.actions[0]")
    if body.get("type") in ("view_submission", "view_closed"):
        need(body, "view", dict, "$")
    return body


def chat_type_of(channel: str, channel_type: str | None = None) -> ChatType:
    """``direct`` for a 1:1 chat with the app, else ``group``."""
    if channel_type is not None:
        return "direct" if channel_type == "im" else "group"
    return "direct" if channel.startswith("D") else "group"


# ---------------------------------------------------------------------------------- events


def parse_event_callback(body: Mapping[str, Any], bot: BotIdentity, now: datetime) -> list[Inbound]:
    """An Events API callback → events; ``BadRequest`` when a field we read has a wrong type."""
    if body.get("type") != "event_callback":
        log.debug("slack: ignored payload of type %r", body.get("type"))
        return []
    event = need(body, "event", dict, "$")
    kind = need(event, "type", str, "$.event")
    builder = _EVENT_BUILDERS.get(kind)
    if builder is None:
        log.debug("slack: ignored %r event", kind)
        return []
    return builder(event, bot, now)


def _post(event: dict[str, Any], bot: BotIdentity, now: datetime) -> list[Inbound]:
    """``message`` and ``app_mention``: one post becomes a Message and/or Voice and Image
    events."""
    at = "$.event"
    kind, subtype = event["type"], get(event, "subtype", str, at)
    if subtype not in _POST_SUBTYPES or get(event, "hidden", bool, at):
        log.debug("slack: ignored %s with subtype %r", kind, subtype)
        return []
    bot_id, user = get(event, "bot_id", str, at), get(event, "user", str, at)
    if bot_id or (bot.user_id is not None and user == bot.user_id):
        log.debug("slack: ignored a bot's own %s (bot_id=%r)", kind, bot_id)
        return []
    user = need(event, "user", str, at)
    channel, ts = need(event, "channel", str, at), need(event, "ts", str, at)
    profile = get(event, "user_profile", dict, at) or {}
    where = f"{at}.user_profile"
    name = get(profile, "display_name", str, where) or get(profile, "real_name", str, where)
    common: dict[str, Any] = {
        "chat": Address(PLATFORM, channel),
        "sender": Sender(PLATFORM, user, name or ""),
        "chat_type": chat_type_of(channel, get(event, "channel_type", str, at)),
        "received_at": now,
    }
    out: list[Inbound] = []
    text, mentioned = _strip_bot_mention(get(event, "text", str, at) or "", bot.user_id)
    for i, file in enumerate(get(event, "files", list, at) or ()):
        if not isinstance(file, dict):
            raise BadRequest(f"{at}.files[{i}] must be an object")
        where = f"{at}.files[{i}]"
        found: Inbound | None = None
        if _is_audio(file, where):
            found = _voice(file, f"{channel}:{ts}", common, where)
        elif (get(file, "mimetype", str, where) or "").startswith("image/"):
            found = _image(file, f"{channel}:{ts}", common, where, text)
        if found is not None:
            out.append(found)
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
        log.debug("slack: ignored a %s with no text, audio or picture", kind)
    return out


def _is_audio(file: Mapping[str, Any], at: str) -> bool:
    mime = get(file, "mimetype", str, at) or ""
    return (
        get(file, "subtype", str, at) == "slack_audio"
        or mime.startswith("audio/")
        or get(file, "media_display_type", str, at) == "audio"
    )


def _voice(file: Mapping[str, Any], post_id: str, common: dict[str, Any], at: str) -> Voice | None:
    ref = get(file, "url_private_download", str, at) or get(file, "url_private", str, at)
    if not ref:
        log.debug("slack: ignored an audio file without a download URL")
        return None
    duration_ms = get(file, "duration_ms", float, at)
    transcription = get(file, "transcription", dict, at) or {}
    preview = get(transcription, "preview", dict, f"{at}.transcription") or {}
    content = get(preview, "content", str, f"{at}.transcription.preview")
    return Voice(
        event_id=f"{post_id}:{get(file, 'id', str, at) or ''}"[:_MAX_ID],
        media_ref=ref,
        mime_hint=get(file, "mimetype", str, at) or "",
        duration_s=duration_ms / 1000 if duration_ms is not None else None,
        platform_transcript=content if content and content.strip() else None,
        **common,
    )


def _image(
    file: Mapping[str, Any], post_id: str, common: dict[str, Any], at: str, caption: str
) -> Image | None:
    """A picture (staff: evidence), downloaded with the bot's token like an audio clip."""
    ref = get(file, "url_private_download", str, at) or get(file, "url_private", str, at)
    if not ref:
        log.debug("slack: ignored an image file without a download URL")
        return None
    return Image(
        event_id=f"{post_id}:{get(file, 'id', str, at) or ''}"[:_MAX_ID],
        media_ref=ref,
        mime_hint=get(file, "mimetype", str, at) or "",
        caption=caption,
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
    """A press of one of our buttons → an ``Action`` carrying the button's ``value``;
    ``BadRequest`` when a field we read has a wrong type."""
    user = get(payload, "user", dict, "$") or {}
    container = get(payload, "container", dict, "$") or {}
    channel_obj = get(payload, "channel", dict, "$") or {}
    channel = get(channel_obj, "id", str, "$.channel") or get(
        container, "channel_id", str, "$.container"
    )
    user_id = get(user, "id", str, "$.user")
    if channel is None or user_id is None:
        log.debug("slack: ignored block_actions outside a conversation (container %r)", container)
        return []
    message_ts = get(container, "message_ts", str, "$.container")
    name = get(user, "name", str, "$.user") or get(user, "username", str, "$.user") or ""
    reply_ctx = {
        "channel": channel,
        "user": user_id,
        "message_ts": message_ts,
        "response_url": get(payload, "response_url", str, "$"),
        "ephemeral": bool(get(container, "is_ephemeral", bool, "$.container")),
    }
    trigger_id = get(payload, "trigger_id", str, "$")
    out: list[Inbound] = []
    for index, action in enumerate(get(payload, "actions", list, "$") or ()):
        at = f"$.actions[{index}]"
        if not isinstance(action, dict):
            raise BadRequest(f"{at} must be an object")
        value, kind = get(action, "value", str, at), get(action, "type", str, at)
        if not value or kind != "button":
            log.debug("slack: ignored an action element that is not one of our buttons")
            continue
        key = trigger_id or f"{message_ts}:{get(action, 'action_ts', str, at)}:{user_id}"
        suffix = f":{index}" if index else ""
        out.append(
            Action(
                event_id=f"act:{key}{suffix}"[:_MAX_ID],
                chat=Address(PLATFORM, channel),
                sender=Sender(PLATFORM, user_id, name),
                chat_type=chat_type_of(channel),
                received_at=now,
                token=value,
                card_message_id=message_ts,
                reply_ctx=reply_ctx,
            )
        )
    return out
