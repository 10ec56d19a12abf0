"""WeCom's callback crypto (加解密方案说明, doc 90968), on ``cryptography``; pure, no I/O.

- ``msg_signature = sha1("".join(sorted([token, timestamp, nonce, encrypt]))).hexdigest()``;
- ``aes_key = b64decode(EncodingAESKey + "=")`` (32 bytes), AES-256-CBC with ``IV = aes_key[:16]``;
- plaintext ``random(16) ‖ len(msg) as 4 bytes big-endian ‖ msg ‖ receiveid``, PKCS#7-padded to
  **32-byte** blocks (pad bytes 1..32, so a stock 16-byte unpadder is wrong);
- ``receiveid`` is the corp id for a self-built app's callbacks and ``""`` for an internal AI bot
  (智能机器人); it is always checked — WeCom's own sample has a different ``ToUserName``.

Every failure (signature, base64, block size, padding, length, receiveid) raises
``CryptoRefused``; callers turn it into a refusal (401) and store nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["BLOCK", "CryptoRefused", "NotUtf8", "WecomCrypto", "signature"]

BLOCK = 32
_KEY = re.compile(r"^[A-Za-z0-9]{43}$")


class CryptoRefused(ValueError):
    """A callback that does not verify or decrypt: refused, never stored."""


class NotUtf8(CryptoRefused):
    """A message that verified and decrypted but is not UTF-8 (a bad request, not a forgery)."""


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """WeCom's ``msg_signature`` (SHA1 over the four values, sorted, concatenated)."""
    joined = "".join(sorted([token, timestamp, nonce, encrypt]))
    return hashlib.sha1(joined.encode()).hexdigest()


def _pad(data: bytes) -> bytes:
    amount = BLOCK - len(data) % BLOCK
    return data + bytes([amount]) * amount


def _unpad(data: bytes) -> bytes:
    if not data or len(data) % BLOCK:
        raise CryptoRefused("ciphertext is not a whole number of 32-byte blocks")
    amount = data[-1]
    if not 1 <= amount <= BLOCK or data[-amount:] != bytes([amount]) * amount:
        raise CryptoRefused("bad PKCS#7 padding")
    return data[:-amount]


class WecomCrypto:
    """One callback endpoint's Token, EncodingAESKey and expected receiveid."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if not _KEY.match(encoding_aes_key):
            raise ValueError("EncodingAESKey must be 43 characters of A–Z a–z 0–9")
        self.token = token
        self.receive_id = receive_id
        self._key = base64.b64decode(encoding_aes_key + "=")
        if len(self._key) != 32:  # pragma: no cover - 43 base64 characters are 32 bytes
            raise ValueError("EncodingAESKey does not decode to 32 bytes")

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return signature(self.token, timestamp, nonce, encrypt)

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        """Constant-time check of ``msg_signature``; ``CryptoRefused`` when it does not match."""
        expected = self.sign(timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected.encode(), msg_signature.lower().encode()):
            raise CryptoRefused("msg_signature does not match")

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def decrypt(self, encrypt: str) -> str:
        """The message inside ``encrypt``, after checking padding, length and receiveid."""
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise CryptoRefused("Encrypt is not base64") from None
        if not raw or len(raw) % BLOCK:
            raise CryptoRefused("ciphertext is not a whole number of 32-byte blocks")
        decryptor = self._cipher().decryptor()
        plain = _unpad(decryptor.update(raw) + decryptor.finalize())
        if len(plain) < 20:
            raise CryptoRefused("plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise CryptoRefused("message length is past the end of the plaintext")
        message, receive_id = plain[20 : 20 + length], plain[20 + length :]
        if not hmac.compare_digest(receive_id, self.receive_id.encode()):
            raise CryptoRefused("receiveid does not match")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise NotUtf8("message is not UTF-8") from None

    def open(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Verify, then decrypt: what a callback handler calls."""
        self.verify(msg_signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)

    def encrypt(self, message: str, *, random16: bytes | None = None) -> str:
        """``message`` sealed for WeCom (replies, and test doubles of WeCom's callbacks)."""
        prefix = os.urandom(16) if random16 is None else random16
        if len(prefix) != 16:
            raise ValueError("random16 must be 16 bytes")
        body = message.encode()
        plain = prefix + struct.pack(">I", len(body)) + body + self.receive_id.encode()
        encryptor = self._cipher().encryptor()
        sealed = encryptor.update(_pad(plain)) + encryptor.finalize()
        return base64.b64encode(sealed).decode()
