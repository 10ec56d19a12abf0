"""A fake platform API returning 429 for a group: nags arrive as digests, none lost.

Customers report faults on Telegram; nobody has capacity, so the tickets stay unassigned and
their escalations go to the team's Telegram group. While that group answers 429 (retry_after),
the nags wait in the outbox; each later sweep takes the waiting ones back and queues one digest
instead. Once the 429 clears, every ticket's nag reaches the group, once.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.tickets import Priority
from storage import outbox as outbox_table
from tests.adapters.telegram_driver import SECRET
from tests.adapters.test_telegram import CUSTOMER, TEAM, deliver, says
from tests.conftest import STAFF, FakeClock, RunningHub, eventually, outbox_drained
from tests.fakes_telegram import TOKEN, Call, FakeBotApi, _Scripted

Start = Callable[..., Awaitable[RunningHub]]
#: PTB warns about its own int → timedelta migration whenever it builds a RetryAfter.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

NUMBER = re.compile(r"\bGD-(\d+)\b")
DIGEST = "⏰ 时限提醒"
#: Where the tickets' clock starts: an hour ago, on the minute (the outbox and the rate limits
#: keep wall-clock time).
T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)


@dataclass
class ThrottledBotApi(FakeBotApi):
    """The fake Bot API, and chats for which every call answers 429 until released."""

    held: dict[int, int] = field(default_factory=dict)  # chat id → retry_after

    def hold(self, chat_id: int, retry_after: int = 2) -> None:
        self.held[chat_id] = retry_after

    def release(self, chat_id: int) -> None:
        self.held.pop(chat_id, None)

    def _scripted(self, method: str, params: dict[str, Any]) -> _Scripted | None:
        chat = params.get("chat_id")
        retry = self.held.get(int(chat)) if str(chat).lstrip("-").isdigit() else None
        if retry is not None:
            reason = f"Too Many Requests: retry after {retry}"
            return _Scripted(429, reason, {"retry_after": retry}, chat)
        return super()._scripted(method, params)

    def refused(self, chat_id: int) -> list[Call]:
        """Calls of any method to ``chat_id`` that were answered 429."""
        return [
            c
            for c in self.calls
            if c.status == 429 and str(c.params.get("chat_id")) == str(chat_id)
        ]


def unstaffed() -> dict[str, Any]:
    """The test staff on Telegram, with no engineer taking new tickets (``max_open = 0``);
    the team's group is a Telegram supergroup. The lead has no Telegram identity, so group
    posts carry no mention in front."""
    people = copy.deepcopy(STAFF["people"])
    for p in people:
        if p["role"] == "engineer":
            p["max_open"] = 0
    people[0]["identities"] = ["telegram:42", "web:li"]
    teams = copy.deepcopy(STAFF["teams"])
    teams[0]["chats"] = [f"telegram:{TEAM['id']}"]
    return {"people": people, "teams": teams}


def sla(**extra: Any) -> dict[str, Any]:
    """Respond in 10 minutes, round the clock, whatever the priority; no warnings; on breach
    one step: post in the team's group."""
    policy = {"respond": "10m", "arrive": "off", "resolve": "off", "calendar": "24x7"}
    return {
        "sweep_seconds": 3600,  # the test sweeps, at the moments it chooses
        "warn_at": [],
        "stay": {},
        "policies": {p.value: policy for p in Priority},
        "chains": {"default": {"steps": [{"do": "post_team"}], "repeat": 0}},
        **extra,
    }


def telegram(api: FakeBotApi) -> dict[str, Any]:
    return {
        "enabled": True,
        "bot_token": TOKEN,
        "webhook_secret": SECRET,
        "api_base_url": api.base_url,
    }


@pytest.fixture
async def api() -> AsyncIterator[ThrottledBotApi]:
    fake = ThrottledBotApi()
    await fake.start()
    yield fake
    await fake.stop()


def nags_in_group(api: FakeBotApi) -> list[str]:
    """Texts of the SLA messages the team's group received (not its ticket cards)."""
    return [
        str(c.params["text"])
        for c in api.to("sendMessage", TEAM["id"])
        if str(c.params["text"]).startswith("⏰")
    ]


async def outbox(hub: RunningHub) -> dict[str, int]:
    async with hub.hub.db.read() as s:
        return await outbox_table.counts(s)


