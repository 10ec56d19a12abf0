"""The verify-and-decrypt step shared by the app's and the AI bot's callback endpoints.

Both answer ``GET ?msg_signature&timestamp&nonce&echostr`` (URL verification) with the bare
decrypted ``echostr`` — no quotes, BOM or newline — and open ``POST`` bodies only after the
signature over their ``Encrypt`` checks out. Any failure is ``SignatureInvalid`` (401: nothing
stored); XML with a DOCTYPE is refused with 403 before it is parsed.

Bad input, in the order it is found: an envelope that cannot be read (not XML/JSON, too deep)
is 400 — the signature is inside it; a bad signature 401; bytes that are not UTF-8 400 (after
the signature check); a decrypted body that cannot be read 400 (403 for a DOCTYPE). A callback
that verifies and reads but whose fields are missing or of the wrong type is *acknowledged*
(``dropped``: the empty 200, counted as ``malformed``, nothing stored): an empty 200 is WeCom's
only "received, stop retrying", and its three retries would carry the same fields.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web

from bot.adapters.wecom.crypto import CryptoRefused, NotUtf8, WecomCrypto
from bot.adapters.wecom.parse import XmlMalformed, XmlRefused, read_xml
from bot.errors import BadRequest, SignatureInvalid
from bot.inbox import Inbox

__all__ = ["answer_url_check", "dropped", "open_encrypted", "safe_xml"]

log = logging.getLogger(__name__)


def _param(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if not value:
        raise SignatureInvalid(f"missing {name}")
    return value


def open_encrypted(crypto: WecomCrypto, query: Mapping[str, str], encrypt: str | None) -> str:
    """The plaintext of a callback whose ``msg_signature`` covers ``encrypt``."""
    if not encrypt:
        raise SignatureInvalid("no Encrypt in the body (unencrypted callbacks are refused)")
    try:
        return crypto.open(
            _param(query, "msg_signature"),
            _param(query, "timestamp"),
            _param(query, "nonce"),
            encrypt,
        )
    except NotUtf8 as exc:  # (decrypted, so the signature checked out)
        raise BadRequest(f"wecom: {exc}") from None
    except CryptoRefused as exc:
        raise SignatureInvalid(f"wecom: {exc}") from None


def answer_url_check(crypto: WecomCrypto, query: Mapping[str, str]) -> web.Response:
    """The URL check: the decrypted ``echostr``, bare. (aiohttp has URL-decoded the query; a
    ``+`` that arrived unencoded became a space, and base64 has no spaces.)"""
    echostr = _param(query, "echostr").replace(" ", "+")
    plain = open_encrypted(crypto, query, echostr)
    return web.Response(text=plain, content_type="text/plain")


def safe_xml(text: str) -> dict[str, str]:
    try:
        return read_xml(text)
    except XmlRefused as exc:
        raise web.HTTPForbidden(reason=str(exc)) from None
    except XmlMalformed as exc:
        raise BadRequest(str(exc)) from None


def dropped(inbox: Inbox, platform: str, error: BadRequest) -> web.Response:
    """A verified callback whose fields are malformed: acknowledged, counted, not stored."""
    inbox.note(platform, "malformed")
    log.warning("%s: a malformed callback was acknowledged and dropped: %s", platform, error)
    return web.Response(text="")
