"""Evidence on the console in a real browser: 李工 uploads a photo on the ticket's card, the card
shows it, and the service report opens (headless Chromium, Debian's package)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.conftest import RunningHub
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, _keep, _need_chromium
from tests.test_closure import _png
from tests.test_webchat_flow import customer, report

Start = Callable[..., Awaitable[RunningHub]]

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_engineer_uploads_a_photo_on_the_card(running: Start, tmp_path: Path) -> None:
    _need_chromium()
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=TIMEOUT_MS)
    hub = await running()
    await report(hub, await customer(hub), "3号注塑机停机了，报警E102，在二车间")
    photo = tmp_path / "fan.png"
    photo.write_bytes(_png())
    second = tmp_path / "panel.png"
    second.write_bytes(_png(10, 4))
    not_a_photo = tmp_path / "notes.png"  # a name that lies: the bytes decide
    not_a_photo.write_bytes(b"GIF89a" + bytes(64))

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            desk = await browser.new_context(
                viewport={"width": 1100, "height": 900}, locale="zh-CN"
            )
            desk.set_default_timeout(TIMEOUT_MS)
            page = await desk.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            link = hub.hub.access.issue_link("li", "cli")
            await page.goto(hub.base + "/console#" + link.partition("#")[2])
            card = page.locator("#pane-li .card", has_text=re.compile(r"GD-\d+"))
            await expect(card).to_be_visible()

            await card.locator("input[data-upload]").set_input_files(str(not_a_photo))
            await expect(page.locator(".toast", has_text="只接受 JPEG")).to_be_visible()
            await card.locator("input[data-upload]").set_input_files(str(photo))
            await expect(page.locator(".toast", has_text="现场照片")).to_be_visible()
            field = "xpath=.//dt[normalize-space()='现场照片']/following-sibling::dd[1]"
            photos = card.locator(field)
            await expect(photos).to_have_text("1 张")

            # From the chat box: for his one ticket in hand.
            await page.locator("#photo").set_input_files(str(second))
            await expect(photos).to_have_text("2 张")

            href = await card.get_by_role("link", name="服务报告").get_attribute("href")
            assert href is not None
            answer = await page.request.get(hub.base + href)
            assert answer.status == 200 and (await answer.body()).startswith(b"%PDF")

            shot = tmp_path / "gongdan_console_evidence.png"
            await page.screenshot(path=str(shot), full_page=True)
            _keep(shot, shot.name)
            assert not errors, errors
        finally:
            await browser.close()
