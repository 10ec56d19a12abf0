"""The staff console's view of the feed, server side (``bot/console.py``): each signed-in
person gets each ticket's card once, with only the buttons their roles let them press, in
their language; answers to their presses name the press; notices from before the page opened
are marked as history. And the first run of a fresh hub prints someone to sign in as."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.access import Access
from bot.config import load_settings
from bot.console import first_run_links
from bot.hub import load_secret
from bot.tickets import (
    TRANSITIONS,
    ClosureAction,
    CsatAction,
    IntakeAction,
    PartsAction,
    Role,
    SlaAction,
    TicketAction,
    may_press,
)
from storage.db import Database, migrate_async
from tests.conftest import Feed, RunningHub, bearer, button, eventually
from tests.test_webchat_flow import cid, customer, one_ticket, press, report, staff

Start = Callable[..., Awaitable[RunningHub]]
REPORT = "3号注塑机停机了，报警E102，在二车间"

sqlite = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


class Desk:
    """A staff member's console stream (``view=desk``), as the console page opens it."""

    def __init__(self, hub: RunningHub, token: str, lang: str | None = None) -> None:
        self.hub, self.token, self.lang = hub, token, lang
        self.events: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Desk:
        opened = asyncio.Event()
        params = {"view": "desk", **({"lang": self.lang} if self.lang else {})}

        async def follow() -> None:
            url = self.hub.base + "/webchat/api/stream"
            async with self.hub.http.get(url, params=params, headers=bearer(self.token)) as r:
                assert r.status == 200
                opened.set()
                async for line in r.content:
                    if line.startswith(b"data: "):
                        self.events.append(json.loads(line[6:]))

        self._task = asyncio.create_task(follow())
        await asyncio.wait_for(opened.wait(), 15)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def cards(self, ticket_id: int) -> dict[str, dict[str, Any]]:
        """The ticket's cards as the page shows them now, by message key."""
        shown: dict[str, dict[str, Any]] = {}
        for e in self.events:
            if e["kind"] == "card" and e["payload"]["ticket_id"] == ticket_id:
                if e.get("ticket_card"):  # the page keeps one card per ticket
                    shown = {k: v for k, v in shown.items() if not v.get("ticket_card")}
                shown[e["key"]] = e
        return shown

    async def card(self, ticket_id: int, version: int) -> dict[str, Any]:
        """The ticket's one card, once it shows ``version``."""

        async def found() -> dict[str, Any] | None:
            cards = [c for c in self.cards(ticket_id).values() if c.get("ticket_card")]
            assert len(cards) <= 1, cards
            return cards[0] if cards and cards[0]["payload"]["version"] == version else None

        result: dict[str, Any] = await eventually(found, what=f"version {version}")
        return result


def actions(card: dict[str, Any]) -> set[str]:
    return {b["action"] for b in card["payload"]["buttons"]}


async def version(hub: RunningHub, ticket_id: int) -> int:
    return int((await hub.api(f"/api/tickets/{ticket_id}"))["version"])


async def until_state(hub: RunningHub, ticket_id: int, state: str) -> int:
    async def moved() -> int | None:
        t = await hub.api(f"/api/tickets/{ticket_id}")
        return int(t["version"]) if t["state"] == state else None

    return int(await eventually(moved, what=state))


