from __future__ import annotations

import base64

import pytest

from bot.adapters.codec import ActionToken, TokenCodec
from bot.errors import TokenInvalid
from bot.tickets import NoteAction, TicketAction

codec = TokenCodec(b"secret-one")


@pytest.mark.parametrize("action", [*TicketAction, *NoteAction])
def test_every_action_round_trips_within_telegram_limit(action: TicketAction | NoteAction) -> None:
    token = ActionToken(ticket_id=2**40, action=action, version=10**6, arg=2**31)
    text = codec.encode(token)
    assert len(text.encode()) <= 64
    assert codec.decode(text) == token


def test_small_tokens_are_short() -> None:
    assert len(codec.encode(ActionToken(42, TicketAction.ACCEPT, 3))) <= 24


def test_a_flipped_bit_is_refused() -> None:
    text = codec.encode(ActionToken(42, TicketAction.ACCEPT, 3))
    raw = bytearray(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    raw[3] ^= 1  # change the ticket id, keep the MAC
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(TokenInvalid):
        codec.decode(forged)


def test_a_token_signed_with_another_key_is_refused() -> None:
    other = TokenCodec(b"secret-two").encode(ActionToken(42, TicketAction.ACCEPT, 3))
    with pytest.raises(TokenInvalid):
        codec.decode(other)


@pytest.mark.parametrize("garbage", ["", "x", "!!!!", "a" * 65, "Zz" * 20, "é"])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(TokenInvalid):
        codec.decode(garbage)


def test_a_token_read_before_is_read_the_same_and_a_tampered_copy_still_refused() -> None:
    token = ActionToken(7, TicketAction.DEPART, 4)
    text = codec.encode(token)
    assert codec.decode(text) == token and codec.decode(text) == token
    assert codec.encode(ActionToken(7, TicketAction.DEPART, 5)) != text  # a new version
    tampered = text[:8] + ("A" if text[8] != "A" else "B") + text[9:]
    with pytest.raises(TokenInvalid):
        codec.decode(tampered)
