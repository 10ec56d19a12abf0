"""Telegram updates (``telegram.Update``, built by PTB) → neutral events.

One builder per update type in ``_BUILDERS``; every other type (edited messages, channel posts,
polls, member changes…) is no event and a debug line. Within a message: text (commands
included) becomes a ``Message``, a voice note, an audio file or an audio document a ``Voice``,
a photo or an image file an ``Image`` (its caption kept); messages from bots and service
messages (joins, pins…) are nothing.

The event id is the ``update_id``: Telegram resends an update it could not deliver with the same
id, so a retry is a duplicate the inbox drops.

A press of an inline button becomes an ``Action`` whose ``reply_ctx`` carries the callback query
id (the flows' answer becomes the toast), except the first press of a button that needs
confirming (and its ✖), which only changes the keyboard: a ``ConfirmStep``, never stored.

``read_update`` builds the ``Update`` from the webhook's JSON only after checking the types of
the fields PTB and the builders read (``_UPDATE``): PTB does not check them, so a message
without a ``chat`` or with a number for ``text`` would otherwise fail later. A malformed
update is ``BadRequest``; the adapter acknowledges it (Telegram retries anything else for a
day) and counts it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from telegram import Bot, Chat, InlineKeyboardMarkup, Update
from telegram import CallbackQuery as TgCallbackQuery
from telegram import Message as TgMessage
from telegram.constants import ChatType as TgChatType
from telegram.constants import MessageEntityType

from bot.adapters.body import Shape, check_shape, get
from bot.adapters.telegram.render import CONFIRM, DISARM
from bot.errors import BadRequest
from bot.events import Action, Address, ChatType, Image, Inbound, Message, Sender, Voice

__all__ = [
    "PLATFORM",
    "BotIdentity",
    "ConfirmStep",
    "Parsed",
    "bot_id_of",
    "parse_update",
    "read_update",
]

log = logging.getLogger(__name__)

PLATFORM = "telegram"
_SPACES = re.compile(r"[ \t]{2,}")


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is, for telling whether a message is addressed to it."""

    id: int | None
    username: str | None = None  # known once getMe answered


def bot_id_of(token: str) -> int | None:
    """A bot token starts with the bot's user id (``123456:ABC…``)."""
    head = token.partition(":")[0]
    return int(head) if head.isdigit() else None


@dataclass(frozen=True, slots=True)
class ConfirmStep:
    """A press that arms (``CONFIRM + token``) or disarms (``DISARM + token``) a confirm row."""

    callback_query_id: str
    chat_id: int
    message_id: int
    data: str
    keyboard: InlineKeyboardMarkup | None


Parsed = Inbound | ConfirmStep | None
_Builder = Callable[[Update, BotIdentity, datetime], Parsed]

_I, _S, _B, _O, _L, _NUM = (int,), (str,), (bool,), (dict,), (list,), (int, float)
_USER: Shape = {
    "id": (_I, None),
    "is_bot": (_B, None),
    "first_name": (_S, None),
    "last_name": (_S, None),
    "username": (_S, None),
    "language_code": (_S, None),
}
_CHAT: Shape = {
    "id": (_I, None),
    "type": (_S, None),
    "title": (_S, None),
    "username": (_S, None),
    "first_name": (_S, None),
    "last_name": (_S, None),
}
_FILE: Shape = {
    "file_id": (_S, None),
    "file_unique_id": (_S, None),
    "duration": (_NUM, None),
    "mime_type": (_S, None),
    "file_name": (_S, None),
    "file_size": (_I, None),
}
_PHOTO: Shape = {
    "file_id": (_S, None),
    "file_unique_id": (_S, None),
    "width": (_I, None),
    "height": (_I, None),
    "file_size": (_I, None),
}
_ENTITY: Shape = {
    "type": (_S, None),
    "offset": (_I, None),
    "length": (_I, None),
    "user": (_O, _USER),
}
_MESSAGE: dict[str, tuple[tuple[type, ...], Shape | None]] = {
    "message_id": (_I, None),
    "date": (_I, None),
    "edit_date": (_I, None),
    "chat": (_O, _CHAT),
    "from": (_O, _USER),
    "sender_chat": (_O, _CHAT),
    "text": (_S, None),
    "caption": (_S, None),
    "entities": (_L, _ENTITY),
    "caption_entities": (_L, _ENTITY),
    "voice": (_O, _FILE),
    "audio": (_O, _FILE),
    "document": (_O, _FILE),
    "photo": (_L, _PHOTO),
    "reply_markup": (_O, {"inline_keyboard": (_L, None)}),
}
_MESSAGE["reply_to_message"] = (_O, _MESSAGE)
_CALLBACK: Shape = {
    "id": (_S, None),
    "from": (_O, _USER),
    "message": (_O, _MESSAGE),
    "chat_instance": (_S, None),
    "data": (_S, None),
}
#: What PTB's ``de_json`` and our builders read of an update, with the Bot API's types.
_UPDATE: Shape = {
    "update_id": (_I, None),
    "message": (_O, _MESSAGE),
    "edited_message": (_O, _MESSAGE),
    "channel_post": (_O, _MESSAGE),
    "edited_channel_post": (_O, _MESSAGE),
    "callback_query": (_O, _CALLBACK),
}
#: What PTB raises while building an update from JSON of the wrong shape.
_DE_JSON_ERRORS = (AttributeError, IndexError, KeyError, OverflowError, TypeError, ValueError)


