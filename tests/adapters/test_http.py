"""bot/adapters/http.py against a real aiohttp server on a loopback port: the capped download
and the status → error mapping every adapter shares."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bot.adapters.http import RATE_LIMIT_WAIT, Download, download, retry_after, status_error
from bot.errors import MediaTooLarge, PlatformApiError, RateLimited, TransientSendError
from tests.conftest import free_port
from tests.fakes import serve

LIMIT = 20
VOICE = b"OggS-voice-note"  # under LIMIT


class Files:
    """The file server: one route per answer; bodies that stop half-way until ``release``."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.requests: list[web.Request] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/voice", self._voice)
        app.router.add_get("/announced", self._announced)
        app.router.add_get("/endless", self._endless)
        app.router.add_get("/status/{status}", self._status)
        return app

    async def _voice(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        return web.Response(body=VOICE, content_type="audio/ogg")

    async def _announced(self, request: web.Request) -> web.StreamResponse:
        """Announces a large file, sends a little of it, then stalls."""
        response = web.StreamResponse()
        response.content_length = 10 * LIMIT
        await response.prepare(request)
        await response.write(b"x" * 4)
        await self.release.wait()
        return response

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        """No Content-Length: chunks over the limit, then stalls."""
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(3):
            await response.write(b"y" * 8)
        await self.release.wait()
        return response

    async def _status(self, request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.query.items() if k == "Retry-After"}
        return web.Response(status=int(request.match_info["status"]), headers=headers)


@pytest.fixture
async def files() -> AsyncIterator[tuple[Files, str]]:
    server = Files()
    runner, base = await serve(server.app())
    yield server, base
    server.release.set()
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def fetch(
    http: aiohttp.ClientSession,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    rate_limit_wait: float = RATE_LIMIT_WAIT,
) -> Download:
    async with asyncio.timeout(10):  # a stalled body must never be waited for
        return await download(
            http,
            url,
            limit=LIMIT,
            what="test download",
            headers=headers,
            params=params,
            rate_limit_wait=rate_limit_wait,
        )


async def test_a_file_under_the_limit_comes_with_its_content_type(
    files: tuple[Files, str], http: aiohttp.ClientSession
) -> None:
    server, base = files
    got = await fetch(
        http, base + "/voice", headers={"Authorization": "Bearer t"}, params={"media_id": "m1"}
    )
    assert got == Download(VOICE, "audio/ogg")
    (request,) = server.requests
    assert request.headers["Authorization"] == "Bearer t" and request.query["media_id"] == "m1"


async def test_over_the_limit_by_content_length_is_refused_before_the_body(
    files: tuple[Files, str], http: aiohttp.ClientSession
) -> None:
    _, base = files
    with pytest.raises(MediaTooLarge, match=f"{10 * LIMIT} bytes"):
        await fetch(http, base + "/announced")


async def test_over_the_limit_while_streaming_stops_reading(
    files: tuple[Files, str], http: aiohttp.ClientSession
) -> None:
    _, base = files
    with pytest.raises(MediaTooLarge, match=f"limit of {LIMIT} bytes"):
        await fetch(http, base + "/endless")


async def test_a_429_is_rate_limited_for_its_retry_after(
    files: tuple[Files, str], http: aiohttp.ClientSession
) -> None:
    _, base = files
    with pytest.raises(RateLimited) as limited:
        await fetch(http, base + "/status/429?Retry-After=7")
    assert limited.value.retry_after == 7.0 and limited.value.key is None
    with pytest.raises(RateLimited) as bare:
        await fetch(http, base + "/status/429", rate_limit_wait=2.5)
    assert bare.value.retry_after == 2.5


async def test_a_5xx_is_transient_and_a_4xx_is_refused_with_its_status(
    files: tuple[Files, str], http: aiohttp.ClientSession
) -> None:
    _, base = files
    with pytest.raises(TransientSendError) as unavailable:
        await fetch(http, base + "/status/503")
    assert not isinstance(unavailable.value, RateLimited)
    assert "HTTP 503" in str(unavailable.value)
    with pytest.raises(PlatformApiError) as missing:
        await fetch(http, base + "/status/404")
    assert missing.value.code == 404


async def test_connection_refused_is_transient_and_does_not_repeat_the_url(
    http: aiohttp.ClientSession,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/file?access_token=SECRET"  # nobody listens there
    with pytest.raises(TransientSendError) as refused:
        await fetch(http, url)
    assert "SECRET" not in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_status_error_maps_each_class_of_status() -> None:
    assert status_error(200, "x") is None and status_error(204, "x") is None
    limited = status_error(429, "x", {"Retry-After": "3"})
    assert isinstance(limited, RateLimited) and limited.retry_after == 3.0
    busy = status_error(502, "slack chat.update", detail="bad_gateway")
    assert type(busy) is TransientSendError
    assert str(busy) == "slack chat.update: HTTP 502 bad_gateway"
    refused = status_error(400, "x", code="invalid_blocks")
    assert isinstance(refused, PlatformApiError) and refused.code == "invalid_blocks"
    moved = status_error(302, "x")
    assert isinstance(moved, PlatformApiError) and moved.code == 302


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, RATE_LIMIT_WAIT),
        ({}, RATE_LIMIT_WAIT),
        ({"Retry-After": "12"}, 12.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"Retry-After": "-4"}, 0.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, RATE_LIMIT_WAIT),
    ],
)
def test_retry_after_reads_seconds_or_falls_back(
    headers: dict[str, str] | None, expected: float
) -> None:
    assert retry_after(headers, RATE_LIMIT_WAIT) == expected
