"""Verified, decrypted WeCom callbacks → neutral events (pure functions, no I/O).

Two surfaces arrive here:

- the self-built app (自建应用): decrypted **XML**, members writing to the app 1:1, and events.
  ``read_xml`` refuses any DOCTYPE or ENTITY before parsing and parses with ``defusedxml``;
- the AI bot (智能机器人): decrypted **JSON**, group @-mentions and 1:1 chats, and events.

Each goes through a ``{MsgType: builder}`` table; a type we do not handle gives no event and a
debug log, never an error. Dedupe keys (the inbox stores each ``(platform, event_id)`` once):
an app message is its ``MsgId``; an app event is ``FromUserName:CreateTime`` (plus the card's
``TaskId`` for a button press); an AI-bot callback is its ``msgid``.

Senders are ``Sender("wecom", userid)`` on both surfaces: a member's userid is the same for the
app and the AI bot, so one person has one identity (``wecom:LiGong``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped]
from defusedxml import DefusedXmlException

from bot.events import Action, Address, ChatType, Inbound, Message, Sender, Voice

__all__ = [
    "AIBOT",
    "APP",
    "ROBOT",
    "XmlMalformed",
    "XmlRefused",
    "parse_aibot",
    "parse_app",
    "read_xml",
]

log = logging.getLogger(__name__)

APP = "wecom"  # the self-built app: members' DMs, template cards with buttons
ROBOT = "wecom-robot"  # group robot webhooks: send-only, chat id = the webhook key
AIBOT = "wecom-aibot"  # the AI bot: group @-mentions and 1:1, chat id = chatid or userid
_MAX_ID = 300  # inbound_events.event_id
_DTD = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_LEADING_MENTION = re.compile(r"^\s*@\S+\s*")


class XmlRefused(ValueError):
    """XML with a DOCTYPE or an entity declaration: refused before it is parsed."""


class XmlMalformed(ValueError):
    """XML that is not well-formed."""


def read_xml(text: str) -> dict[str, str]:
    """The child elements of the root as ``{tag: stripped text}`` (nested ones give ``""``)."""
    if _DTD.search(text):
        raise XmlRefused("XML with a DOCTYPE or ENTITY is refused")
    try:
        root: Element = SafeET.fromstring(
            text, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:  # pragma: no cover - the pre-check refuses these first
        raise XmlRefused(str(exc)) from None
    except ParseError as exc:
        raise XmlMalformed(f"malformed XML: {exc}") from None
    return {child.tag: (child.text or "").strip() for child in root}


# -------------------------------------------------------------------------- the self-built app


def parse_app(fields: Mapping[str, str], now: datetime) -> list[Inbound]:
    """A decrypted app callback (``read_xml`` output) → zero or one event."""
    kind = fields.get("MsgType", "")
    builder = _APP_BUILDERS.get(kind)
    user = fields.get("FromUserName", "")
    if builder is None or not user:
        log.debug("wecom: ignored an app callback of type %r", kind)
        return []
    event = builder(fields, _common(Address(APP, user), user, "direct", now))
    return [event] if event is not None else []


def _common(chat: Address, user: str, chat_type: ChatType, now: datetime) -> dict[str, Any]:
    return {
        "chat": chat,
        "sender": Sender(APP, user),
        "chat_type": chat_type,
        "received_at": now,
    }


def _app_text(fields: Mapping[str, str], common: dict[str, Any]) -> Inbound | None:
    text, msg_id = fields.get("Content", ""), fields.get("MsgId", "")
    if not text or not msg_id:
        log.debug("wecom: ignored a text message without Content or MsgId")
        return None
    return Message(event_id=msg_id[:_MAX_ID], text=text, **common)


def _app_voice(fields: Mapping[str, str], common: dict[str, Any]) -> Inbound | None:
    media, msg_id = fields.get("MediaId", ""), fields.get("MsgId", "")
    if not media or not msg_id:
        log.debug("wecom: ignored a voice message without MediaId or MsgId")
        return None
    fmt = fields.get("Format", "amr").lower() or "amr"
    return Voice(event_id=msg_id[:_MAX_ID], media_ref=media, mime_hint=f"audio/{fmt}", **common)


def _app_event(fields: Mapping[str, str], common: dict[str, Any]) -> Inbound | None:
    event = fields.get("Event", "")
    if event != "template_card_event":
        log.debug("wecom: ignored app event %r", event)
        return None
    key, task = fields.get("EventKey", ""), fields.get("TaskId", "")
    if not key:
        log.debug("wecom: ignored a template_card_event without EventKey")
        return None
    event_id = f"{fields.get('FromUserName')}:{fields.get('CreateTime', '')}:{task}"
    return Action(
        event_id=event_id[:_MAX_ID],
        token=key,
        card_message_id=task or None,
        reply_ctx={
            "task_id": task,
            "response_code": fields.get("ResponseCode", ""),
            "card_type": fields.get("CardType", ""),
        },
        **common,
    )


_AppBuilder = Callable[[Mapping[str, str], dict[str, Any]], Inbound | None]
_APP_BUILDERS: dict[str, _AppBuilder] = {
    "text": _app_text,
    "voice": _app_voice,
    "event": _app_event,
}


# ---------------------------------------------------------------------------------- AI bot


def parse_aibot(body: Mapping[str, Any], now: datetime) -> list[Inbound]:
    """A decrypted AI-bot callback (JSON object) → zero or one event."""
    kind = str(body.get("msgtype") or "")
    builder = _AIBOT_BUILDERS.get(kind)
    user = (body.get("from") or {}).get("userid")
    msg_id = body.get("msgid")
    if builder is None or not isinstance(user, str) or not user or not isinstance(msg_id, str):
        log.debug("wecom: ignored an AI-bot callback of type %r", kind)
        return []
    group = body.get("chattype") == "group"
    chat_id = body.get("chatid") if group else user
    if not isinstance(chat_id, str) or not chat_id:
        log.debug("wecom: ignored an AI-bot group callback without chatid")
        return []
    common = _common(Address(AIBOT, chat_id), user, "group" if group else "direct", now)
    common["event_id"] = msg_id[:_MAX_ID]
    event = builder(body, common)
    return [event] if event is not None else []


def _said(text: str, common: dict[str, Any]) -> Inbound | None:
    group = common["chat_type"] == "group"
    if group:  # the bot hears a group only when @-mentioned; the mention leads the text
        text = _LEADING_MENTION.sub("", text, count=1)
    text = text.strip()
    if not text:
        log.debug("wecom: ignored an AI-bot message with no text")
        return None
    return Message(text=text, mentions_bot=group, **common)


def _aibot_text(body: Mapping[str, Any], common: dict[str, Any]) -> Inbound | None:
    return _said(str((body.get("text") or {}).get("content") or ""), common)


def _aibot_voice(body: Mapping[str, Any], common: dict[str, Any]) -> Inbound | None:
    """AI-bot voice is WeCom's transcript only (no audio): it is read as text."""
    return _said(str((body.get("voice") or {}).get("content") or ""), common)