def read_update(data: dict[str, Any], bot: Bot) -> Update:
    """The ``Update`` in a webhook's JSON object, or ``BadRequest`` naming what is wrong."""
    check_shape(data, _UPDATE, "$")
    for kind in ("message", "callback_query"):
        message = data.get(kind)
        message = message.get("message") if kind == "callback_query" and message else message
        if isinstance(message, dict):
            _check_keyboard(message, f"$.{kind}")
    try:
        update = Update.de_json(data, bot)
    except _DE_JSON_ERRORS as exc:
        raise BadRequest(f"malformed Telegram update: {exc!r}") from None
    query = update.callback_query
    for where, msg in (
        ("$.message", update.message),
        ("$.callback_query.message", query.message if query is not None else None),
    ):
        if msg is not None and msg.chat is None:  # PTB builds a message without one
            raise BadRequest(f"{where}.chat is required")
    if query is not None and query.from_user is None:  # (and a press without a presser)
        raise BadRequest("$.callback_query.from is required")
    return update


def _check_keyboard(message: dict[str, Any], where: str) -> None:
    """Inline keyboards are arrays of arrays of buttons (the confirm step edits them)."""
    markup = message.get("reply_markup")
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    for i, row in enumerate(rows or ()):
        if not isinstance(row, list):
            raise BadRequest(f"{where}.reply_markup.inline_keyboard[{i}] must be an array")
        for j, button in enumerate(row):
            at = f"{where}.reply_markup.inline_keyboard[{i}][{j}]"
            if not isinstance(button, dict):
                raise BadRequest(f"{at} must be an object")
            get(button, "text", str, at)
            get(button, "callback_data", str, at)


def parse_update(update: Update, me: BotIdentity, now: datetime) -> Parsed:
    for kind, build in _BUILDERS.items():
        if getattr(update, kind) is not None:
            return build(update, me, now)
    kinds = sorted(k for k in update.to_dict() if k != "update_id")
    log.debug("telegram update %s of type %s ignored", update.update_id, kinds or "(empty)")
    return None


def _chat_type(chat: Chat) -> ChatType | None:
    if chat.type == TgChatType.PRIVATE:
        return "direct"
    if chat.type in (TgChatType.GROUP, TgChatType.SUPERGROUP):
        return "group"
    return None  # channels: not a place people report faults to a bot


def _from_message(update: Update, me: BotIdentity, now: datetime) -> Parsed:
    msg = update.message
    assert msg is not None
    user, chat_type = msg.from_user, _chat_type(msg.chat)
    if user is None or user.is_bot or chat_type is None:
        log.debug("telegram update %s: not from a person in a chat; ignored", update.update_id)
        return None
    event_id, chat = str(update.update_id), Address(PLATFORM, str(msg.chat.id))
    sender = Sender(PLATFORM, str(user.id), user.full_name, user.language_code)
    if msg.text is not None:
        text, mentioned = _addressed_text(msg, me)
        return Message(event_id, chat, sender, chat_type, now, text=text, mentions_bot=mentioned)
    media = _audio(msg)
    if media is not None:
        file_id, mime, duration = media
        return Voice(
            event_id,
            chat,
            sender,
            chat_type,
            now,
            media_ref=file_id,
            mime_hint=mime,
            duration_s=duration,
        )
    picture = _picture(msg)
    if picture is not None:
        file_id, mime = picture
        caption = msg.caption or ""
        return Image(
            event_id, chat, sender, chat_type, now, media_ref=file_id, mime_hint=mime,
            caption=caption,
        )  # fmt: skip
    log.debug("telegram update %s: no text, audio or picture; ignored", update.update_id)
    return None


