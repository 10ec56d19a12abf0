"""CSAT on the web chat in a real browser (headless Chromium, Debian's package): a customer whose
ticket was fixed presses 确认修好 on /chat, taps a star on the card that follows, sees the thanks,
and leaves a comment — all without a reload."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.conftest import RunningHub, eventually
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, _keep, _need_chromium
from tests.test_csat import rating, work_on
from tests.test_webchat_flow import one_ticket

Start = Callable[..., Awaitable[RunningHub]]

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_customer_taps_a_star_and_sees_the_thanks(running: Start, tmp_path: Path) -> None:
    _need_chromium()
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=TIMEOUT_MS)
    hub = await running()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            phone = await browser.new_context(
                viewport={"width": 390, "height": 844},
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
                locale="zh-CN",
            )
            phone.set_default_timeout(TIMEOUT_MS)
            page = await phone.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            await page.goto(hub.base + "/chat")
            await page.locator("#name").fill("张三")
            await page.locator("#start").click()
            await expect(page.locator("body")).to_have_attribute("data-live", "1")
            await page.evaluate("window.gdNeverReloaded = true")
            await page.locator("#text").fill("3号注塑机停机了，报警E102")
            await page.locator("#text").press("Enter")
            ticket = await one_ticket(hub)
            number = ticket["number"]

            await work_on(hub, ticket["id"])  # 李工 fixes it
            card = page.locator("#pane .card", has_text=number).filter(
                has=page.get_by_role("button", name="确认修好", exact=True)
            )
            await card.get_by_role("button", name="确认修好", exact=True).click()

            stars = page.locator("#pane .card", has_text="服务评价")
            await expect(stars).to_be_visible()
            await expect(stars.get_by_role("button")).to_have_text(
                ["1星", "2星", "3星", "4星", "5星"]
            )
            await stars.get_by_role("button", name="5星", exact=True).tap()
            thanks = page.locator("#pane .bubble.hub", has_text="感谢您为")
            await expect(thanks).to_contain_text(re.compile(rf"{number}.*5星"))
            # The card, updated in place, shows the score given and no stars to press.
            await expect(stars).to_contain_text("您的评价：5星")
            await expect(stars.get_by_role("button")).to_have_count(0)

            await page.locator("#text").fill("师傅很专业，谢谢")
            await page.locator("#text").press("Enter")
            await expect(
                page.locator("#pane .bubble.hub", has_text="您的意见已记录")
            ).to_be_visible()

            async def commented() -> bool:
                row = await rating(hub, ticket["id"])
                return row is not None and (row.score, row.comment) == (5, "师傅很专业，谢谢")

            await eventually(commented, what="the rating and its comment stored")
            assert len((await hub.api("/api/tickets"))["tickets"]) == 1  # no new report

            shot = tmp_path / "gongdan_csat_chat.png"
            await page.screenshot(path=str(shot), full_page=True)
            _keep(shot, shot.name)
            assert await page.evaluate("window.gdNeverReloaded === true")
            assert not errors, errors
        finally:
            await browser.close()
