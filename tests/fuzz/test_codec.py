"""Button tokens: any text a platform hands back decodes to the token we signed, or is
``TokenInvalid`` — never another error, and never a token we did not sign."""

from __future__ import annotations

import base64
import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from bot.adapters.codec import ActionToken, TokenCodec
from bot.errors import TokenInvalid
from bot.tickets import IntakeAction, NoteAction, SlaAction, TicketAction
from tests.fuzz.strategies import FUZZ

CODEC = TokenCodec(b"fuzz-secret")
KEY = hmac.new(b"fuzz-secret", b"gongdan/action-token/v1", hashlib.sha256).digest()
actions = st.sampled_from([*TicketAction, *NoteAction, *SlaAction, *IntakeAction])
tokens = st.builds(
    ActionToken,
    ticket_id=st.integers(0, 2**62),
    action=actions,
    version=st.integers(0, 2**40),
    arg=st.none() | st.integers(0, 2**40),
)


def _signed(body: bytes) -> str:
    """A token with a valid MAC over any body: what only a key holder could make."""
    mac = hmac.digest(KEY, body, "sha256")[:10]
    return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()


@FUZZ
@given(
    text=st.text(max_size=80)
    | st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode())
)
def test_any_text_is_a_token_we_signed_or_invalid(text: str) -> None:
    try:
        token = CODEC.decode(text)
    except TokenInvalid:
        return
    assert CODEC.encode(token) == text.rstrip("=")  # (practically never reached by chance)


@FUZZ
@given(body=st.binary(max_size=40))
def test_any_signed_body_is_a_token_or_invalid(body: bytes) -> None:
    """Even with a valid MAC (a key leak, or our own bug), a malformed body is refused."""
    try:
        token = CODEC.decode(_signed(body))
    except TokenInvalid:
        return
    assert isinstance(token, ActionToken)


@FUZZ
@given(token=tokens, flip=st.integers(0, 10_000))
def test_tokens_round_trip_and_any_changed_character_is_refused(
    token: ActionToken, flip: int
) -> None:
    text = CODEC.encode(token)
    assert len(text.encode()) <= 64 and CODEC.decode(text) == token
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    i = flip % len(text)
    changed = text[:i] + alphabet[(alphabet.index(text[i]) + 1 + flip % 63) % 64] + text[i + 1 :]
    try:
        decoded = CODEC.decode(changed)
    except TokenInvalid:
        return
    assert decoded == token  # a change in the last character's unused bits only
