"""``bot.mac.KeyedSha256`` makes exactly the MACs of ``hmac.digest(key, msg, "sha256")``:
tokens and CSRF values signed before it came stay valid."""

from __future__ import annotations

import hmac

import pytest

from bot.mac import KeyedSha256


@pytest.mark.parametrize("key", [b"", b"k", b"k" * 32, b"k" * 64, b"k" * 65, bytes(range(200))])
@pytest.mark.parametrize("message", [b"", b"g1\x85\x12\x03", "注塑机".encode() * 50])
def test_the_same_macs_as_the_standard_library(key: bytes, message: bytes) -> None:
    keyed = KeyedSha256(key)
    assert keyed.digest(message) == hmac.digest(key, message, "sha256")
    assert keyed.digest(message) == keyed.digest(message)  # (its states are not consumed)
    assert keyed.digest(message + b"x") != keyed.digest(message)


def test_web_chat_sessions_signed_before_stay_valid_and_forgeries_stay_refused() -> None:
    """A visitor's session token from before (``hmac.new`` under the derived key) still opens
    their conversation; a token changed in one character is refused, also once the genuine one
    has been verified (and remembered), and so is a token that is not a string."""
    import base64
    import hashlib

    from bot.adapters.webchat.parse import Session, SessionSigner
    from bot.errors import SignatureInvalid

    secret = b"hub-secret"
    body = '{"k":"customer","u":"c-abc","n":"张三","l":"zh"}'.encode()
    key = hmac.new(secret, b"gongdan/webchat-session/v1", hashlib.sha256).digest()
    mac = hmac.new(key, body, hashlib.sha256).digest()[:16]

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).decode().rstrip("=")

    old = f"{b64(body)}.{b64(mac)}"
    signer = SessionSigner(secret)
    assert signer.verify(old) == Session("customer", "c-abc", "张三", "zh")
    assert signer.sign(Session("customer", "c-abc", "张三", "zh")) == old
    forged = old[:-2] + ("A" if old[-2] != "A" else "B") + old[-1]
    for bad in (forged, f"{b64(body.replace(b'c-abc', b'c-abd'))}.{b64(mac)}", ["x"], None):
        with pytest.raises(SignatureInvalid):
            signer.verify(bad)
    assert signer.verify(old).user_id == "c-abc"
