"""The daily health report on a FakeClock: not before ``[report] at``; then once to each
manager's chat (Telegram through the outbox to the fake Bot API, the web chat in its feed),
in each manager's language; never again — not by a second run, not by a second worker on the
same database, not when two workers race; and ``gongdan report --date`` prints it."""

from __future__ import annotations

import asyncio
import copy
import html
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.cli import main
from storage.db import Database
from storage.models import TABLES
from tests.adapters.test_telegram import enabled
from tests.conftest import FakeClock, RunningHub, outbox_drained
from tests.fakes_telegram import FakeBotApi
from tests.kpi_seed import STAFF, local, seed

Start = Callable[..., Awaitable[RunningHub]]
QUIET = {"sla": {"enabled": False}, "maintenance": {"enabled": False}}

EXPECTED_EN = """Daily service report: 2026-12-03
Tickets: 3 opened, 1 closed, 5 open now
First response overdue: 33% (1 of 3)
SLA breaches: 1
Transfers: 0
CSAT: 2.0 (ratings: 1, low: 1)
Top causes: Equipment failure 1
Root causes: 电源模块损坏 1
Preventive maintenance suggested:
· 3号注塑机: 3 tickets in 30 days
Dashboard: http://127.0.0.1:8080/dashboard?from=2026-12-03&to=2026-12-03&lang=en"""


@pytest.fixture
async def telegram() -> AsyncIterator[FakeBotApi]:
    fake = FakeBotApi()
    await fake.start()
    yield fake
    await fake.stop()


def _config(telegram: FakeBotApi) -> dict[str, Any]:
    staff = copy.deepcopy(STAFF)
    for p in staff["people"]:
        if p["id"] == "qian":  # reached on Telegram, reads English
            p["identities"] = ["telegram:77", "web:qian"]
    return {**QUIET, **staff, "telegram": enabled(telegram)["telegram"], "report": {"at": "08:30"}}


async def _feed_texts(db_url: str, conversation: str) -> list[str]:
    db = Database(db_url)
    try:
        async with db.reads() as conn:
            feed = TABLES["webchat_feed"]
            rows = await conn.execute(
                select(feed.c.payload).where(feed.c.conversation == conversation)
            )
            return [p.get("text", "") for (p,) in rows.all()]
    finally:
        await db.dispose()


async def _claims(db_url: str) -> list[tuple[str, str]]:
    db = Database(db_url)
    try:
        async with db.reads() as conn:
            t = TABLES["daily_reports"]
            rows = await conn.execute(select(t.c.day, t.c.chat).order_by(t.c.day, t.c.chat))
            return [(d.isoformat(), c) for d, c in rows.all()]
    finally:
        await db.dispose()


async def test_posted_once_at_the_configured_time_to_each_manager(
    running: Start, db_url: str, telegram: FakeBotApi
) -> None:
    db = Database(db_url)
    await seed(db)
    await db.dispose()
    clock = FakeClock(local(12, 4, 8, 0))
    first = await running(clock=clock, **_config(telegram))

    await first.hub.daily_report()  # 08:00: not yet
    assert await _claims(db_url) == []

    clock.set(local(12, 4, 8, 31))
    await first.hub.daily_report()
    await outbox_drained(first)
    assert await _claims(db_url) == [("2026-12-03", "telegram:77"), ("2026-12-03", "web:zhao")]
    sent = telegram.to("sendMessage", 77)
    # (Telegram gets HTML: the link's ``&`` is escaped.)
    assert [html.unescape(c.params["text"]) for c in sent] == [EXPECTED_EN]
    zh = [t for t in await _feed_texts(db_url, "zhao") if t.startswith("【每日运维报告】")]
    assert len(zh) == 1
    assert zh[0].splitlines()[:3] == [
        "【每日运维报告】2026-12-03",
        "工单：新建 3，关闭 1，当前未完成 5",
        "首次响应超时率：33%（1/3）",
    ]
    assert "满意度：2.0（1 个评分，1 个差评）" in zh[0]
    assert "· 3号注塑机：30 天内 3 次报修" in zh[0]

    # Later the same day, and a second worker on the same database: nothing more.
    clock.advance(hours=3)
    await first.hub.daily_report()
    second = await running(clock=clock, **_config(telegram))
    assert await second.hub.daily_report() == 0
    await outbox_drained(second)
    assert len(telegram.to("sendMessage", 77)) == 1
    assert len([t for t in await _feed_texts(db_url, "zhao") if t.startswith("【每日")]) == 1

    # The next morning both workers race for it: one of them posts to each chat.
    clock.set(local(12, 5, 9, 0))
    posted = await asyncio.gather(first.hub.daily_report(), second.hub.daily_report())
    await outbox_drained(first)
    assert sum(posted) <= 2
    assert [c for c in await _claims(db_url) if c[0] == "2026-12-04"] == [
        ("2026-12-04", "telegram:77"),
        ("2026-12-04", "web:zhao"),
    ]
    texts = [c.params["text"] for c in telegram.to("sendMessage", 77)]
    assert len(texts) == 2 and texts[1].startswith("Daily service report: 2026-12-04")
    assert len([t for t in await _feed_texts(db_url, "zhao") if t.startswith("【每日")]) == 2


