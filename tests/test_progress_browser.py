"""The progress page in a real browser on a phone-sized screen (headless Chromium, Debian's).

A customer reports on ``/chat``; 李工 accepts; the milestone in the chat carries the link; the
customer opens it in a new tab and sees the engineer and the timeline, laid out for 375 px; when
李工 sets off, or writes to the customer from the console's reply box, the open page redraws
itself. A screenshot is kept as a test artefact.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bot.tickets import TicketAction
from tests.conftest import RunningHub
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, _keep, _need_chromium
from tests.test_progress import act, one_ticket, staff

Start = Callable[..., Awaitable[RunningHub]]
pytestmark = pytest.mark.browser
REPORT = "3号注塑机停机了，报警E102，在二车间"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_customer_opens_the_progress_link_on_a_phone(
    running: Start, tmp_path: Path
) -> None:
    _need_chromium()
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=TIMEOUT_MS)
    hub = await running(progress={"refresh_seconds": 5})
    hub.hub.settings.public_url = hub.base  # the address people reach this hub at

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            phone = await browser.new_context(
                viewport={"width": 375, "height": 740},
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
                locale="zh-CN",
            )
            phone.set_default_timeout(TIMEOUT_MS)
            chat = await phone.new_page()
            errors: list[str] = []
            chat.on("pageerror", lambda exc: errors.append(str(exc)))
            await chat.goto(hub.base + "/chat")
            await chat.locator("#name").fill("张三")
            await chat.locator("#start").click()
            await expect(chat.locator("body")).to_have_attribute("data-live", "1")
            await chat.locator("#text").fill(REPORT)
            await chat.locator("#text").press("Enter")
            ticket = await one_ticket(hub)
            li = await staff(hub, "li")
            await act(hub, li, ticket["id"], TicketAction.ACCEPT)

            # The milestone in the chat carries the link; it opens in a new tab.
            link = chat.locator("#pane .bubble.hub", has_text="李工 已接单").locator("a")
            await expect(link).to_have_attribute("href", re.compile(r"/t/[A-Za-z0-9_-]+$"))
            async with phone.expect_page() as opened:
                await link.click()
            page = await opened.value
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.wait_for_load_state()
            assert page.url == await link.get_attribute("href")

            await expect(page.locator("h1")).to_have_text(ticket["title"])
            await expect(page.locator("header")).to_contain_text(ticket["number"])
            await expect(page.locator("#label")).to_have_text("已接单")
            await expect(page.locator("#engineer")).to_contain_text("李工")
            steps = page.locator("#timeline li")
            await expect(steps).to_have_count(3)
            await expect(steps.nth(0)).to_contain_text("您提交了报修")
            await expect(steps.nth(1)).to_contain_text("已安排工程师 李工")
            await expect(steps.nth(2)).to_contain_text("李工 已接单")
            await expect(page.locator("#timeline li.current")).to_contain_text("李工 已接单")
            await expect(page.locator("#promises")).to_contain_text("已响应")
            # Laid out for the phone: nothing wider than the screen, text not shrunk.
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, width
            size = await page.evaluate("getComputedStyle(document.body).fontSize")
            assert size == "16px"

            # 李工 sets off: the open page redraws itself (it asks every refresh_seconds).
            await act(hub, li, ticket["id"], TicketAction.DEPART)
            await expect(page.locator("#label")).to_have_text("工程师在路上")
            await expect(page.locator("#timeline li.current")).to_contain_text("李工 已出发")

            # 李工 writes to the customer from the console's reply box: the chat shows it as
            # his words, and so does the page's timeline.
            desk = await browser.new_context(viewport={"width": 1100, "height": 900})
            console = await desk.new_page()
            console.on("pageerror", lambda exc: errors.append(str(exc)))
            link_in = hub.hub.access.issue_link("li", "cli")
            await console.goto(hub.base + "/console#" + link_in.partition("#")[2])
            await expect(console.locator("#desk")).to_be_visible()
            await expect(console.locator("#reply-send")).to_have_text("回复客户")
            await console.locator("#reply-ticket").fill(ticket["number"])
            await console.locator("#reply-text").fill("十分钟后到，请先断电")
            await console.locator("#reply-send").click()
            await expect(console.locator("#pane-li")).to_contain_text(
                f"已发给 {ticket['number']} 的客户"
            )
            await expect(chat.locator("#pane")).to_contain_text("工程师 李工：十分钟后到，请先断电")
            reply = page.locator("#timeline li.reply")
            await expect(reply).to_contain_text("工程师 李工：十分钟后到，请先断电")
            await expect(page.locator("#timeline li.current")).to_contain_text("李工 已出发")

            shot = tmp_path / "gongdan_progress_phone.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            _keep(shot, shot.name)
            assert not errors, errors
        finally:
            await browser.close()