async def test_each_viewer_sees_one_card_with_the_buttons_their_role_may_press(
    running: Start,
) -> None:
    hub = await running()
    cust = await customer(hub)
    li, wang, zhao = await staff(hub, "li"), await staff(hub, "wang"), await staff(hub, "zhao")
    async with (
        Desk(hub, li) as li_desk,
        Desk(hub, wang) as wang_desk,
        Desk(hub, zhao) as zhao_desk,
        Feed(hub, wang) as wang_raw,
        Feed(hub, cust) as cfeed,
    ):
        await report(hub, cust, REPORT)
        ticket = await one_ticket(hub)
        tid, v = ticket["id"], await version(hub, ticket["id"])
        assert ticket["assignee"]["id"] == "li"

        # 李工 (the assignee): his own chat's copy only, with 接单; nothing a manager does.
        card = await li_desk.card(tid, v)
        assert card["conversation"] == "li"
        assert {"accept", "reassign"} <= actions(card)
        assert not actions(card) & {"cancel", "confirm", "reopen", "priority"}
        # 王工 (an engineer of the team): the team's copy, and no 接单 on 李工's ticket.
        card = await wang_desk.card(tid, v)
        assert card["conversation"] == "team"
        assert "accept" not in actions(card) and "reassign" not in actions(card)
        # 赵经理 (the manager): no 接单 / 我来处理 on someone else's ticket; cancel, priority.
        card = await zhao_desk.card(tid, v)
        assert card["conversation"] == "team"
        assert not actions(card) & {"accept", "claim"}
        assert {"reassign", "cancel", "priority"} <= actions(card)

        # A button hidden from 王工 is one the engine refuses him: the stored card has it.
        raw = await wang_raw.wait_card("team", lambda p: p["ticket_id"] == tid)
        await press(hub, wang, button(raw, "accept"), "team")
        assert "没有权限" in await wang_raw.wait_text("权限")
        assert (await hub.api(f"/api/tickets/{tid}"))["state"] == "assigned"

        # 李工 walks it to 已解决; 确认修好 is the customer's or the manager's, not his.
        for action, state in [
            ("accept", "accepted"),
            ("depart", "en_route"),
            ("arrive", "on_site"),
            ("diagnose", "diagnosing"),
        ]:
            card = await li_desk.card(tid, v)
            await press(hub, li, button(card, action), "li")
            v = await until_state(hub, tid, state)
        card = await li_desk.card(tid, v)
        await press(hub, li, button(card, "resolve"), "li", note="冷却风扇损坏，已更换")
        v = await until_state(hub, tid, "resolved")
        assert "confirm" not in actions(await li_desk.card(tid, v))
        assert "confirm" in actions(await zhao_desk.card(tid, v))

        # Closed by the customer: 重新打开 for the manager, not for the engineer.
        ccard = await cfeed.wait_card(
            next(e["conversation"] for e in cfeed.events), lambda p: p["version"] == v
        )
        await press(hub, cust, button(ccard, "confirm"))
        v = await until_state(hub, tid, "closed")
        assert "reopen" not in actions(await li_desk.card(tid, v))
        assert "reopen" not in actions(await wang_desk.card(tid, v))
        assert "reopen" in actions(await zhao_desk.card(tid, v))
        for desk in (li_desk, wang_desk, zhao_desk):  # never a second copy of the ticket
            assert len([c for c in desk.cards(tid).values() if c.get("ticket_card")]) == 1


async def test_a_desk_in_english_gets_english_cards_and_role(running: Start) -> None:
    hub = await running()
    cust, zhao = await customer(hub), await staff(hub, "zhao")
    await report(hub, cust, REPORT)
    ticket = await one_ticket(hub)
    v = await version(hub, ticket["id"])
    async with Desk(hub, zhao, lang="en") as desk, Desk(hub, zhao) as zh_desk:
        card = (await desk.card(ticket["id"], v))["payload"]
        zh_card = (await zh_desk.card(ticket["id"], v))["payload"]
    assert ["State", "Assigned"] in card["fields"]
    assert ["状态", "已派单"] in zh_card["fields"]
    assert {b["label"] for b in card["buttons"]} >= {"Reassign", "Cancel ticket"}
    async with hub.http.get(
        hub.base + "/console/api/me", params={"lang": "en"}, headers=bearer(zhao)
    ) as r:
        me = await r.json()
    assert (me["role_label"], me["panes"]["team"]) == ("Manager", "Team: 维修组")
    async with hub.http.get(hub.base + "/console/api/me", headers=bearer(zhao)) as r:
        assert (await r.json())["role_label"] == "经理"


async def test_answers_name_their_press_and_earlier_notices_are_history(running: Start) -> None:
    hub = await running()
    cust, li = await customer(hub), await staff(hub, "li")
    await report(hub, cust, REPORT)
    ticket = await one_ticket(hub)
    tid = ticket["id"]
    async with Desk(hub, li) as desk:
        for action, state in [
            ("accept", "accepted"),
            ("depart", "en_route"),
            ("arrive", "on_site"),
            ("diagnose", "diagnosing"),
        ]:
            card = await desk.card(tid, await version(hub, tid))
            await press(hub, li, button(card, action), "li")
            await until_state(hub, tid, state)
        # 已解决 without a cause, a diagnosis or a photo: refused, and the answer names the press.
        card = await desk.card(tid, await version(hub, tid))
        pressed = cid()
        status, _ = await hub.post(
            "/webchat/api/actions",
            {"session": li, "id": pressed, "token": button(card, "resolve"), "conversation": "li"},
        )
        assert status == 202

        async def refusal() -> dict[str, Any] | None:
            return next(
                (e for e in desk.events if e["kind"] == "notice"
                 and e["payload"].get("press") == pressed),
                None,
            )  # fmt: skip

        answer = await eventually(refusal, what="the refusal")
        assert answer["replay"] is False and answer["payload"]["text"]
        assert (await hub.api(f"/api/tickets/{tid}"))["state"] == "diagnosing"
        live = [e for e in desk.events if e["kind"] == "notice"]
        assert len(live) == 5 and not any(e["replay"] for e in live)

    # A page opened later shows the same answers as history (it does not toast them again).
    async with Desk(hub, li) as later:

        async def replayed() -> list[dict[str, Any]] | None:
            notices = [e for e in later.events if e["kind"] == "notice"]
            return notices if len(notices) == 5 else None

        notices = await eventually(replayed, what="the past notices")
        assert all(e["replay"] for e in notices)
        assert [e["payload"]["text"] for e in notices] == [e["payload"]["text"] for e in live]


