"""The web chat pages in a real browser: headless Chromium (Debian's package) driven by Playwright.

A customer reports a fault on ``/chat`` and sees the ticket number; engineer 李工 presses 接单 on
``/console``; the customer's page, never reloaded, shows the milestone and the updated card.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.conftest import RunningHub

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000
REPORT = "3号注塑机停机了，报警E102"
TICKET = re.compile(r"GD-\d+")

# Read at import: conftest's autouse fixture clears GONGDAN_* from the environment before tests run.
REQUIRE_BROWSER = bool(os.environ.get("GONGDAN_REQUIRE_BROWSER"))

Start = Callable[..., Awaitable[RunningHub]]

pytestmark = pytest.mark.browser


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing (apt-get install chromium); no browser is downloaded"
    if REQUIRE_BROWSER:
        pytest.fail(reason)
    pytest.skip(reason)


def _keep(path: Path, name: str) -> None:
    """Also leave a copy in /tmp for a person to look at (best effort)."""
    with contextlib.suppress(OSError):
        shutil.copyfile(path, Path("/tmp") / name)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_customer_sees_acceptance_live_in_the_browser(running: Start, tmp_path: Path) -> None:
    _need_chromium()
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=TIMEOUT_MS)
    hub = await running()
    started = time.monotonic()

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
            desk = await browser.new_context(
                viewport={"width": 1100, "height": 900}, locale="zh-CN"
            )
            for ctx in (phone, desk):
                ctx.set_default_timeout(TIMEOUT_MS)
            customer = await phone.new_page()
            engineer = await desk.new_page()
            errors: list[str] = []
            for page in (customer, engineer):
                page.on("pageerror", lambda exc: errors.append(str(exc)))

            # The customer reports the fault and sees a ticket number.
            await customer.goto(hub.base + "/chat")
            await customer.locator("#name").fill("张三")
            await customer.locator("#start").click()
            await expect(customer.locator("#chat")).to_be_visible()
            await expect(customer.locator("#hello")).to_be_hidden()
            await customer.evaluate("window.gdNeverReloaded = true")
            await expect(customer.locator("body")).to_have_attribute("data-live", "1")
            await customer.locator("#text").fill(REPORT)
            await customer.locator("#text").press("Enter")
            await expect(customer.locator("#pane .bubble.me")).to_have_text(re.compile(REPORT))
            ack = customer.locator("#pane .bubble.hub", has_text=TICKET).first
            await expect(ack).to_be_visible()
            match = TICKET.search(await ack.inner_text())
            assert match, await ack.inner_text()
            number = match.group(0)

            # Without a sign-in the console shows nobody's desk and offers no staff list.
            await engineer.goto(hub.base + "/console")
            await expect(engineer.locator("#login")).to_be_visible()
            await expect(engineer.locator("#desk")).to_be_hidden()
            # 李工 opens the one-time link the bot sent him (as `gongdan login-link li`
            # prints it): signed in, and the token is gone from the address bar.
            link = hub.hub.access.issue_link("li", "cli")  # (public_url: not this test's port)
            await engineer.goto(hub.base + "/console#" + link.partition("#")[2])
            await expect(engineer.locator("#desk")).to_be_visible()
            await expect(engineer.locator("#whoami")).to_contain_text("李工")
            assert "login=" not in engineer.url
            # A reload keeps him signed in (an HttpOnly cookie the page's script cannot read).
            await engineer.reload()
            await expect(engineer.locator("#desk")).to_be_visible()
            assert await engineer.evaluate("document.cookie") == ""
            card = engineer.locator("#pane-li .card", has_text=number)
            await expect(card).to_be_visible()
            await card.get_by_role("button", name="接单", exact=True).click()

            # The customer's page (never reloaded) shows the milestone and the updated card.
            await expect(customer.locator("#pane")).to_contain_text("李工 已接单")
            ccard = customer.locator("#pane .card", has_text=number)
            state = ccard.locator("xpath=.//dt[normalize-space()='状态']/following-sibling::dd[1]")
            await expect(state).to_have_text("已接单")
            # …and the engineer's card has moved on too (the 接单 button is gone).
            await expect(card.get_by_role("button", name="接单", exact=True)).to_have_count(0)

            ticket = await hub.api(f"/api/tickets/{number}")
            assert ticket["state"] == "accepted"
            assert ticket["assignee"]["id"] == "li"

            for page, name in ((customer, "gongdan_chat.png"), (engineer, "gongdan_console.png")):
                shot = tmp_path / name
                await page.screenshot(path=str(shot), full_page=True)
                _keep(shot, name)
            # The same document all along: a reload or navigation would have dropped the marker.
            assert await customer.evaluate("window.gdNeverReloaded === true")
            # Signing out ends the sign-in: a reload asks again.
            await engineer.locator("#signout").click()
            await expect(engineer.locator("#login")).to_be_visible()
            await engineer.reload()
            await expect(engineer.locator("#login")).to_be_visible()
            await expect(engineer.locator("#desk")).to_be_hidden()
            assert not errors, errors
        finally:
            await browser.close()
    print(f"browser flow took {time.monotonic() - started:.1f}s")