def _picture(msg: TgMessage) -> tuple[str, str] | None:
    """(file id, mime type) of a photo (its largest size) or an image sent as a file."""
    if msg.photo:
        largest = max(msg.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        return largest.file_id, "image/jpeg"  # (Telegram re-encodes photos as JPEG)
    doc = msg.document
    if doc is not None and (doc.mime_type or "").startswith("image/"):
        return doc.file_id, doc.mime_type or ""
    return None


def _audio(msg: TgMessage) -> tuple[str, str, float | None] | None:
    """(file id, mime type, seconds) of a voice note, an audio file or an audio document."""
    if msg.voice is not None:
        raw = msg.voice.to_dict()  # to_dict: duration in seconds, whatever PTB's time settings
        return msg.voice.file_id, msg.voice.mime_type or "audio/ogg", _seconds(raw)
    if msg.audio is not None:
        raw = msg.audio.to_dict()
        return msg.audio.file_id, msg.audio.mime_type or "", _seconds(raw)
    doc = msg.document
    if doc is not None and (doc.mime_type or "").startswith("audio/"):
        return doc.file_id, doc.mime_type or "", None
    return None


def _seconds(raw: dict[str, object]) -> float | None:
    value = raw.get("duration")
    return float(value) if isinstance(value, int | float) else None


def _addressed_text(msg: TgMessage, me: BotIdentity) -> tuple[str, bool]:
    """The text without the bot's @mention, and whether the message is addressed to the bot:
    it mentions the bot, starts with a command for it, or replies to one of its messages."""
    text = msg.text or ""
    units = text.encode("utf-16-le")
    name = (me.username or "").lower()
    cuts: list[tuple[int, int, str]] = []  # (utf-16 offset, length, replacement)
    mentioned = False
    for entity in msg.entities:
        value = _span(units, entity.offset, entity.length)
        if entity.type == MessageEntityType.MENTION and name and value[1:].lower() == name:
            mentioned = True
            cuts.append((entity.offset, entity.length, ""))
        elif entity.type == MessageEntityType.TEXT_MENTION:
            if entity.user is not None and me.id is not None and entity.user.id == me.id:
                mentioned = True
                cuts.append((entity.offset, entity.length, ""))
        elif entity.type == MessageEntityType.BOT_COMMAND and entity.offset == 0:
            command, _, target = value.partition("@")
            if not target or (name and target.lower() == name):
                mentioned = True  # /start, /new@our_bot — not /new@another_bot
                cuts.append((entity.offset, entity.length, command))
    reply = msg.reply_to_message
    if reply is not None and reply.from_user is not None and me.id is not None:
        mentioned = mentioned or reply.from_user.id == me.id
    return _SPACES.sub(" ", _cut(text, cuts)).strip(), mentioned


def _span(units: bytes, offset: int, length: int) -> str:
    """An entity's text, by UTF-16 offset and length (PTB's ``parse_entity`` fails on spans
    that split a surrogate pair or lie outside the text; a malformed update may send those)."""
    start = max(0, offset) * 2
    return units[start : start + max(0, length) * 2].decode("utf-16-le", "replace")


def _cut(text: str, cuts: list[tuple[int, int, str]]) -> str:
    """Replace spans given in UTF-16 code units (how Telegram counts entity offsets)."""
    if not cuts:
        return text
    units = text.encode("utf-16-le")
    out, pos = b"", 0
    for offset, length, replacement in sorted(cuts):  # (overlapping spans: cut once)
        start = max(pos, offset * 2)
        out += units[pos:start] + replacement.encode("utf-16-le")
        pos = max(start, (offset + max(0, length)) * 2)
    # (an entity may split a surrogate pair: such halves become U+FFFD, never an error)
    return (out + units[pos:]).decode("utf-16-le", "replace")


def _from_callback(update: Update, me: BotIdentity, now: datetime) -> Parsed:
    query: TgCallbackQuery | None = update.callback_query
    assert query is not None
    card, data = query.message, query.data
    chat_type = _chat_type(card.chat) if card is not None else None
    if card is None or data is None or chat_type is None or query.from_user.is_bot:
        log.debug("telegram update %s: a press not on one of our cards", update.update_id)
        return None
    if data.startswith((CONFIRM, DISARM)):
        return ConfirmStep(
            callback_query_id=query.id,
            chat_id=card.chat.id,
            message_id=card.message_id,
            data=data,
            keyboard=card.reply_markup if isinstance(card, TgMessage) else None,
        )
    user = query.from_user
    return Action(
        event_id=str(update.update_id),
        chat=Address(PLATFORM, str(card.chat.id)),
        sender=Sender(PLATFORM, str(user.id), user.full_name, user.language_code),
        chat_type=chat_type,
        received_at=now,
        token=data,
        card_message_id=str(card.message_id),
        reply_ctx={"callback_query_id": query.id},
    )


_BUILDERS: dict[str, _Builder] = {
    "message": _from_message,
    "callback_query": _from_callback,
}
