"""DingTalk Stream mode, on aiohttp: for sites the platform cannot reach over HTTP.

1. ``POST /v1.0/gateway/connections/open`` with the app's credentials and the topics we want
   → ``{endpoint, ticket}`` (a ticket is good for one connection);
2. a websocket to ``endpoint?ticket=…`` (aiohttp pings it every ``heartbeat`` seconds);
3. frames ``{specVersion, type: SYSTEM|EVENT|CALLBACK, headers{messageId, topic, …},
   data: "<JSON string>"}``. Each CALLBACK/EVENT frame is handed to ``handler`` in a task of
   its own (reading goes on meanwhile) and acked — ``{code, headers{contentType, messageId},
   message, data}`` — only once the handler returned, i.e. once the event is stored. A handler
   that raises ``BadRequest`` gets a 400 ack (redelivering it would not help); any other
   failure sends no ack, and DingTalk delivers the frame again.
4. SYSTEM ``ping`` is answered at once; SYSTEM ``disconnect`` (the gateway is about to close)
   lets acks in flight finish, then a new connection opens with a new ticket. Lost connections
   and failed opens are retried with exponential backoff and jitter.

The official SDK (``dingtalk-stream``) does the same over ``websockets`` but opens connections
with synchronous ``requests`` inside ``async`` code, which would stall our event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from bot.adapters.body import loads_object
from bot.errors import AdapterError, BadRequest

__all__ = ["Frame", "StreamClient", "ack_of"]

log = logging.getLogger(__name__)

_DISCONNECT = frozenset({"disconnect", "TAG_DISCONNECT"})
_DRAIN_S = 5.0


@dataclass(frozen=True, slots=True)
class Frame:
    type: str  # SYSTEM | EVENT | CALLBACK
    topic: str
    message_id: str
    data: str  # a JSON string

    @classmethod
    def parse(cls, raw: str) -> Frame:
        d = loads_object(raw, what="stream frame")  # (within the JSON depth limit)
        headers, data = d.get("headers") or {}, d.get("data")
        if not isinstance(headers, dict):
            raise BadRequest("unreadable stream frame: headers is not an object")
        return cls(
            type=str(d.get("type") or ""),
            topic=str(headers.get("topic") or ""),
            message_id=str(headers.get("messageId") or ""),
            data=data if isinstance(data, str) else "{}",
        )


def ack_of(frame: Frame, code: int, message: str, data: str) -> dict[str, Any]:
    return {
        "code": code,
        "headers": {"contentType": "application/json", "messageId": frame.message_id},
        "message": message,
        "data": data,
    }


#: Stores a frame; returns what the ack's ``data.response`` carries (e.g. a card update).
Handler = Callable[[Frame], Awaitable[Any]]
#: Opens a connection: returns ``(endpoint, ticket)``.
Opener = Callable[[], Awaitable[tuple[str, str]]]


class StreamClient:
    def __init__(
        self,
        open_connection: Opener,
        handler: Handler,
        *,
        backoff: tuple[float, float] = (1.0, 60.0),
        heartbeat: float = 60.0,
    ) -> None:
        self._open = open_connection
        self._handler = handler
        self._backoff = backoff
        self._heartbeat = heartbeat
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self.connections = 0  # websockets opened so far (for operators and tests)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dingtalk-stream")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for t in list(self._inflight):
            t.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def _run(self) -> None:
        self._http = aiohttp.ClientSession()
        failures = 0
        while True:
            try:
                endpoint, ticket = await self._open()
                url = URL(endpoint).update_query(ticket=ticket)
                async with self._http.ws_connect(url, heartbeat=self._heartbeat) as ws:
                    self.connections += 1
                    log.info("dingtalk stream: connected (%d)", self.connections)
                    clean, read_any = await self._read(ws)
                failures = 0 if read_any else failures + 1
                if clean:
                    continue  # the gateway asked us to move: reconnect at once
                log.warning("dingtalk stream: the connection was lost; reconnecting")
            except (AdapterError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                failures += 1
                log.warning("dingtalk stream: cannot connect (%r)", exc)
            except Exception:  # the loop must outlive a surprise, or no event arrives again
                failures += 1
                log.exception("dingtalk stream: unexpected error; reconnecting")
            low, high = self._backoff
            ceiling = min(high, low * 2 ** max(0, failures - 1))
            await asyncio.sleep(ceiling / 2 + random.uniform(0, ceiling / 2))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> tuple[bool, bool]:
        """Frames until the socket ends; (whether the gateway said disconnect, any frame)."""
        send_lock, read_any = asyncio.Lock(), False
        mine: set[asyncio.Task[None]] = set()
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                frame = Frame.parse(msg.data)
            except BadRequest as exc:
                log.warning("dingtalk stream: %s", exc)
                continue
            read_any = True
            if frame.type == "SYSTEM":
                await _send(ws, send_lock, ack_of(frame, 200, "OK", frame.data))
                if frame.topic in _DISCONNECT:
                    log.info("dingtalk stream: the gateway asked us to reconnect")
                    if mine:  # let the acks in flight go out on this connection
                        await asyncio.wait(mine, timeout=_DRAIN_S)
                    return True, read_any
                if frame.topic != "ping":
                    log.debug("dingtalk stream: system frame %r", frame.topic)
                continue
            task = asyncio.create_task(self._dispatch(ws, send_lock, frame))
            for group in (mine, self._inflight):
                group.add(task)
                task.add_done_callback(group.discard)
        return False, read_any

    async def _dispatch(
        self, ws: aiohttp.ClientWebSocketResponse, lock: asyncio.Lock, frame: Frame
    ) -> None:
        try:
            response = await self._handler(frame)
        except BadRequest as exc:
            log.warning("dingtalk stream: frame %s refused: %s", frame.message_id, exc)
            await _send(ws, lock, ack_of(frame, 400, str(exc), json.dumps({"response": None})))
            return
        except Exception:
            log.exception(
                "dingtalk stream: frame %s (%s) could not be stored; not acked, DingTalk will "
                "deliver it again",
                frame.message_id,
                frame.topic,
            )
            return
        if frame.type == "EVENT":
            data = json.dumps({"status": "SUCCESS", "message": "success"})
        else:
            data = json.dumps({"response": response}, ensure_ascii=False)
        await _send(ws, lock, ack_of(frame, 200, "OK", data))


async def _send(
    ws: aiohttp.ClientWebSocketResponse, lock: asyncio.Lock, ack: dict[str, Any]
) -> None:
    try:
        async with lock:
            await ws.send_str(json.dumps(ack, ensure_ascii=False))
    except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
        # The connection is gone: the frame is delivered again (and the inbox drops it).
        log.info("dingtalk stream: ack for %s not sent (%r)", ack["headers"]["messageId"], exc)
