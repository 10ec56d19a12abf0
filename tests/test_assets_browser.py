"""Scan-to-report in a real browser: a QR link opens the chat naming the machine, and the
report becomes a ticket about that asset (headless Chromium, as ``tests/test_browser.py``)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bot.assets import AssetLinks
from tests.conftest import RunningHub
from tests.test_assets_flow import _asset_tickets, _with_assets
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, TICKET, TIMEOUT_MS, _need_chromium

Start = Callable[..., Awaitable[RunningHub]]

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_scanned_qr_code_opens_the_chat_about_that_machine(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    _need_chromium()
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=TIMEOUT_MS)
    hub = await _with_assets(running, tmp_path, db_url)
    im3 = hub.hub.env.assets.by_code("IM-003")
    assert im3 is not None
    link = AssetLinks(b"test-secret-key").url(hub.base, im3.id)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            phone = await browser.new_context(viewport={"width": 390, "height": 844})
            page = await phone.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(link)
            assert "/chat?asset=" in page.url
            await expect(page.locator("#asset")).to_have_text("报修设备：3号注塑机 · 二车间")
            await page.locator("#name").fill("张三")
            await page.locator("#start").click()
            await page.locator("#text").fill("机器不转了，一直报警")
            await page.locator("#text").press("Enter")
            ack = page.locator("#pane .bubble.hub", has_text=TICKET).first
            await expect(ack).to_be_visible()
            match = TICKET.search(await ack.inner_text())
            assert match is not None
            assert await _asset_tickets(hub, "IM-003") == [match.group(0)]
            assert (await hub.api(f"/api/tickets/{match.group(0)}"))["site"] == "二车间"

            # A forged link opens nothing (and names no machine).
            forged = re.sub(r"/r/.*", "/r/" + AssetLinks(b"forged").sign(im3.id), link)
            answer = await page.goto(forged)
            assert answer is not None and answer.status == 404
            assert errors == []
        finally:
            await browser.close()