async def test_configured_chats_replace_the_managers(
    running: Start, db_url: str, telegram: FakeBotApi
) -> None:
    clock = FakeClock(local(12, 4, 9, 0))
    config = _config(telegram)
    config["report"] = {"at": "08:30", "chats": ["web:managers", "slack:C0OFF"], "locale": "en"}
    hub = await running(clock=clock, **config)
    await hub.hub.daily_report()
    # Slack is not running here: only the web chat's group gets it, in English.
    assert await _claims(db_url) == [("2026-12-03", "web:managers")]
    texts = await _feed_texts(db_url, "managers")
    assert len(texts) == 1 and texts[0].startswith("Daily service report: 2026-12-03")
    assert "Tickets: 0 opened, 0 closed, 0 open now" in texts[0]
    assert telegram.to("sendMessage") == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_report_command_prints_a_day(db_url: str, tmp_path: Path, capsys: Any) -> None:
    db = Database(db_url)
    await seed(db)
    await db.dispose()
    config = tmp_path / "gongdan.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[security]\nsecret_key = "k"\n'
        '[[teams]]\nid = "maint"\nname = "维修组"\n[[teams]]\nid = "net"\nname = "网络组"\n',
        encoding="utf-8",
    )
    run = ["--config", str(config), "report", "--date", "2026-12-03"]
    assert await asyncio.to_thread(main, [*run, "--lang", "en"]) == 0
    assert capsys.readouterr().out == EXPECTED_EN + "\n"
    assert await asyncio.to_thread(main, [*run, "--team", "net"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("【每日运维报告】2026-12-03（net）\n工单：新建 1，关闭 0，当前未完成 1\n")
    assert "预防性维护" not in out  # the suggestion was posted to the maintenance team
    assert (
        await asyncio.to_thread(main, ["--config", str(config), "report", "--date", "12/03"]) == 2
    )
    assert "not a date" in capsys.readouterr().err
    assert await asyncio.to_thread(main, [*run, "--team", "nobody"]) == 2


def test_report_settings_are_checked() -> None:
    from bot.config import load_settings
    from bot.errors import ConfigError

    for bad in ({"at": "8:30"}, {"at": "24:00"}, {"chats": ["nochat"]}, {"colour": 1}):
        with pytest.raises(ConfigError):
            load_settings(None, report=bad)
    assert load_settings(None, report={"at": "23:59"}).report.hour_minute == (23, 59)


async def test_off_means_no_report(running: Start, db_url: str, telegram: FakeBotApi) -> None:
    config = _config(telegram)
    config["report"] = {"enabled": False}
    hub = await running(clock=FakeClock(local(12, 4, 9, 0)), **config)
    assert await hub.hub.daily_report() == 0
    assert await _claims(db_url) == []
    assert "daily-report" not in {job.id for job in hub.hub.scheduler.get_jobs()}
