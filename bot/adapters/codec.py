"""The one codec for button action tokens, on every platform.

A token carries (ticket id, action, card version, optional argument) and an HMAC so that it can
travel through any platform's button payload and come back unforged. Layout, then base64url
without padding::

    b"g1" | varint ticket | action code (1 byte) | varint version | varint arg+1 | HMAC[:10]

A typical token is 22–26 ASCII characters — well inside Telegram's 64-byte ``callback_data``,
WeCom's 1024-byte ``key`` and anything else. The action codes below are part of the wire
format: append new ones, never renumber.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
from dataclasses import dataclass

from bot.errors import TokenInvalid
from bot.mac import KeyedSha256
from bot.tickets import (
    ClosureAction,
    CsatAction,
    IntakeAction,
    NoteAction,
    PartsAction,
    Press,
    SlaAction,
    TicketAction,
)

__all__ = ["ActionToken", "TokenCodec"]

_MAGIC = b"g1"
_MAC_LEN = 10
MAX_TOKEN_BYTES = 64
_REMEMBERED = 8192  # tokens drawn, and tokens read, kept per codec
_URLSAFE = bytes.maketrans(b"+/", b"-_")  # base64 → base64url (``urlsafe_b64encode``'s way)

_CODES: dict[Press, int] = {
    TicketAction.ASSIGN: 1,
    TicketAction.CLAIM: 2,
    TicketAction.ACCEPT: 3,
    TicketAction.REASSIGN: 4,
    TicketAction.DEPART: 5,
    TicketAction.ARRIVE: 6,
    TicketAction.DIAGNOSE: 7,
    TicketAction.NEED_PARTS: 8,
    TicketAction.PARTS_ARRIVED: 9,
    TicketAction.NEED_THIRD_PARTY: 10,
    TicketAction.THIRD_PARTY_DONE: 11,
    TicketAction.REPAIR: 12,
    TicketAction.RESOLVE: 13,
    TicketAction.CONFIRM: 14,
    TicketAction.REJECT: 15,
    TicketAction.REOPEN: 16,
    TicketAction.CANCEL: 17,
    TicketAction.AUTO_CLOSE: 18,
    TicketAction.MERGE: 19,
    NoteAction.CONFIRM_DIAGNOSIS: 32,
    NoteAction.DISCARD_DIAGNOSIS: 33,
    SlaAction.SNOOZE: 48,
    IntakeAction.REPORT: 64,
    IntakeAction.DISMISS: 65,
    IntakeAction.IMPACT: 66,
    IntakeAction.PRIORITY: 67,
    IntakeAction.SAME_FAULT: 68,
    IntakeAction.NOT_SAME: 69,
    CsatAction.RATE: 80,
    PartsAction.ETA: 104,
    PartsAction.VISIT: 105,
    ClosureAction.TICK: 96,
}
_ACTIONS = {code: action for action, code in _CODES.items()}


@dataclass(frozen=True, slots=True)
class ActionToken:
    ticket_id: int
    action: Press
    version: int
    arg: int | None = None  # ASSIGN: the person; SNOOZE: minutes; IMPACT/PRIORITY: the choice;
    # otherwise a voice note. REPORT/DISMISS carry an inbound event's id in ticket_id.


_SMALL = [bytes((n,)) for n in range(0x80)]  # one-byte varints, made once


def _varint(n: int) -> bytes:
    if 0 <= n < 0x80:
        return _SMALL[n]
    if n < 0:
        raise ValueError("varint must be non-negative")
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return n, pos


class TokenCodec:
    def __init__(self, secret: bytes) -> None:
        # A key of its own, so a token MAC can never be replayed as another signature.
        self._keyed = KeyedSha256.derived(secret, b"gongdan/action-token/v1")
        # The same token is drawn on several cards (customer, assignee, team), and a press's
        # token is read twice (by the engine, for what to load, and by its flow): both are
        # remembered, by plain arguments (a frozen dataclass would hash in Python). A forged
        # token raises, and nothing is remembered of it.
        self.sign = functools.lru_cache(maxsize=_REMEMBERED)(self._sign)
        self.decode = functools.lru_cache(maxsize=_REMEMBERED)(self._decode)

    def _mac(self, body: bytes) -> bytes:
        return self._keyed.digest(body)[:_MAC_LEN]

    def encode(self, token: ActionToken) -> str:
        """The token's text."""
        return self.sign(token.ticket_id, token.action, token.version, token.arg)

    def _sign(self, ticket_id: int, action: Press, version: int, arg: int | None = None) -> str:
        """``encode(ActionToken(ticket_id, action, version, arg))``, without the token."""
        body = (
            _MAGIC
            + _varint(ticket_id)
            + bytes([_CODES[action]])
            + _varint(version)
            + _varint(0 if arg is None else arg + 1)
        )
        raw = body + self._mac(body)
        text = binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=").decode()
        assert len(text) <= MAX_TOKEN_BYTES
        return text

    def _decode(self, text: str) -> ActionToken:
        """The token's content, or ``TokenInvalid`` for anything forged or malformed."""
        if not text or len(text) > MAX_TOKEN_BYTES:
            raise TokenInvalid()
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise TokenInvalid() from None
        body, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
        if len(raw) <= _MAC_LEN + 2 or not hmac.compare_digest(mac, self._mac(body)):
            raise TokenInvalid()
        try:
            if body[:2] != _MAGIC:
                raise ValueError("unknown token format")
            ticket_id, pos = _read_varint(body, 2)
            action = _ACTIONS[body[pos]]
            version, pos = _read_varint(body, pos + 1)
            arg, pos = _read_varint(body, pos)
            if pos != len(body):
                raise ValueError("trailing bytes")
        except (ValueError, KeyError, IndexError):
            raise TokenInvalid() from None
        return ActionToken(ticket_id, action, version, None if arg == 0 else arg - 1)
