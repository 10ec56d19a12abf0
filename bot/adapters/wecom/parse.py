"""Verified, decrypted WeCom callbacks → neutral events (pure functions, no I/O).

Two surfaces arrive here:

- the self-built app (自建应用): decrypted **XML**, members writing to the app 1:1, and events.
  ``read_xml`` refuses any DOCTYPE or ENTITY before parsing and parses with ``defusedxml``;
- the AI bot (智能机器人): decrypted **JSON**, group @-mentions and 1:1 chats, and events.

Each goes through a ``{MsgType: builder}`` table; a type we do not handle gives no event and a
debug log, never an error. A callback of a type we handle whose fields are missing or of the
wrong type is ``BadRequest`` (the adapters acknowledge it: see ``callback.py``).

Dedupe keys (the inbox stores each ``(platform, event_id)`` once): an app message is its
``MsgId``; an app event is ``FromUserName:CreateTime`` (plus the card's ``TaskId`` for a button
press); an AI-bot callback is its ``msgid``.

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

from bot.adapters.body import get, need
from bot.errors import BadRequest
from bot.events import Action, Address, ChatType, Image, Inbound, Message, Sender, Voice

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
    except UnicodeError:  # a lone surrogate (never from a decrypted body: that is UTF-8)
        raise XmlMalformed("malformed XML: not encodable as UTF-8") from None
    return {child.tag: (child.text or "").strip() for child in root}


# -------------------------------------------------------------------------- the self-built app


def parse_app(fields: Mapping[str, str], now: datetime) -> list[Inbound]:
    """A decrypted app callback (``read_xml`` output) → zero or one event."""
    kind = fields.get("MsgType", "")
    builder = _APP_BUILDERS.get(kind)
    if builder is None:
        log.debug("wecom: ignored an app callback of type %r", kind)
        return []
    user = _required(fields, "FromUserName")
    event = builder(fields, _common(Address(APP, user), user, "direct", now))
    return [event] if event is not None else []


def _common(chat: Address, user: str, chat_type: ChatType, now: datetime) -> dict[str, Any]:
    return {
        "chat": chat,
        "sender": Sender(APP, user),
        "chat_type": chat_type,
        "received_at": now,
    }


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name, "")
    if not value:
        raise BadRequest(f"wecom: <{name}> is missing or empty")
    return value


def _app_text(fields: Mapping[str, str], common: dict[str, Any]) -> Inbound | None:
    text, msg_id = _required(fields, "Content"), _required(fields, "MsgId")
    return Message(event_id=msg_id[:_MAX_ID], text=text, **common)


def _app_voice(fields: Mapping[str, str], common: dict[str, Any]) -> Inbound | None:
    media, msg_id = _required(fields, "MediaId"), _required(fields, "MsgId")
    fmt = fields.get("Format", "amr").lower() or "amr"
    return Voice(event_id=msg_id[:_MAX_ID], media_ref=media, mime_hint=f"audio/{fmt}", **common)


def _app_image(fields: Mapping[str, str], common: dict[str, Any]) -> Inbound | None:
    """A picture (staff: evidence); downloaded by its ``MediaId`` like a voice note."""
    media, msg_id = _required(fields, "MediaId"), _required(fields, "MsgId")
    return Image(event_id=msg_id[:_MAX_ID], media_ref=media, mime_hint="image/jpeg", **common)


def _app_event(fields: Mapping[str, str], common: dict[str, Any]) -> Inbound | None:
    event = fields.get("Event", "")
    if event != "template_card_event":
        log.debug("wecom: ignored app event %r", event)
        return None
    key, task = _required(fields, "EventKey"), fields.get("TaskId", "")
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
    "image": _app_image,
    "event": _app_event,
}


# ---------------------------------------------------------------------------------- AI bot


def parse_aibot(body: Mapping[str, Any], now: datetime) -> list[Inbound]:
    """A decrypted AI-bot callback (JSON object) → zero or one event."""
    kind = get(body, "msgtype", str, "$") or ""
    builder = _AIBOT_BUILDERS.get(kind)
    if builder is None:
        log.debug("wecom: ignored an AI-bot callback of type %r", kind)
        return []
    user = need(need(body, "from", dict, "$"), "userid", str, "$.from")
    msg_id = need(body, "msgid", str, "$")
    group = get(body, "chattype", str, "$") == "group"
    chat_id = need(body, "chatid", str, "$") if group else user
    get(body, "response_url", str, "$")
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


def _content(body: Mapping[str, Any], kind: str) -> str:
    return get(need(body, kind, dict, "$"), "content", str, f"$.{kind}") or ""


def _aibot_text(body: Mapping[str, Any], common: dict[str, Any]) -> Inbound | None:
    return _said(_content(body, "text"), common)


def _aibot_voice(body: Mapping[str, Any], common: dict[str, Any]) -> Inbound | None:
    """AI-bot voice is WeCom's transcript only (no audio): it is read as text."""
    return _said(_content(body, "voice"), common)


def _aibot_mixed(body: Mapping[str, Any], common: dict[str, Any]) -> Inbound | None:
    items = get(need(body, "mixed", dict, "$"), "msg_item", list, "$.mixed") or []
    parts = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(f"$.mixed.msg_item[{i}] must be an object")
        if get(item, "msgtype", str, f"$.mixed.msg_item[{i}]") == "text":
            parts.append(_content(item, "text"))
    return _said(" ".join(p for p in parts if p), common)


def _aibot_event(body: Mapping[str, Any], common: dict[str, Any]) -> Inbound | None:
    event = need(body, "event", dict, "$")
    kind = get(event, "eventtype", str, "$.event")
    if kind != "template_card_event":
        log.debug("wecom: ignored AI-bot event %r", kind)
        return None
    at = "$.event.template_card_event"
    click = need(event, "template_card_event", dict, "$.event")
    key, task = need(click, "event_key", str, at), get(click, "task_id", str, at) or ""
    if not key:
        raise BadRequest(f"{at}.event_key is empty")
    return Action(
        token=key,
        card_message_id=task or None,
        reply_ctx={"task_id": task, "card_type": get(click, "card_type", str, at) or ""},
        **common,
    )


_AibotBuilder = Callable[[Mapping[str, Any], dict[str, Any]], Inbound | None]
_AIBOT_BUILDERS: dict[str, _AibotBuilder] = {
    "text": _aibot_text,
    "voice": _aibot_voice,
    "mixed": _aibot_mixed,
    "event": _aibot_event,
}
