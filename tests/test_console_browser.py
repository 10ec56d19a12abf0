"""The staff console in a real browser (headless Chromium, Debian's package, via Playwright):
what each signed-in person sees and what happens when they press.

- 李工, an engineer, on a hub reached by its plain-HTTP address while its public address is
  HTTPS: a refused press gives its button back with the reason; a reload keeps him signed in
  and shows earlier answers in the feed, not as a pile of toasts; so does signing in again;
  he sees each ticket's card once and never 确认修好 or 重新打开.
- 赵经理, the manager, on ``/console?lang=en``: his role and the card in English, no Accept or
  Claim on 李工's ticket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import RunningHub, eventually
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, _keep, _need_chromium
from tests.test_webchat_flow import Feed, button, customer, one_ticket, press, report

if TYPE_CHECKING:
    from playwright.async_api import Page

Start = Callable[..., Awaitable[RunningHub]]
REPORT = "3号注塑机停机了，报警E102，在二车间"
HOST = "gongdan.test"  # not localhost: a browser keeps a Secure cookie only over HTTPS here

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


async def _ticket(hub: RunningHub) -> tuple[str, dict[str, Any]]:
    """A customer's report, assigned to 李工; the customer's session and the ticket."""
    cust = await customer(hub)
    await report(hub, cust, REPORT)
    ticket = await one_ticket(hub)
    assert ticket["assignee"]["id"] == "li"
    return cust, ticket


def _link(hub: RunningHub, person: str) -> str:
    return "#" + hub.hub.access.issue_link(person, "cli").partition("#")[2]


async def test_engineer_presses_reloads_and_signs_in_again(running: Start, tmp_path: Path) -> None:
    _need_chromium()
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=TIMEOUT_MS)
    hub = await running(public_url="https://gongdan.example.com")
    cust, ticket = await _ticket(hub)
    number, tid = ticket["number"], ticket["id"]
    base = hub.base.replace("127.0.0.1", HOST)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1"],
        )
        try:
            ctx = await browser.new_context(viewport={"width": 1100, "height": 900}, locale="zh-CN")
            ctx.set_default_timeout(TIMEOUT_MS)
            page = await ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            note: list[str] = []  # what 李工 types when 已解决 asks for the cause

            async def answer(dialog: Any) -> None:
                await dialog.accept(note[0] if note else "")

            page.on("dialog", answer)

            await page.goto(base + "/console" + _link(hub, "li"))
            await expect(page.locator("#desk")).to_be_visible()
            await expect(page.locator("#whoami")).to_have_text("· 李工 · 工程师")
            fonts = await page.evaluate("getComputedStyle(document.body).fontFamily")
            assert "PingFang SC" in fonts and "Noto Sans CJK SC" in fonts, fonts

            # One card for the ticket, in his own pane, though the team's pane has it too.
            cards = page.locator(f".card[data-ticket='{tid}']")
            await expect(cards).to_have_count(1)
            card = page.locator("#pane-li .card", has_text=number)
            await expect(card).to_be_visible()

            def press_on(label: str) -> Any:
                return card.get_by_role("button", name=label, exact=True)

            for label, then in [("接单", "出发"), ("出发", "到达"), ("到达", "开始诊断"),
                                ("开始诊断", "已解决")]:  # fmt: skip
                await press_on(label).click()
                await expect(press_on(then)).to_be_visible()
            await expect(page.locator(".toast").first).to_be_visible()  # live answers toast

            # 已解决 with no cause typed: refused; the button works again and says why.
            resolve = press_on("已解决")
            await resolve.click()
            reason = card.locator(".card-reason")
            await expect(reason).not_to_be_empty()
            await expect(resolve).to_be_enabled()
            why = await reason.inner_text()
            await expect(page.locator(".toast", has_text=why)).to_be_visible()
            assert (await hub.api(f"/api/tickets/{tid}"))["state"] == "diagnosing"

            # A reload keeps him signed in (an HttpOnly cookie the page cannot read) and shows
            # the five answers in the feed, none of them as a toast.
            await page.reload()
            await expect(page.locator("#desk")).to_be_visible()
            assert await page.evaluate("document.cookie") == ""
            await _history_without_toasts(page, expect, 5)
            await expect(cards).to_have_count(1)

            # With the cause typed it is resolved; 确认修好 is not his to press.
            note.append("冷却风扇损坏，已更换")
            await press_on("已解决").click()
            await expect(card.locator("dd").first).to_have_text("已解决·待验收")
            await expect(press_on("确认修好")).to_have_count(0)
            # The customer confirms: closed, and 重新打开 is not his either.
            async with Feed(hub, cust) as cfeed:
                version = (await hub.api(f"/api/tickets/{tid}"))["version"]

                async def heard() -> bool:  # (the feed replays the conversation from its start)
                    return bool(cfeed.events)

                await eventually(heard, what="the customer's conversation")
                ccard = await cfeed.wait_card(
                    next(e["conversation"] for e in cfeed.events), lambda p: p["version"] == version
                )
                await press(hub, cust, button(ccard, "confirm"))
            await expect(card.locator("dd").first).to_have_text("已关闭")
            # (no action button; the photo and service-report tools stay: .buttons.tools)
            await expect(card.locator(".buttons:not(.tools) button")).to_have_count(0)
            await expect(cards).to_have_count(1)

            shot = tmp_path / "gongdan_console_engineer.png"
            await page.screenshot(path=str(shot), full_page=True)
            _keep(shot, shot.name)

            # Signing out and in again: the earlier answers are history, not a pile of toasts.
            await page.locator("#signout").click()
            await expect(page.locator("#login")).to_be_visible()
            await page.reload()
            await expect(page.locator("#login")).to_be_visible()
            await page.goto(base + "/console" + _link(hub, "li"))
            await expect(page.locator("#desk")).to_be_visible()
            await _history_without_toasts(page, expect, 6)
            assert not errors, errors
        finally:
            await browser.close()


async def _history_without_toasts(page: Page, expect: Any, answers: int) -> None:
    """The page shows ``answers`` earlier answers in the feed and has toasted none of them
    (a toast would have appeared with its line in the feed)."""
    await expect(page.locator(".bubble.notice")).to_have_count(answers)
    assert await page.locator(".toast").count() == 0


async def test_manager_in_english_sees_his_role_and_buttons(running: Start, tmp_path: Path) -> None:
    _need_chromium()
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=TIMEOUT_MS)
    hub = await running()
    _, ticket = await _ticket(hub)
    number, tid = ticket["number"], ticket["id"]

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            ctx = await browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-US")
            ctx.set_default_timeout(TIMEOUT_MS)
            page = await ctx.new_page()
            await page.goto(hub.base + "/console?lang=en" + _link(hub, "zhao"))
            await expect(page.locator("#desk")).to_be_visible()
            await expect(page.locator("#whoami")).to_have_text("· 赵经理 · Manager")
            await expect(page.locator("h2").first).to_have_text("My tickets")
            await expect(page.locator("h2", has_text="Team: 维修组")).to_be_visible()

            cards = page.locator(f".card[data-ticket='{tid}']")
            await expect(cards).to_have_count(1)
            card = page.locator("#pane-team .card", has_text=number)
            state = card.locator("xpath=.//dt[normalize-space()='State']/following-sibling::dd[1]")
            await expect(state).to_have_text("Assigned")
            await expect(card.get_by_role("button", name="Reassign", exact=True)).to_be_visible()
            await expect(card.get_by_role("button", name="Cancel ticket")).to_be_visible()
            for label in ("Accept", "Claim", "接单", "我来处理"):
                await expect(card.get_by_role("button", name=label, exact=True)).to_have_count(0)

            shot = tmp_path / "gongdan_console_manager_en.png"
            await page.screenshot(path=str(shot), full_page=True)
            _keep(shot, shot.name)
        finally:
            await browser.close()