async def report_at(hub: RunningHub, clock: FakeClock, minutes: list[int]) -> list[str]:
    """One fault report per entry, each reported at T0 + that many minutes; the numbers."""
    numbers: list[str] = []
    for i, m in enumerate(minutes):
        clock.set(T0 + timedelta(minutes=m))
        text = f"{i + 1}号注塑机停机了，报警E1{i:02d}，在二车间"
        # Each from another customer, in a direct chat: their answers go out side by side.
        user = {**CUSTOMER, "id": CUSTOMER["id"] + i, "first_name": f"客户{i + 1}"}
        chat = {"id": user["id"], "first_name": user["first_name"], "type": "private"}
        assert await deliver(hub, says(user, chat, text)) == 200

        async def created(n: int = i + 1) -> list[dict[str, Any]] | None:
            tickets = (await hub.api("/api/tickets"))["tickets"]
            return tickets if len(tickets) == n else None

        tickets = await eventually(created, what=f"ticket {i + 1}")
        newest = max(tickets, key=lambda t: t["id"])
        assert newest["assignee"] is None and newest["state"] == "new"
        numbers.append(newest["number"])
    return numbers


async def escalations(hub: RunningHub, number: str) -> list[dict[str, Any]]:
    events = (await hub.api(f"/api/tickets/{number}"))["events"]
    return [e for e in events if e["kind"] == "sla_escalation"]


async def sweep_at(hub: RunningHub, clock: FakeClock, minutes: int) -> int:
    clock.set(T0 + timedelta(minutes=minutes))
    handled = await hub.hub.sla_sweep()
    hub.hub.sender.wake.set()
    return handled


async def throttled_run(
    running: Start, api: ThrottledBotApi, reported: list[int], sweeps: list[int], **extra: Any
) -> tuple[RunningHub, list[str]]:
    """Report at ``reported`` minutes, hold the group, sweep at ``sweeps`` minutes (waiting
    for the first nag to be refused before the second sweep), then release the group."""
    clock = FakeClock(T0)
    settings = {"telegram": telegram(api), **unstaffed(), "sla": sla(**extra)}
    hub = await running(clock=clock, **settings)
    numbers = await report_at(hub, clock, reported)
    await outbox_drained(hub)  # acknowledgements and ticket cards are out before the group is held
    assert nags_in_group(api) == []

    async def refused() -> bool:
        return bool(api.refused(TEAM["id"]))

    api.hold(TEAM["id"], retry_after=2)
    due = Counter(m + 10 for m in reported)
    for k, minutes in enumerate(sweeps):
        assert await sweep_at(hub, clock, minutes) == due[minutes]
        if k == 0:  # the group was tried and refused: what waits for it waits out the 429
            await eventually(refused, what="a 429 from the group")
    for number in numbers:
        (step,) = await escalations(hub, number)
        assert step["data"]["do"] == "post_team"
        assert step["data"]["to"] == [f"telegram:{TEAM['id']}"]
    assert nags_in_group(api) == []  # nothing got through the 429

    api.release(TEAM["id"])
    return hub, numbers


def numbers_in(texts: list[str]) -> Counter[str]:
    return Counter(f"GD-{n}" for t in texts for n in NUMBER.findall(t))


def assert_every_nag_once(api: ThrottledBotApi, numbers: list[str], counts: dict[str, int]) -> None:
    """Every ticket's nag reached the group, once, mostly folded into digests; none dead."""
    texts = nags_in_group(api)
    seen = numbers_in(texts)
    lost = sorted(set(numbers) - set(seen))
    assert not lost, f"nags never arrived for {lost}: {texts}; outbox {counts}"
    assert set(seen) == set(numbers), texts
    assert all(n == 1 for n in seen.values()), f"a nag arrived twice: {texts}"
    assert len(texts) < len(numbers), texts  # folded: fewer messages than nags
    digests = [t for t in texts if t.startswith(DIGEST)]
    assert digests, texts
    for text in digests:  # each digest says how many tickets it lists, and lists that many
        m = re.match(r"⏰ 时限提醒：(\d+) 张工单\n", text)
        assert m is not None, text
        assert len(NUMBER.findall(text)) == int(m.group(1)), text
        assert text.count("响应已超时") == int(m.group(1)), text
    assert api.refused(TEAM["id"])
    assert not counts.get("dead"), counts
    assert counts.get("superseded", 0) >= 1, counts  # waiting nags were taken back and folded


async def test_nags_held_by_a_429_arrive_as_digests_none_lost_none_twice(
    running: Start, api: ThrottledBotApi
) -> None:
    # Four tickets, falling due over three sweeps (two in the second).
    hub, numbers = await throttled_run(running, api, [0, 1, 1, 2], [10, 11, 12])
    counts = await outbox_drained(hub)  # the 429 cleared: everything that waited went out
    assert_every_nag_once(api, numbers, counts)


async def test_a_full_digest_taken_back_by_a_later_sweep_is_not_lost(
    running: Start, api: ThrottledBotApi
) -> None:
    # Two lines per digest: the first sweep's two nags fill one; the second sweep takes it
    # back and adds a third nag, so its first chunk lists the same two tickets again.
    hub, numbers = await throttled_run(running, api, [0, 0, 1], [10, 11], digest_max_lines=2)
    counts = await outbox_drained(hub)
    assert_every_nag_once(api, numbers, counts)