def _aibot_mixed(body: Mapping[str, Any], common: dict[str, Any]) -> Inbound | None:
    items = (body.get("mixed") or {}).get("msg_item") or ()
    parts = [
        str((item.get("text") or {}).get("content") or "")
        for item in items
        if isinstance(item, dict) and item.get("msgtype") == "text"
    ]
    return _said(" ".join(p for p in parts if p), common)


def _aibot_event(body: Mapping[str, Any], common: dict[str, Any]) -> Inbound | None:
    event = body.get("event") or {}
    kind = event.get("eventtype")
    click = event.get("template_card_event") or {}
    key = click.get("event_key") if isinstance(click, dict) else None
    if kind != "template_card_event" or not isinstance(key, str) or not key:
        log.debug("wecom: ignored AI-bot event %r", kind)
        return None
    task = str(click.get("task_id") or "")
    return Action(
        token=key,
        card_message_id=task or None,
        reply_ctx={"task_id": task, "card_type": str(click.get("card_type") or "")},
        **common,
    )


_AibotBuilder = Callable[[Mapping[str, Any], dict[str, Any]], Inbound | None]
_AIBOT_BUILDERS: dict[str, _AibotBuilder] = {
    "text": _aibot_text,
    "voice": _aibot_voice,
    "mixed": _aibot_mixed,
    "event": _aibot_event,
}
