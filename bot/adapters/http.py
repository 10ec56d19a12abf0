"""HTTP plumbing every platform adapter shares: what a status means, and a capped download.

Whichever platform answers, a status means the same to the outbox, and ``status_error`` says
so once: 429 → ``RateLimited`` (for ``Retry-After`` seconds), 5xx → ``TransientSendError``,
anything else from 300 up → ``PlatformApiError``. Platform quirks (errcodes inside an HTTP 200,
DingTalk's QPS limit as a 403, Slack's ``ratelimited``) stay in their packages, which map them
before falling back on this.

``download`` fetches media (voice notes) into memory and never holds more than ``limit`` bytes:
a ``Content-Length`` over the limit is refused before the body is read, and the body is counted
while it streams. Connection errors and timeouts are ``TransientSendError``, named by their type
only: download URLs often carry a credential (Telegram's bot token, DingTalk's pre-signed URL,
WeCom's ``access_token``), so neither the URL nor the exception is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from bot.errors import (
    AdapterError,
    MediaTooLarge,
    PlatformApiError,
    RateLimited,
    TransientSendError,
)

__all__ = [
    "DOWNLOAD_TIMEOUT",
    "NETWORK_ERRORS",
    "RATE_LIMIT_WAIT",
    "Download",
    "download",
    "retry_after",
    "status_error",
]

#: What aiohttp raises when a platform cannot be reached or stops answering.
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError)
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_read=20)
#: Seconds to wait after a 429 without a usable ``Retry-After`` (callers may pass their own).
RATE_LIMIT_WAIT = 5.0
_CHUNK = 64 * 1024


def retry_after(headers: Mapping[str, str] | None, default: float) -> float:
    """``Retry-After`` in seconds (never negative); ``default`` when it is missing or not a
    number (the HTTP-date form is not worth parsing for a retry)."""
    value = (headers or {}).get("Retry-After")
    if value is None:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


def status_error(
    status: int,
    what: str,
    headers: Mapping[str, str] | None = None,
    *,
    code: str | int | None = None,
    detail: str = "",
    rate_limit_wait: float = RATE_LIMIT_WAIT,
) -> AdapterError | None:
    """What an HTTP answer's ``status`` means to the outbox; None for a success (below 300).

    ``what`` names the call in the message (never put a URL there); ``detail`` adds the
    platform's own words; ``code`` is the platform's error code for a ``PlatformApiError``
    (the status when it gave none); ``rate_limit_wait`` is the wait for a 429 without a
    ``Retry-After``.
    """
    if status < 300:
        return None
    message = f"{what}: HTTP {status} {detail}".rstrip()
    if status == 429:
        return RateLimited(retry_after(headers, rate_limit_wait), message)
    if status >= 500:
        return TransientSendError(message)
    return PlatformApiError(status if code is None else code, message)


@dataclass(frozen=True, slots=True)
class Download:
    """A downloaded file and its ``Content-Type`` (without parameters, e.g. ``audio/ogg``)."""

    data: bytes
    content_type: str


async def download(
    http: aiohttp.ClientSession,
    url: str,
    *,
    limit: int,
    what: str,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    rate_limit_wait: float = RATE_LIMIT_WAIT,
) -> Download:
    """GET ``url`` with ``http``, at most ``limit`` bytes of it (else ``MediaTooLarge``), within
    ``DOWNLOAD_TIMEOUT``.

    Statuses are mapped by ``status_error``; connection errors and timeouts become
    ``TransientSendError``. ``what`` names the download in messages (see the module doc).
    """
    try:
        async with http.get(url, headers=headers, params=params, timeout=DOWNLOAD_TIMEOUT) as r:
            error = status_error(r.status, what, r.headers, rate_limit_wait=rate_limit_wait)
            if error is not None:
                raise error
            return Download(await _read_capped(r, limit, what), r.content_type)
    except NETWORK_ERRORS as exc:
        raise TransientSendError(f"{what}: {type(exc).__name__}") from None


async def _read_capped(r: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The body, refused as soon as it is known to be over ``limit`` bytes."""
    if r.content_length is not None and r.content_length > limit:
        raise MediaTooLarge(f"{what}: {r.content_length} bytes; the limit is {limit}")
    data = bytearray()
    async for chunk in r.content.iter_chunked(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise MediaTooLarge(f"{what}: over the limit of {limit} bytes")
    return bytes(data)
