"""Durable intake of verified inbound events, with group commit.

An adapter calls ``await inbox.accept(events)`` and answers the platform only after it returns:
by then the events are committed. Requests arriving together share one INSERT and one commit
(a writer task drains whatever queued up while the previous commit ran), which is what lets a
single SQLite file take thousands of events per second with low answer latency; one
transaction per request tops out near 600/s on the same machine. On SQLite the writer takes
the write gate's urgent lane: it waits for at most the one transaction in progress.

Every event passes one ``TextCap`` on its way in, whatever its platform: a text over
``[limits] text_chars`` is cut with a visible "…(已截断)" and kept whole (up to
``attachment_chars``) as the message's ``full_text``; strings lose what no database stores (NUL,
lone surrogates); ids longer than their columns are refused (``BadRequest``). Adapters that
acknowledge and drop a malformed event say so with ``note``, which counts it in metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError

from bot.config import Settings
from bot.errors import BadRequest
from bot.events import (
    Action,
    Image,
    Inbound,
    Message,
    Sender,
    Voice,
    inbound_from_json,
    inbound_kind,
    inbound_to_json,
)
from bot.metrics import Metrics
from bot.texts import say
from storage import inbound
from storage.db import Database
from storage.inbound import InboundRow

__all__ = ["Accepted", "Inbox", "TextCap"]

log = logging.getLogger(__name__)
_MAX_BATCH = 500
_FULL = 32  # requests queued that make a commit worth it at once
#: The longest ids and names the tables hold (storage/models.py: inbound_events, identities).
_ID_CHARS = {"event id": 300, "chat id": 300, "user id": 200}
_NAME_CHARS = 200
#: Room in a raw payload for the envelope around the longest text it may carry.
_RAW_SLACK = 8192


@dataclass(frozen=True, slots=True)
class TextCap:
    """What the inbox keeps of each event's texts: the same for every platform.

    ``Message.text`` over ``text_chars`` is cut and ends with "…(已截断)" / "…(truncated)" in
    the sender's language (their ``locale`` in the config, else the platform's hint, else
    ``locale``), and the whole text rides along as ``full_text`` (itself cut, with the same
    mark, at ``attachment_chars``; 0 keeps none). A note typed with a press and a platform's
    transcript of a voice note are cut the same way, without a copy. A sender's name is clipped
    to what the directory stores; the raw payload is kept up to ``raw_chars``.
    """

    text_chars: int = 4000
    attachment_chars: int = 100_000
    locale: str = "zh"
    people: Mapping[str, str] = field(default_factory=dict)  # "platform:user id" → locale

    @classmethod
    def of(cls, settings: Settings) -> TextCap:
        people = {ref: p.locale for p in settings.people if p.locale for ref in p.identities}
        limits = settings.limits
        return cls(limits.text_chars, limits.attachment_chars, settings.locale, people)

    @property
    def raw_chars(self) -> int:
        return self.text_chars + self.attachment_chars + _RAW_SLACK

    def mark(self, sender: Sender) -> str:
        locale = self.people.get(f"{sender.platform}:{sender.user_id}")
        hint = (sender.locale or "").lower()
        if locale is None and hint[:2] in ("zh", "en"):
            locale = hint[:2]
        return say("text.truncated", locale or self.locale)

    def apply(self, event: Inbound) -> Inbound:
        """``event`` with its texts within the limits (itself when they are)."""
        changes: dict[str, Any] = {}
        sender = event.sender
        if len(sender.name) > _NAME_CHARS:
            changes["sender"] = replace(sender, name=sender.name[:_NAME_CHARS])
        limit = self.text_chars
        if isinstance(event, Message) and len(event.text) > limit:
            mark = self.mark(sender)
            changes["text"] = _cut(event.text, limit, mark)
            if self.attachment_chars > 0:
                changes["full_text"] = _cut(event.text, self.attachment_chars, mark)
        elif isinstance(event, Action) and event.note is not None and len(event.note) > limit:
            changes["note"] = _cut(event.note, limit, self.mark(sender))
        elif isinstance(event, Image) and len(event.caption) > limit:
            changes["caption"] = _cut(event.caption, limit, self.mark(sender))
        elif isinstance(event, Voice) and len(event.platform_transcript or "") > limit:
            changes["platform_transcript"] = _cut(
                event.platform_transcript or "", limit, self.mark(sender)
            )
        return replace(event, **changes) if changes else event


def _cut(text: str, limit: int, mark: str) -> str:
    """``text`` within ``limit`` characters, ending with ``mark`` if it was cut."""
    if len(text) <= limit:
        return text
    if limit <= len(mark):
        return text[:limit]
    return text[: limit - len(mark)] + mark


def _clean_text(text: str) -> str:
    """``text`` without what no database takes: NUL characters and lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _storable(payload: dict[str, Any]) -> bool:
    """Whether ``payload`` holds no NUL and no lone surrogate (one pass in C: orjson refuses a
    lone surrogate and writes a NUL as an escape; a typed "\\u0000" only costs the slow way)."""
    try:
        return b"\\u0000" not in orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return False


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return {_clean_text(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _checked(event: Inbound) -> Inbound:
    for what, value in (
        ("event id", event.event_id),
        ("chat id", event.chat.chat_id),
        ("user id", event.sender.user_id),
    ):
        if not value:
            raise BadRequest(f"{event.platform}: the {what} is empty")
        if len(value) > _ID_CHARS[what]:
            raise BadRequest(f"{event.platform}: the {what} is longer than {_ID_CHARS[what]}")
    return event


@dataclass(frozen=True, slots=True)
class Accepted:
    event_id: str
    new: bool  # False: a retry or a replay of an event already stored


@dataclass(slots=True)
class _Pending:
    rows: list[InboundRow]
    done: asyncio.Future[set[tuple[str, str]]]


def lane_of(event: Inbound) -> str | None:
    """The order an event keeps: its chat's (voice notes and pictures, fetched on the side,
    keep none)."""
    return None if isinstance(event, Voice | Image) else event.chat.ref


class Inbox:
    def __init__(
        self,
        db: Database,
        on_stored: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
        *,
        window: float = 0.0,
        cap: TextCap | None = None,
    ) -> None:
        """``window``: seconds a commit waits for more events to join it (0: none); ``cap``:
        the text limits (``TextCap.of(settings)``; the defaults of ``[limits]`` if None)."""
        self._db = db
        self.cap = cap or TextCap()
        self._window = window
        self._on_stored = on_stored
        self._metrics = metrics
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._committing = False
        self._committed = asyncio.Event()
        self._last_event = -math.inf  # (monotonic) when ``accept`` was last given events
        self.closed = False

    async def accept(self, events: Sequence[Inbound], raw: str | None = None) -> list[Accepted]:
        """Store ``events`` durably (within the ``TextCap``); return once committed. Raises
        ``BadRequest`` for an event no table can hold, anything else if storing failed."""
        if self.closed:
            raise RuntimeError("inbox is closed")
        if raw is not None:
            raw = _cut(_clean_text(raw), self.cap.raw_chars, "…")
        rows = [self._row(self.cap.apply(e), raw) for e in events]
        if not rows:
            return []
        self._last_event = time.monotonic()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="inbox-writer")
        pending = _Pending(rows, asyncio.get_running_loop().create_future())
        await self._queue.put(pending)
        new = await pending.done
        accepted = [Accepted(r.event_id, (r.platform, r.event_id) in new) for r in rows]
        if self._metrics is not None:
            for r, a in zip(rows, accepted, strict=True):
                self._metrics.inbound.labels(r.platform, "stored" if a.new else "duplicate").inc()
        return accepted

    def _row(self, event: Inbound, raw: str | None) -> InboundRow:
        payload = inbound_to_json(event)
        if not _storable(payload):  # (rare: only a NUL or a lone surrogate makes a difference)
            payload = _clean(payload)
            event = inbound_from_json(payload)
        _checked(event)
        return InboundRow(
            platform=event.platform,
            event_id=event.event_id,
            kind=inbound_kind(event),
            payload=payload,
            raw=raw,
            received_at=event.received_at,
            lane=lane_of(event),
            sender_platform=event.sender.platform,
            sender_id=event.sender.user_id,
        )

    def note(self, platform: str, outcome: str) -> None:
        """Count an inbound request that stored nothing (e.g. "malformed": acknowledged to the
        platform, so that it stops retrying, and dropped)."""
        if self._metrics is not None:
            self._metrics.inbound.labels(platform, outcome).inc()

    def quiet_for(self) -> float:
        """Seconds since the intake was last given an event."""
        return time.monotonic() - self._last_event

    async def wait_turn(self) -> None:
        """Return when the intake has no commit due: at once if idle, else after its next
        commit. The engine calls it before each unit, so intake and engine take turns at the
        write lock and an answer never waits behind more than one unit of work."""
        if self._committing or not self._queue.empty():
            self._committed.clear()
            await self._committed.wait()

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            if self._window and self._queue.qsize() < _FULL:
                # A moment for others to join: each commit costs the same whether it stores
                # one event or fifty, and on one core that cost is what processing lacks.
                await asyncio.sleep(self._window)
            batch, count = [first], len(first.rows)
            while not self._queue.empty() and count < _MAX_BATCH:
                nxt = self._queue.get_nowait()
                batch.append(nxt)
                count += len(nxt.rows)
            self._committing = True
            try:
                await self._commit(batch)
            finally:
                self._committing = False
                self._committed.set()
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[_Pending]) -> None:
        # The same event may arrive twice in one batch (a fast platform retry): store it once.
        unique: dict[tuple[str, str], InboundRow] = {}
        for p in batch:
            for r in p.rows:
                unique.setdefault((r.platform, r.event_id), r)
        try:
            new = await self._insert(list(unique.values()))
        except Exception as exc:  # every waiter learns it failed and answers the platform 5xx
            log.exception("storing %d inbound events failed", len(unique))
            for p in batch:
                if not p.done.done():
                    p.done.set_exception(exc)
            return
        claimed: set[tuple[str, str]] = set()
        for p in batch:
            mine = {(r.platform, r.event_id) for r in p.rows} & (new - claimed)
            claimed |= mine
            if not p.done.done():
                p.done.set_result(mine)
        self._on_stored()

    async def _insert(self, rows: list[InboundRow]) -> set[tuple[str, str]]:
        """Store ``rows`` in one statement (on PostgreSQL in autocommit: a batch beyond
        SQLAlchemy's page of 1,000 rows would be two, and if the second failed nobody is
        answered, so the platform sends all again and the first part is not stored twice)."""
        try:
            async with self._db.store() as conn:
                return await inbound.insert(conn, rows)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        # The pooled connection was dead (the database restarted; nothing was stored on it):
        # once more, on a fresh one.
        async with self._db.store() as conn:
            return await inbound.insert(conn, rows)

    async def close(self) -> None:
        """Refuse new events, let the writer commit what it already accepted, stop it."""
        self.closed = True
        if self._writer is not None:
            if not self._writer.done():
                await self._queue.join()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self._committed.set()


def raw_json(body: object) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
