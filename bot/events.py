"""Platform-neutral events: what adapters hand the engine, and what flows hand adapters.

Inbound: ``Message``, ``Voice``, ``Action``. Outbound: ``Text``, ``Card`` (with ``Button``s) and
``Notice`` (a short answer to the person who pressed a button). ``Address`` names a chat on a
platform. All are plain frozen dataclasses that round-trip through JSON (``to_json`` /
``inbound_from_json`` / ``outbound_from_json``) because they are stored before they are used.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "Action",
    "Address",
    "Button",
    "Card",
    "Image",
    "Inbound",
    "Message",
    "Notice",
    "Outbound",
    "Sender",
    "Text",
    "Voice",
    "inbound_from_json",
    "outbound_from_json",
]

ChatType = Literal["direct", "group"]


@dataclass(frozen=True, slots=True)
class Address:
    """A chat on a platform: ``web:c-1f2e``, ``slack:C024BE91L``, ``telegram:-1001234``."""

    platform: str
    chat_id: str

    @property
    def ref(self) -> str:
        return f"{self.platform}:{self.chat_id}"

    @classmethod
    def parse(cls, ref: str) -> Address:
        platform, sep, chat_id = ref.partition(":")
        if not sep or not platform or not chat_id:
            raise ValueError(f"not an address: {ref!r}")
        return cls(platform, chat_id)

    def __str__(self) -> str:
        return self.ref


@dataclass(frozen=True, slots=True)
class Sender:
    platform: str
    user_id: str
    name: str = ""
    locale: str | None = None  # the platform's language hint ("zh-CN", "en"), if it gives one


@dataclass(frozen=True, slots=True)
class _InboundBase:
    event_id: str  # the platform's own id for this event: the dedupe key
    chat: Address
    sender: Sender
    chat_type: ChatType
    received_at: datetime

    @property
    def platform(self) -> str:
        return self.chat.platform


@dataclass(frozen=True, slots=True)
class Message(_InboundBase):
    text: str
    mentions_bot: bool = False
    #: The whole text when ``text`` was cut to ``[limits] text_chars`` (the inbox cuts it and
    #: keeps this, itself at most ``attachment_chars``); None when nothing was cut.
    full_text: str | None = None
    #: The registered asset the message is about, from a signed per-asset link (a QR code
    #: scanned); set only by an adapter that verified the link's signature.
    asset_id: int | None = None


@dataclass(frozen=True, slots=True)
class Voice(_InboundBase):
    media_ref: str  # what the adapter's ``download`` needs (file id, media id, URL…)
    mime_hint: str = ""
    duration_s: float | None = None
    platform_transcript: str | None = None


@dataclass(frozen=True, slots=True)
class Image(_InboundBase):
    """A picture sent in chat (from staff: evidence of the work, ``bot/flows/closure.py``)."""

    media_ref: str  # what the adapter's ``download`` needs (file id, media id, URL…)
    mime_hint: str = ""
    caption: str = ""  # text sent with it (e.g. "GD-12": the ticket it is about)


@dataclass(frozen=True, slots=True)
class Action(_InboundBase):
    token: str  # the signed button token, as the platform returned it
    card_message_id: str | None = None  # the platform message whose button was pressed
    note: str | None = None  # text typed with the press (e.g. a root cause on resolve)
    reply_ctx: dict[str, Any] = field(default_factory=dict)  # e.g. callback_query id


Inbound = Message | Voice | Action | Image
_INBOUND = {"message": Message, "voice": Voice, "action": Action, "image": Image}
_INBOUND_FIELDS = {
    cls: tuple(f.name for f in fields(cls) if f.name not in ("chat", "sender", "received_at"))
    for cls in (Message, Voice, Action, Image)
}


def inbound_kind(event: Inbound) -> str:
    return {Message: "message", Voice: "voice", Action: "action", Image: "image"}[type(event)]


def inbound_to_json(event: Inbound) -> dict[str, Any]:
    """The event as stored (field by field: ``dataclasses.asdict`` deep-copies, and this runs
    for every event on the answer path)."""
    chat, sender = event.chat, event.sender
    d: dict[str, Any] = {name: getattr(event, name) for name in _INBOUND_FIELDS[type(event)]}
    d["chat"] = {"platform": chat.platform, "chat_id": chat.chat_id}
    d["sender"] = {
        "platform": sender.platform,
        "user_id": sender.user_id,
        "name": sender.name,
        "locale": sender.locale,
    }
    d["received_at"] = event.received_at.isoformat()
    if isinstance(event, Action):
        d["reply_ctx"] = dict(event.reply_ctx)
    d["kind"] = inbound_kind(event)
    if d.get("full_text", "") is None:  # stored only when a text was cut
        del d["full_text"]
    if d.get("asset_id", "") is None:  # stored only when a signed link named one
        del d["asset_id"]
    return d


def inbound_from_json(d: dict[str, Any]) -> Inbound:
    d = dict(d)
    cls = _INBOUND[d.pop("kind")]
    d["chat"] = Address(**d["chat"])
    d["sender"] = Sender(**d["sender"])
    received = datetime.fromisoformat(d["received_at"])
    d["received_at"] = received if received.tzinfo else received.replace(tzinfo=UTC)
    return cls(**d)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------- outbound


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    mentions: tuple[str, ...] = ()  # person keys to @-mention where the platform can


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    token: str
    style: str = "default"  # primary | default | danger
    confirm: str | None = None  # a confirm dialog's question, for destructive actions
    action: str = ""  # the ticket action's name, for adapters that label buttons by id


@dataclass(frozen=True, slots=True)
class Card:
    ticket_id: int
    version: int
    title: str
    fields: tuple[tuple[str, str], ...] = ()
    text: str = ""
    buttons: tuple[Button, ...] = ()
    footer: str = ""
    link: str | None = None  # progress page


@dataclass(frozen=True, slots=True)
class Notice:
    """A short answer to one presser (a toast, an ephemeral message)."""

    text: str
    reply_ctx: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None


Outbound = Text | Card | Notice
_OUTBOUND = {"text": Text, "card": Card, "notice": Notice}


def outbound_to_json(msg: Outbound) -> dict[str, Any]:
    """The message as stored (field by field, as ``inbound_to_json``)."""
    match msg:
        case Card():
            return {
                "kind": "card",
                "ticket_id": msg.ticket_id,
                "version": msg.version,
                "title": msg.title,
                "fields": [list(f) for f in msg.fields],
                "text": msg.text,
                "buttons": [
                    {
                        "label": b.label,
                        "token": b.token,
                        "style": b.style,
                        "confirm": b.confirm,
                        "action": b.action,
                    }
                    for b in msg.buttons
                ],
                "footer": msg.footer,
                "link": msg.link,
            }
        case Text():
            return {"kind": "text", "text": msg.text, "mentions": list(msg.mentions)}
        case Notice():
            return {
                "kind": "notice",
                "text": msg.text,
                "reply_ctx": dict(msg.reply_ctx),
                "user_id": msg.user_id,
            }


def outbound_from_json(d: dict[str, Any]) -> Outbound:
    d = dict(d)
    kind = d.pop("kind")
    d.pop("nag", None)  # what an SLA nag carries so it can be folded into a digest
    if kind == "card":
        d["fields"] = tuple(tuple(f) for f in d["fields"])
        d["buttons"] = tuple(Button(**b) for b in d["buttons"])
    elif kind == "text":
        d["mentions"] = tuple(d.get("mentions", ()))
    return _OUTBOUND[kind](**d)  # type: ignore[no-any-return]
