"""A small DingTalk HTTP client on aiohttp: access tokens, OpenAPI calls, session webhooks.

Nothing here retries or sleeps: each answer is translated once into our error tree and the
outbox owns retries and backoff. How DingTalk answers:

- ``api.dingtalk.com`` (v1.0 OpenAPI): HTTP 200 with a JSON body, or 4xx/5xx with
  ``{code, message, requestid}``. A QPS limit is HTTP 403 with a ``…QpsLimit…`` code (or 429):
  ``RateLimited`` for a second (or ``Retry-After``). A 401 means the access token went stale:
  it is dropped and the call is worth another try.
- ``oapi.dingtalk.com`` (session webhooks): HTTP 200 with ``{errcode, errmsg}``; ``130101``
  ("send too fast") is ``RateLimited`` for ``rate_limit_backoff`` seconds, ``-1`` (busy) is
  transient.

The access token (``POST /v1.0/oauth2/accessToken``) is cached until five minutes before it
expires and fetched once for everyone waiting on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from bot.adapters.http import download, status_error
from bot.config import DingtalkSettings
from bot.errors import (
    AdapterError,
    PlatformApiError,
    RateLimited,
    TransientSendError,
)

__all__ = ["OpenApi"]

log = logging.getLogger(__name__)

TOKEN_HEADER = "x-acs-dingtalk-access-token"
_TOKEN_MARGIN_S = 300.0
#: 130101: "send too fast, exceed 20 times per minute" (then throttled for minutes).
_RATE_LIMITED_ERRCODES = frozenset({130101})
_BUSY_ERRCODES = frozenset({-1})
#: A QPS limit is counted per second: a short wait is enough (unless Retry-After says more).
_QPS_BACKOFF_S = 1.0
_TIMEOUT = aiohttp.ClientTimeout(total=15)


class OpenApi:
    def __init__(
        self, settings: DingtalkSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        assert settings.client_secret is not None
        self._settings = settings
        self._app_key = settings.client_id
        self._app_secret = settings.client_secret.get_secret_value()
        self._base = settings.api_base_url.rstrip("/")
        self._clock = clock
        self._token: tuple[str, float] | None = None  # (token, valid until, monotonic)
        self._token_lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=_TIMEOUT)
        return self._http

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    # ------------------------------------------------------------------------------ token

    async def access_token(self) -> str:
        async with self._token_lock:
            if self._token is not None and self._clock() < self._token[1]:
                return self._token[0]
            answer = await self._request(
                "POST",
                "/v1.0/oauth2/accessToken",
                {"appKey": self._app_key, "appSecret": self._app_secret},
                token=None,
            )
            token, expire_in = answer.get("accessToken"), answer.get("expireIn")
            if not isinstance(token, str) or not isinstance(expire_in, int):
                raise TransientSendError("dingtalk accessToken: an answer without a token")
            self._token = (token, self._clock() + max(60.0, expire_in - _TOKEN_MARGIN_S))
            return token

    # ------------------------------------------------------------------------------- calls

    async def call(self, method: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """An OpenAPI call with the access token."""
        return await self._request(method, path, body, token=await self.access_token())

    async def open_connection(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Stream mode's ``POST /v1.0/gateway/connections/open`` (credentials in the body)."""
        return await self._request("POST", "/v1.0/gateway/connections/open", body, token=None)

    async def _request(
        self, method: str, path: str, body: Mapping[str, Any], *, token: str | None
    ) -> dict[str, Any]:
        what = f"dingtalk {method} {path}"
        headers = {TOKEN_HEADER: token} if token else {}
        try:
            async with self.http.request(
                method, self._base + path, json=dict(body), headers=headers
            ) as r:
                data = await _json(r)
                status, retry_after = r.status, r.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientSendError(f"{what}: {exc!r}") from exc
        if status == 401 and token is not None:
            self._token = None
            raise TransientSendError(f"{what}: the access token was refused; fetching a new one")
        if (error := self._http_error(what, status, data, retry_after)) is not None:
            raise error
        return _checked(what, data, self._backoff(retry_after))

    async def post_webhook(self, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A message to a ``sessionWebhook`` (no access token: the URL is the credential)."""
        try:
            async with self.http.post(url, json=dict(body)) as r:
                data = await _json(r)
                status, retry_after = r.status, r.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientSendError(f"dingtalk session webhook: {exc!r}") from exc
        error = self._http_error("dingtalk session webhook", status, data, retry_after)
        if error is not None:
            raise error
        return _checked("dingtalk session webhook", data, self._backoff(retry_after))

    async def fetch(self, url: str, limit: int) -> bytes:
        """GET a file (a pre-signed ``downloadUrl``), at most ``limit`` bytes."""
        wait = self._settings.rate_limit_backoff
        got = await download(
            self.http, url, limit=limit, what="dingtalk download", rate_limit_wait=wait
        )
        return got.data

    # ----------------------------------------------------------------------------- errors

    def _backoff(self, retry_after: str | None, default: float | None = None) -> float:
        with contextlib.suppress(TypeError, ValueError):
            return max(0.0, float(retry_after))  # type: ignore[arg-type]
        return self._settings.rate_limit_backoff if default is None else default

    def _http_error(
        self, what: str, status: int, data: dict[str, Any], retry_after: str | None
    ) -> AdapterError | None:
        """None for a success (its ``errcode`` is read by ``_checked``); DingTalk's rate limits,
        then what the status means everywhere."""
        if status < 300:
            return None
        code = str(data.get("code") or data.get("errcode") or status)
        message = str(data.get("message") or data.get("errmsg") or "")
        throttled = "qpslimit" in code.lower() or "限流" in message or "QPS" in message.upper()
        if code == "130101":  # per conversation, for a minute or more
            return RateLimited(self._backoff(retry_after), f"{what}: {code} {message}")
        if status == 429 or (status == 403 and throttled):  # per second, for the whole app
            wait = self._backoff(retry_after, _QPS_BACKOFF_S)
            return RateLimited(wait, f"{what}: {code} {message}".rstrip(), key="dingtalk:app")
        return status_error(status, what, code=code, detail=f"{code} {message}")


async def _json(r: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = await r.json(content_type=None)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _checked(what: str, data: dict[str, Any], backoff: float) -> dict[str, Any]:
    """An HTTP 200 may still carry an ``errcode`` (old-style APIs and session webhooks)."""
    errcode = data.get("errcode", 0)
    if errcode in (0, "0", None):
        return data
    message = str(data.get("errmsg") or "")
    code = int(errcode) if str(errcode).lstrip("-").isdigit() else errcode
    if code in _RATE_LIMITED_ERRCODES:
        raise RateLimited(backoff, f"{what}: {code} {message}")
    if code in _BUSY_ERRCODES:
        raise TransientSendError(f"{what}: {code} {message}")
    raise PlatformApiError(code, f"{what}: {message}")
