"""Web chat requests → neutral events, and the signed session tokens that make them trusted.

A visitor of ``/chat`` gets a session token (conversation id and name, HMAC-signed with the
hub's secret) and sends it with every post; an engineer on ``/console`` gets one naming their
person. A post with a missing or forged token is refused before anything is stored; a post whose
fields have the wrong type is refused (``BadRequest``, 400) naming the field. Texts of any
length are taken: the inbox cuts them to ``[limits] text_chars`` as for every platform.
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bot.assets import AssetLinks
from bot.errors import BadRequest, SignatureInvalid
from bot.events import Action, Address, Message, Sender
from bot.mac import KeyedSha256

__all__ = ["Session", "SessionSigner", "parse_action", "parse_message", "parse_reply"]

PLATFORM = "web"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


@dataclass(frozen=True, slots=True)
class Session:
    kind: Literal["customer", "staff"]
    user_id: str  # customer: its conversation id; staff: their web identity
    name: str
    locale: str | None = None  # the page's language when the session began


class SessionSigner:
    def __init__(self, secret: bytes) -> None:
        self._mac = KeyedSha256.derived(secret, b"gongdan/webchat-session/v1")
        # Every post carries its session: a token already verified is remembered (a token is
        # valid for good or never, so remembering changes no answer; a forged one is not kept).
        self._verified = functools.lru_cache(maxsize=4096)(self._check)

    def sign(self, session: Session) -> str:
        body = json.dumps(
            {"k": session.kind, "u": session.user_id, "n": session.name, "l": session.locale},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        mac = self._mac.digest(body)[:16]
        enc = base64.urlsafe_b64encode
        return f"{enc(body).decode().rstrip('=')}.{enc(mac).decode().rstrip('=')}"

    def verify(self, token: object) -> Session:
        if not isinstance(token, str) or token.count(".") != 1 or len(token) > 1000:
            raise SignatureInvalid("missing or malformed session")
        return self._verified(token)

    def _check(self, token: str) -> Session:
        body_b64, mac_b64 = token.split(".")
        try:
            body = base64.urlsafe_b64decode(body_b64 + "=" * (-len(body_b64) % 4))
            mac = base64.urlsafe_b64decode(mac_b64 + "=" * (-len(mac_b64) % 4))
        except ValueError:
            raise SignatureInvalid("malformed session") from None
        if not hmac.compare_digest(mac, self._mac.digest(body)[:16]):
            raise SignatureInvalid("session signature does not match")
        d = json.loads(body)
        return Session(kind=d["k"], user_id=d["u"], name=d["n"], locale=d.get("l"))


def _field(
    body: dict[str, Any], name: str, *, max_len: int | None = None, required: bool = True
) -> str:
    """A string field; ``max_len`` None: any length (texts are cut by the inbox's cap)."""
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequest(f"'{name}' must be a non-empty string")
    if max_len is not None and len(value) > max_len:
        raise BadRequest(f"'{name}' is longer than {max_len} characters")
    return value


def _client_id(body: dict[str, Any]) -> str:
    cid = body.get("id")
    if not isinstance(cid, str) or not _CLIENT_ID.match(cid):
        raise BadRequest("'id' must be 8–64 characters of A–Z, a–z, 0–9, _ or -")
    return cid


def _conversation(session: Session, body: dict[str, Any], allowed: set[str]) -> str:
    if session.kind == "customer":
        return session.user_id
    conv = body.get("conversation") or session.user_id
    if not isinstance(conv, str) or conv not in allowed:
        raise BadRequest("'conversation' is not one of yours")
    return conv


def _asset(body: dict[str, Any], links: AssetLinks | None) -> int | None:
    """The asset a scan-to-report link named (``/r/<token>``), its signature checked: a
    forged or malformed token is refused, never taken as no asset or as another one."""
    token = body.get("asset")
    if token is None or links is None:
        return None
    asset_id = links.verify(token)
    if asset_id is None:
        raise BadRequest("'asset' is not a valid asset link")
    return asset_id


def parse_message(
    session: Session,
    body: dict[str, Any],
    now: datetime,
    allowed: set[str],
    *,
    links: AssetLinks | None = None,
) -> Message:
    cid = _client_id(body)
    conv = _conversation(session, body, allowed)
    return Message(
        event_id=f"{session.user_id}:{cid}",
        chat=Address(PLATFORM, conv),
        sender=Sender(PLATFORM, session.user_id, session.name, session.locale),
        chat_type="direct" if conv == session.user_id else "group",
        received_at=now,
        text=_field(body, "text"),
        asset_id=_asset(body, links) if session.kind == "customer" else None,
    )


def parse_action(
    session: Session, body: dict[str, Any], now: datetime, allowed: set[str]
) -> Action:
    cid = _client_id(body)
    conv = _conversation(session, body, allowed)
    note = _field(body, "note", required=False).strip() or None
    return Action(
        event_id=f"{session.user_id}:{cid}",
        chat=Address(PLATFORM, conv),
        sender=Sender(PLATFORM, session.user_id, session.name, session.locale),
        chat_type="direct" if conv == session.user_id else "group",
        received_at=now,
        token=_field(body, "token", max_len=64),
        card_message_id=_field(body, "message", max_len=300, required=False) or None,
        note=note,
        reply_ctx={"press": cid},  # the console re-enables the button its answer names
    )


_TICKET_NUMBER = re.compile(r"GD-\d{1,12}", re.IGNORECASE)
#: The longest reply to a customer the console's box takes (``bot/flows/reply.py``).
REPLY_CHARS = 1000


def parse_reply(session: Session, body: dict[str, Any], now: datetime) -> Message:
    """The console's reply box — ``{"id", "ticket": "GD-12", "text"}`` — as the message a
    staff member would write for it, "GD-12 回复：…", in their own direct conversation (the
    confirmation comes back there; ``bot/flows/reply.py`` does the rest)."""
    cid = _client_id(body)
    number = _field(body, "ticket", max_len=20).strip()
    if not _TICKET_NUMBER.fullmatch(number):
        raise BadRequest("'ticket' must be a ticket number like GD-12")
    text = _field(body, "text", max_len=REPLY_CHARS).strip()
    return Message(
        event_id=f"{session.user_id}:{cid}",
        chat=Address(PLATFORM, session.user_id),
        sender=Sender(PLATFORM, session.user_id, session.name, session.locale),
        chat_type="direct",
        received_at=now,
        text=f"{number.upper()} 回复：{text}",
    )
