"""Thin aiohttp calls to WeCom's server API, with the access token cached and errors mapped.

``access_token`` comes from ``GET /cgi-bin/gettoken?corpid&corpsecret`` and is cached for its
``expires_in`` (7200 s) less a margin; when WeCom says it is invalid or expired (errcode 40014,
42001, 42007) it is fetched again and the call is retried once.

WeCom answers errors inside HTTP 200 (``{"errcode": …, "errmsg": …}``); they are mapped onto
``bot.errors`` for the outbox: rate limits (45009, 45011, 45033) → ``RateLimited``; system busy
(-1), HTTP 5xx/429, timeouts and connection errors → ``TransientSendError``; anything else →
``PlatformApiError(errcode)``. Nothing here retries or sleeps beyond the one token refresh: the
outbox owns retries. URLs carry the token, so they are never put into messages or logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.adapters.http import download, status_error
from bot.errors import AdapterError, PlatformApiError, RateLimited, TransientSendError

__all__ = ["TOKEN_ERRORS", "WecomApi", "api_error"]

#: access_token invalid (40014), expired (42001), or refreshed elsewhere (42007).
TOKEN_ERRORS = frozenset({40014, 42001, 42007})
#: errcode → seconds to wait: API frequency (45009: e.g. a robot's 20/min), calls too frequent
#: (45011), concurrent calls over the limit (45033).
RATE_LIMITS: Mapping[int, float] = {45009: 60.0, 45011: 30.0, 45033: 1.0}
TRANSIENT = frozenset({-1})
TOKEN_MARGIN_S = 300.0
_TIMEOUT = aiohttp.ClientTimeout(total=15)


def api_error(what: str, errcode: int, errmsg: str) -> AdapterError:
    """WeCom's ``errcode`` as an error the outbox knows how to treat."""
    if errcode in RATE_LIMITS:
        return RateLimited(RATE_LIMITS[errcode], f"wecom {what}: {errcode} {errmsg}")
    if errcode in TRANSIENT:
        return TransientSendError(f"wecom {what}: system busy ({errcode})")
    return PlatformApiError(errcode, f"wecom {what}: {errmsg}")


@dataclass
class _Token:
    value: str
    expires_at: float


class WecomApi:
    def __init__(
        self,
        base_url: str,
        corp_id: str,
        secret: str | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._corp_id = corp_id
        self._secret = secret
        self._clock = clock
        self._token: _Token | None = None
        self._lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=_TIMEOUT)

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[aiohttp.ClientSession]:
        if self._http is not None:
            yield self._http
            return
        async with aiohttp.ClientSession(timeout=_TIMEOUT) as http:  # not started: one call
            yield http

    # --------------------------------------------------------------------------- tokens

    async def access_token(self, *, stale: str | None = None) -> str:
        """The cached token; a fresh one if it expired or equals ``stale`` (rejected)."""
        async with self._lock:
            token = self._token
            if token is None or token.value == stale or self._clock() >= token.expires_at:
                token = self._token = await self._fetch_token()
            return token.value

    async def _fetch_token(self) -> _Token:
        if self._secret is None:
            raise PlatformApiError("no_secret", "wecom: [wecom] secret is not configured")
        data = await self._request(
            "GET",
            "/cgi-bin/gettoken",
            "gettoken",
            params={"corpid": self._corp_id, "corpsecret": self._secret},
        )
        value = data.get("access_token")
        if not isinstance(value, str) or not value:
            raise TransientSendError("wecom gettoken: no access_token in the answer")
        lifetime = float(data.get("expires_in") or 7200)
        margin = min(TOKEN_MARGIN_S, lifetime / 2)
        return _Token(value, self._clock() + lifetime - margin)

    # ---------------------------------------------------------------------------- calls

    async def call(
        self,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST ``body`` (or GET without one) with the access token; one retry on a token error."""
        what = path.rsplit("/cgi-bin/", 1)[-1]
        token = await self.access_token()
        for attempt in (1, 2):
            try:
                return await self._request(
                    "POST" if body is not None else "GET",
                    path,
                    what,
                    params={**(params or {}), "access_token": token},
                    body=body,
                )
            except PlatformApiError as exc:
                if attempt == 2 or exc.code not in TOKEN_ERRORS:
                    raise
                token = await self.access_token(stale=token)
        raise AssertionError("unreachable")  # pragma: no cover

    async def post_url(self, url: str, body: Mapping[str, Any], what: str) -> dict[str, Any]:
        """POST to a full URL that authenticates itself (robot webhook, AI-bot response_url)."""
        return await self._request("POST", url, what, body=body)

    async def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        url = path if urlsplit(path).scheme else self.base_url + path
        payload = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"} if payload else {}
        try:
            async with (
                self._session() as http,
                http.request(method, url, params=params, data=payload, headers=headers) as r,
            ):
                if (error := status_error(r.status, f"wecom {what}", r.headers)) is not None:
                    raise error
                raw = await r.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientSendError(f"wecom {what}: {type(exc).__name__}") from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise TransientSendError(f"wecom {what}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise TransientSendError(f"wecom {what}: the answer is not a JSON object")
        code = int(data.get("errcode") or 0)
        if code:
            raise api_error(what, code, str(data.get("errmsg") or ""))
        return data

    # ------------------------------------------------------------------------- media

    async def download(self, media_id: str, limit: int) -> bytes:
        """``GET /cgi-bin/media/get``: the file's bytes, or WeCom's JSON error mapped."""
        token = await self.access_token()
        for attempt in (1, 2):
            try:
                return await self._download(media_id, token, limit)
            except PlatformApiError as exc:
                if attempt == 2 or exc.code not in TOKEN_ERRORS:
                    raise
                token = await self.access_token(stale=token)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _download(self, media_id: str, token: str, limit: int) -> bytes:
        params = {"access_token": token, "media_id": media_id}
        url = self.base_url + "/cgi-bin/media/get"
        async with self._session() as http:
            got = await download(http, url, limit=limit, what="wecom media/get", params=params)
        if got.content_type in ("application/json", "text/plain") and got.data[:1] == b"{":
            try:  # an error answer instead of the file
                answer = json.loads(got.data)
            except ValueError:
                return got.data
            code = int(answer.get("errcode") or 0) if isinstance(answer, dict) else 0
            if code:
                raise api_error("media/get", code, str(answer.get("errmsg") or ""))
        return got.data
