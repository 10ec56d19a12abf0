"""The outbox against a fake platform that rate-limits, fails, then recovers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.adapters.base import RateLimit
from bot.config import OutboxSettings
from bot.events import Text, outbound_to_json
from bot.metrics import Metrics
from bot.outbox import OutboxSender
from storage import outbox
from storage.db import Database
from tests.conftest import eventually
from tests.fakes import FakeAdapter, FakePlatformApi, enqueue, per_second_peak, serve


@pytest.fixture
async def fake_api() -> AsyncIterator[tuple[FakePlatformApi, str]]:
    api = FakePlatformApi()
    runner, url = await serve(api.app())
    yield api, url
    await runner.cleanup()


async def _queue(db: Database, chat: str, n: int, *, dest_platform: str = "fake") -> None:
    async with db.transaction() as s:
        for i in range(n):
            await enqueue(
                s,
                destination=f"{dest_platform}:{chat}",
                op="send",
                payload=outbound_to_json(Text(f"{chat}-{i}")),
                idempotency_key=f"{chat}-{i}",
            )


async def _drain(sender: OutboxSender, db: Database) -> None:
    async def done() -> bool:
        await sender.tick()
        async with db.read() as s:
            counts = await outbox.counts(s)
        return not counts.get("pending") and not counts.get("sending")

    await eventually(done, within=60, what="the outbox to drain")


async def test_429_then_500s_then_ok_delivers_each_once_in_order_within_limits(
    db: Database, fake_api: tuple[FakePlatformApi, str]
) -> None:
    api, url = fake_api
    api.scripts["A"] = [(429, {"Retry-After": "1"})] + [(500, {})] * 3 + [(502, {})]
    adapter = FakeAdapter(url, per_chat=RateLimit("", 4, 1.0))
    metrics = Metrics()
    sender = OutboxSender(
        db, {"fake": adapter}, OutboxSettings(base_delay=0.05, max_delay=0.2), metrics
    )
    await _queue(db, "A", 10)
    await _queue(db, "B", 10)
    await _drain(sender, db)
    await adapter.stop()

    for chat in ("A", "B"):
        delivered = [b["message"]["text"] for b in api.delivered(chat)]
        assert delivered == [f"{chat}-{i}" for i in range(10)]  # each once, in order
        ok_times = [c.at for c in api.calls if c.chat == chat]
        assert per_second_peak(ok_times, 1.0) <= 4 + 1  # the declared limit (+ the 429'd call)
    a_calls = [c for c in api.calls if c.chat == "A"]
    assert [c.status for c in a_calls[:6]] == [429, 500, 500, 500, 502, 200]
    assert a_calls[1].at - a_calls[0].at >= 1.0  # Retry-After was honoured
    async with db.read() as s:
        rows = await outbox.rows(s, destination="fake:A")
    assert {r.state for r in rows} == {"sent"} and rows[0].attempts == 6
    assert rows[0].platform_message_id is not None


async def test_a_refused_message_becomes_a_dead_letter_and_alerts_the_admin_chat(
    db: Database, fake_api: tuple[FakePlatformApi, str]
) -> None:
    api, url = fake_api
    api.scripts["C"] = [(400, {})]
    adapter = FakeAdapter(url)
    metrics = Metrics()
    sender = OutboxSender(
        db, {"fake": adapter}, OutboxSettings(), metrics, admin_chat="fake:admin", locale="en"
    )
    await _queue(db, "C", 2)
    await _drain(sender, db)
    await adapter.stop()

    assert [b["message"]["text"] for b in api.delivered("C")] == ["C-1"]  # the next one still went
    alert = api.delivered("admin")
    assert len(alert) == 1 and "fake:C" in alert[0]["message"]["text"]
    assert b'gongdan_dead_letters_total{platform="fake"} 1.0' in metrics.render()


async def test_transient_failures_give_up_after_max_attempts(
    db: Database, fake_api: tuple[FakePlatformApi, str]
) -> None:
    api, url = fake_api
    api.scripts["D"] = [(503, {})] * 10
    adapter = FakeAdapter(url)
    sender = OutboxSender(
        db,
        {"fake": adapter},
        OutboxSettings(base_delay=0.01, max_delay=0.02, max_attempts=3),
        Metrics(),
    )
    await _queue(db, "D", 1)
    await _drain(sender, db)
    await adapter.stop()
    async with db.read() as s:
        (row,) = await outbox.rows(s, destination="fake:D")
    assert (row.state, row.attempts) == ("dead", 3) and "503" in (row.last_error or "")
    assert len([c for c in api.calls if c.chat == "D"]) == 3