def test_may_press_is_the_state_table() -> None:
    for action, rule in TRANSITIONS.items():
        for role in Role:
            assert may_press(action, frozenset({role})) == (role in rule.roles), (action, role)
    engineer = frozenset({Role.ENGINEER, Role.ASSIGNEE})
    assert not may_press(TicketAction.CONFIRM, engineer)
    assert not may_press(TicketAction.REOPEN, engineer)
    assert not may_press(SlaAction.SNOOZE, engineer)
    assert not may_press(IntakeAction.PRIORITY, engineer)
    assert may_press(IntakeAction.PRIORITY, frozenset({Role.DISPATCHER}))
    assert not may_press(TicketAction.ACCEPT, frozenset({Role.MANAGER}))
    # The buttons that move no state: a checklist tick is the assignee's or a manager's, the
    # parts' ETA the assignee's or a dispatcher's, the stars the customer's.
    teammate = frozenset({Role.ENGINEER})
    assert not may_press(ClosureAction.TICK, teammate)
    assert may_press(ClosureAction.TICK, engineer)
    assert not may_press(PartsAction.ETA, teammate)
    assert may_press(PartsAction.ETA, frozenset({Role.DISPATCHER}))
    assert not may_press(CsatAction.RATE, engineer | {Role.MANAGER})
    assert may_press(CsatAction.RATE, frozenset({Role.CUSTOMER}))


@sqlite
async def test_a_fresh_hub_prints_a_sign_in_link_per_person(tmp_path: Path, db_url: str) -> None:
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, db_url)
    await migrate_async(db_url)
    db = Database(db_url)
    try:
        access = Access(db, settings, load_secret(settings))
        lines = await first_run_links(access)
        assert "一次性登录链接" in lines[0]
        assert len(lines) == 1 + len(settings.people)
        assert "李工（工程师，li）：http://127.0.0.1:8080/console#login=" in lines[1]
        # Not on a hub other machines reach, nor one without the console.
        public = make_settings(tmp_path, db_url, server={"host": "0.0.0.0"})
        assert await first_run_links(Access(db, public, b"k" * 32)) == []
        no_console = make_settings(tmp_path, db_url, webchat={"enabled": False})
        assert await first_run_links(Access(db, no_console, b"k" * 32)) == []
        # The printed link signs 李工 in; from then on nothing is printed.
        token = lines[1].partition("#login=")[2]
        signed = await access.sign_in_link(token, "127.0.0.1")
        assert signed.user.person.id == "li"
        assert await first_run_links(access) == []
        # Without staff, it says how to add them.
        nobody = make_settings(tmp_path, db_url, people=[], teams=[])
        fresh = tmp_path / "fresh.db"
        fresh_url = f"sqlite+aiosqlite:///{fresh}"
        await migrate_async(fresh_url)
        fresh_db = Database(fresh_url)
        try:
            lines = await first_run_links(Access(fresh_db, nobody, b"k" * 32))
        finally:
            await fresh_db.dispose()
        assert lines and "gongdan.example.toml" in lines[0]
    finally:
        await db.dispose()


def test_the_example_config_has_someone_to_sign_in_as() -> None:
    example = Path(__file__).parent.parent / "gongdan.example.toml"
    settings = load_settings(example)
    roles = {p.role for p in settings.people}
    assert {"engineer", "manager"} <= roles
    team_chats = [c for t in settings.teams for c in t.chats]
    assert any(c.startswith("web:") for c in team_chats)
    assert all(any(i.startswith("web:") for i in p.identities) for p in settings.people)


@sqlite
async def test_the_cookie_is_secure_only_where_the_browser_can_keep_it(running: Start) -> None:
    """Reached directly over plain HTTP (a hub whose public address is HTTPS behind a proxy,
    opened on its own port), a ``Secure`` cookie would be dropped and a reload would sign out;
    reached through the public HTTPS address, it is ``Secure``."""
    hub = await running(public_url="https://gongdan.example.com")

    async def cookie(host: str | None) -> str:
        link = hub.hub.access.issue_link("li", "cli").partition("#login=")[2]
        headers = {"Host": host} if host else {}
        async with (
            aiohttp.ClientSession() as http,
            http.post(hub.base + "/console/api/sign-in", json={"link": link}, headers=headers) as r,
        ):
            assert r.status == 200, await r.text()
            return r.headers["Set-Cookie"]

    direct = await cookie(None)
    assert "HttpOnly" in direct and "SameSite=Strict" in direct and "Secure" not in direct
    assert "Secure" in await cookie("gongdan.example.com")
