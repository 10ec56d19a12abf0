"""DingTalk callbacks → neutral events, and the checks that come before (pure, no I/O).

Two kinds of callback reach us, over HTTP or as Stream frames with the same JSON inside:

- **robot messages** (topic ``/v1.0/im/bot/messages/get``, ``POST /webhooks/dingtalk``): one
  builder per ``msgtype`` in ``_BUILDERS`` (text, richText, audio, picture); any other type
  (file, video…) is no event and a debug line. The event id is ``msgId``, so a redelivery is a
  duplicate the inbox drops.
- **card clicks** (topic ``/v1.0/card/instances/callback``, ``POST /webhooks/dingtalk/card``):
  ``{type: actionCallback, outTrackId, userId, content: "{cardPrivateData: {actionIds,
  params}}"}``. The button's token rides in ``params.token`` (the template binds it to the
  button's ``btn<i>_token`` variable). A click names no chat, so our ``outTrackId`` carries it.

Bad input: ``json_object`` refuses a body that is not a JSON object (too deep, not UTF-8, not
JSON) and the builders a field of the wrong type, as ``BadRequest``: 400 over HTTP, a 400 ack
over Stream (an ack: DingTalk does not deliver it again; redelivery would not help). A
message or click that is well-formed but not for us (no sender, a card of someone else's) is
no event, as before.

Chat ids: a group is its ``openConversationId`` (``cid…``, the robot message's
``conversationId``), a 1:1 chat is the person's ``staffId`` — the same id a person's
``dingtalk:<staffId>`` identity names, so ``Address("dingtalk", staffId)`` is their direct chat.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.adapters.body import DEFAULT_JSON_DEPTH, get, loads_object
from bot.adapters.dingtalk.render import CONFIRM, DISARM
from bot.errors import BadRequest, SignatureInvalid
from bot.events import Action, Address, ChatType, Image, Inbound, Message, Sender, Voice

__all__ = [
    "PLATFORM",
    "CardPress",
    "ConfirmStep",
    "Incoming",
    "card_sign",
    "chat_of_track_id",
    "click_event_id",
    "is_group",
    "json_object",
    "parse_card_callback",
    "parse_robot_message",
    "robot_sign",
    "track_id",
    "verify_card_signature",
    "verify_robot_signature",
]

log = logging.getLogger(__name__)

PLATFORM = "dingtalk"
#: DingTalk refuses callbacks whose timestamp is more than an hour off; so do we.
WINDOW_MS = 3_600_000
_TRACK_PREFIX = "gd"


# ------------------------------------------------------------------------------ signatures


def robot_sign(secret: str, timestamp: str) -> str:
    """``base64(HMAC-SHA256(secret, timestamp + "\\n" + secret))``: robot callbacks' ``sign``."""
    mac = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def card_sign(api_secret: str, timestamp: str) -> str:
    """``base64(HMAC-SHA256(apiSecret, timestamp))``: card callbacks' ``x-ddpaas-signature``."""
    mac = hmac.new(api_secret.encode(), timestamp.encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def _check(
    timestamp: str | None, given: str | None, expected: Callable[[str], str], now: float
) -> None:
    if not timestamp or not given:
        raise SignatureInvalid("missing signature headers")
    if not timestamp.isdigit():
        raise SignatureInvalid("the timestamp is not a number")
    millis = int(timestamp) if len(timestamp) >= 12 else int(timestamp) * 1000
    if abs(now * 1000 - millis) > WINDOW_MS:
        raise SignatureInvalid("the timestamp is outside the 1-hour window")
    if not hmac.compare_digest(expected(timestamp).encode(), given.encode()):
        raise SignatureInvalid("the signature does not match")


def verify_robot_signature(headers: Mapping[str, str], secret: str, now: float) -> None:
    """Headers ``timestamp`` (ms) and ``sign``; ``now`` in seconds since the epoch. Note that
    DingTalk signs only the timestamp, not the body."""
    _check(headers.get("timestamp"), headers.get("sign"), lambda ts: robot_sign(secret, ts), now)


def verify_card_signature(
    headers: Mapping[str, str], api_secret: str, app_secret: str, now: float
) -> None:
    """The documented card scheme (``x-ddpaas-signature-timestamp`` / ``x-ddpaas-signature``,
    keyed by the registered apiSecret), or else the robot scheme keyed by the app secret."""
    if "x-ddpaas-signature" in headers or "x-ddpaas-signature-timestamp" in headers:
        _check(
            headers.get("x-ddpaas-signature-timestamp"),
            headers.get("x-ddpaas-signature"),
            lambda ts: card_sign(api_secret, ts),
            now,
        )
    else:
        verify_robot_signature(headers, app_secret, now)


def click_event_id(raw: bytes, headers: Mapping[str, str]) -> str:
    """HTTP card clicks carry no id of their own: a digest of the body and the signature
    timestamp, so a retry of one delivery is a duplicate and a second press later is not."""
    stamp = headers.get("x-ddpaas-signature-timestamp") or headers.get("timestamp") or ""
    return "card:" + hashlib.sha256(raw + b"|" + stamp.encode()).hexdigest()[:32]


def json_object(raw: bytes | str, depth: int = DEFAULT_JSON_DEPTH) -> dict[str, Any]:
    """A verified body that must be a JSON object nested at most ``depth`` deep (else
    ``BadRequest`` → 400)."""
    return loads_object(raw, depth=depth)


# ---------------------------------------------------------------------------------- chat ids


def is_group(chat_id: str) -> bool:
    """Group chats are ``openConversationId``s, which always start with ``cid``."""
    return chat_id.startswith("cid")


def track_id(chat_id: str, key: str) -> str:
    """Our ``outTrackId`` for a card sent to ``chat_id``: the chat (callbacks name none) and a
    digest of the outbox key, so a retried send reuses the id instead of a second card."""
    chat = base64.urlsafe_b64encode(chat_id.encode()).decode().rstrip("=")
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{_TRACK_PREFIX}.{chat}.{digest}"


def chat_of_track_id(out_track_id: str) -> str | None:
    prefix, _, rest = out_track_id.partition(".")
    chat, _, digest = rest.rpartition(".")
    if prefix != _TRACK_PREFIX or not chat or not digest:
        return None
    try:
        return base64.urlsafe_b64decode(chat + "=" * (-len(chat) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


# ---------------------------------------------------------------------------- robot messages


@dataclass(frozen=True, slots=True)
class Incoming:
    """A robot message: its event (if it is one we handle) and where replies may go."""

    event: Inbound | None
    session_webhook: str | None = None
    session_expires_ms: int = 0


_Builder = Callable[[dict[str, Any], dict[str, Any]], Inbound | None]


def parse_robot_message(body: Mapping[str, Any], now: datetime) -> Incoming:
    """A robot message; ``BadRequest`` when a field we read has the wrong type."""
    chat_type = {"1": "direct", "2": "group"}.get(_text_of(body, "conversationType") or "")
    msg_id = get(body, "msgId", str, "$")
    user_id = get(body, "senderStaffId", str, "$") or get(body, "senderId", str, "$")
    chat_id = get(body, "conversationId", str, "$") if chat_type == "group" else user_id
    if not (msg_id and user_id and chat_id and chat_type):
        log.debug("dingtalk: a robot message without msgId, sender or chat; ignored")
        return Incoming(None)
    hook = get(body, "sessionWebhook", str, "$")
    expires = get(body, "sessionWebhookExpiredTime", int, "$")
    incoming = Incoming(None, hook or None, expires or 0)
    msgtype = get(body, "msgtype", str, "$") or ""
    build = _BUILDERS.get(msgtype)
    if build is None:
        log.debug("dingtalk: message %s of type %r ignored", msg_id, msgtype)
        return incoming
    get(body, "isInAtList", bool, "$")
    common: dict[str, Any] = {
        "event_id": msg_id,
        "chat": Address(PLATFORM, chat_id),
        "sender": Sender(PLATFORM, user_id, get(body, "senderNick", str, "$") or ""),
        "chat_type": chat_type,
        "received_at": now,
    }
    return Incoming(
        build(dict(body), common), incoming.session_webhook, incoming.session_expires_ms
    )


def _text_of(body: Mapping[str, Any], key: str) -> str | None:
    """A field DingTalk sends as a string, or as a number in some deliveries."""
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise BadRequest(f"$.{key} must be a string")


def _content(body: dict[str, Any]) -> dict[str, Any]:
    content = body.get("content")
    if isinstance(content, str):  # some deliveries carry it as a JSON string
        content = loads_object(content, what="$.content")
    if content is not None and not isinstance(content, dict):
        raise BadRequest("$.content must be an object or a JSON string")
    return content or {}


def _text(body: dict[str, Any], common: dict[str, Any]) -> Inbound | None:
    text = get(body, "text", dict, "$") or {}
    content = get(text, "content", str, "$.text") or ""
    return Message(**common, text=content.strip(), mentions_bot=bool(body.get("isInAtList")))


def _rich_text(body: dict[str, Any], common: dict[str, Any]) -> Inbound | None:
    parts = get(_content(body), "richText", list, "$.content") or []
    for i, part in enumerate(parts):
        if not isinstance(part, dict):
            raise BadRequest(f"$.content.richText[{i}] must be an object")
        get(part, "text", str, f"$.content.richText[{i}]")
    text = "".join(p["text"] for p in parts if p.get("text"))
    if not text.strip():
        log.debug(
            "dingtalk: rich text %s without text (pictures only); ignored", common["event_id"]
        )
        return None
    return Message(**common, text=text.strip(), mentions_bot=bool(body.get("isInAtList")))


def _audio(body: dict[str, Any], common: dict[str, Any]) -> Inbound | None:
    content = _content(body)
    code = get(content, "downloadCode", str, "$.content")
    if not code:
        log.debug("dingtalk: audio %s without a downloadCode; ignored", common["event_id"])
        return None
    duration = get(content, "duration", float, "$.content")  # milliseconds
    recognition = get(content, "recognition", str, "$.content")
    return Voice(
        **common,
        media_ref=code,
        mime_hint="",  # DingTalk does not say; the voice flow sniffs the bytes
        duration_s=duration / 1000 if duration is not None else None,
        platform_transcript=recognition or None,
    )


def _picture(body: dict[str, Any], common: dict[str, Any]) -> Inbound | None:
    """A picture (staff: evidence), fetched by its ``downloadCode`` like a voice note."""
    code = get(_content(body), "downloadCode", str, "$.content")
    if not code:
        log.debug("dingtalk: picture %s without a downloadCode; ignored", common["event_id"])
        return None
    return Image(**common, media_ref=code, mime_hint="")  # (the bytes say what it is)


_BUILDERS: dict[str, _Builder] = {
    "text": _text,
    "richText": _rich_text,
    "audio": _audio,
    "picture": _picture,
}


# ------------------------------------------------------------------------------- card clicks


@dataclass(frozen=True, slots=True)
class CardPress:
    """A click that acts: the ``Action`` to store."""

    action: Action


@dataclass(frozen=True, slots=True)
class ConfirmStep:
    """The first press of a button that needs confirming (``arm``), or its ✖ (disarm): only the
    presser's private confirm row changes; nothing is stored."""

    user_id: str
    token: str  # the bare token, for the confirm row (empty when disarming)
    label: str = ""


def _press_of(content: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(action id, token, label) from ``cardPrivateData``."""
    at = "$.content.cardPrivateData"
    private = get(content, "cardPrivateData", dict, "$.content")
    if private is None:
        return None
    ids = get(private, "actionIds", list, at) or []
    params = get(private, "params", dict, at) or {}
    action_id = str(ids[0]) if ids and isinstance(ids[0], str | int) else ""
    token = get(params, "token", str, f"{at}.params")
    if not token:  # a template passing the variable by its name
        token = get(params, f"{action_id}_token", str, f"{at}.params")
    label = get(params, "label", str, f"{at}.params") or ""
    if token is None:
        return (action_id, "", "") if action_id == "disarm" else None
    return action_id, token, label


def parse_card_callback(
    body: Mapping[str, Any], event_id: str, now: datetime
) -> CardPress | ConfirmStep | None:
    """A card click; ``BadRequest`` when a field we read has the wrong type."""
    raw = body.get("content") or body.get("value")
    content = loads_object(raw, what="$.content") if isinstance(raw, str) else raw
    if content is not None and not isinstance(content, dict):
        raise BadRequest("$.content must be an object or a JSON string")
    user_id, out_track_id = get(body, "userId", str, "$"), get(body, "outTrackId", str, "$")
    press = _press_of(content) if content else None
    if press is None or not user_id or not out_track_id:
        log.debug("dingtalk: card callback %s carries no button token; ignored", event_id)
        return None
    action_id, token, label = press
    if action_id == "disarm" or token == DISARM:
        return ConfirmStep(user_id, "")
    if token.startswith(CONFIRM):
        return ConfirmStep(user_id, token.removeprefix(CONFIRM), label)
    chat_id = chat_of_track_id(out_track_id)
    if chat_id is None:
        log.debug("dingtalk: card %s is not one of ours; click ignored", out_track_id)
        return None
    chat_type: ChatType = "group" if is_group(chat_id) else "direct"
    return CardPress(
        Action(
            event_id=event_id,
            chat=Address(PLATFORM, chat_id),
            sender=Sender(PLATFORM, user_id),
            chat_type=chat_type,
            received_at=now,
            token=token,
            card_message_id=out_track_id,
            reply_ctx={"out_track_id": out_track_id, "user_id": user_id},
        )
    )
