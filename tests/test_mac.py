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
