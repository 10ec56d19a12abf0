"""The dashboard in a real browser (Debian's Chromium, headless, via Playwright) on the seeded
history (tests/kpi_seed.py): sign in on the console, open /dashboard, read the numbers it
shows, switch language and filter; an engineer sees only their team. Screenshots are kept as
test artefacts (the test's tmp_path, and copies in /tmp)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from storage.db import Database
from tests.conftest import FakeClock, RunningHub
from tests.kpi_seed import NOW, STAFF, seed
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, _keep, _need_chromium

Start = Callable[..., Awaitable[RunningHub]]
QUIET = {"sla": {"enabled": False}, "maintenance": {"enabled": False}}

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_manager_and_engineer_read_the_dashboard(
    running: Start, db_url: str, tmp_path: Path
) -> None:
    _need_chromium()
    from playwright.async_api import Page, async_playwright, expect

    expect.set_options(timeout=TIMEOUT_MS)
    db = Database(db_url)
    await seed(db)
    await db.dispose()
    hub = await running(clock=FakeClock(NOW), **STAFF, **QUIET)

    async def sign_in(page: Page, person: str) -> None:
        link = hub.hub.access.issue_link(person, "cli")
        await page.goto(hub.base + "/console#" + link.partition("#")[2])
        await expect(page.locator("#desk")).to_be_visible()

    async def shoot(page: Page, name: str) -> None:
        shot = tmp_path / name
        await page.screenshot(path=str(shot), full_page=True)
        _keep(shot, name)

    def kpi(page: Page, key: str) -> object:
        return page.locator(f'[data-kpi="{key}"]')

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            errors: list[str] = []
            desk = await browser.new_context(viewport={"width": 1280, "height": 900})
            desk.set_default_timeout(TIMEOUT_MS)
            manager = await desk.new_page()
            manager.on("pageerror", lambda exc: errors.append(str(exc)))

            # Not signed in: sent to the console's sign-in.
            await manager.goto(hub.base + "/dashboard")
            assert manager.url.endswith("/console?next=/dashboard")
            await expect(manager.locator("#login")).to_be_visible()

            # Signing in there (a one-time link) comes back to the dashboard.
            link = hub.hub.access.issue_link("zhao", "cli")
            await manager.goto(manager.url + "#" + link.partition("#")[2])
            await expect(manager.locator("h1")).to_have_text("运维看板")
            await expect(kpi(manager, "open")).to_have_text("5")  # type: ignore[arg-type]
            await expect(kpi(manager, "opened")).to_have_text("5")  # type: ignore[arg-type]
            expected = {
                "first_response": "30分钟",
                "arrival": "2小时15分钟",
                "resolution": "13小时30分钟",
                "ftf": "50%",
                "reopen": "50%",
                "transfers": "0.20",
                "csat": "3.50",
            }
            for key, shown in expected.items():
                await expect(kpi(manager, key)).to_have_text(shown)  # type: ignore[arg-type]
            await expect(manager.locator('[data-bar="assigned"]')).to_have_text("2")
            await expect(manager.locator('[data-bar="new"]')).to_have_text("1")
            await expect(manager.locator('[data-bar="li"]')).to_have_text("3 / 5")
            rows = manager.locator("table.risks tr[data-ticket]")
            await expect(rows).to_have_count(3)
            await expect(rows.nth(0)).to_have_attribute("data-ticket", "GD-4")
            await expect(rows.nth(0).locator("td.overdue")).to_have_text("已超时 13小时")
            await expect(rows.nth(1)).to_contain_text("30分钟")
            heat = manager.locator('table.heat tr[data-row="一号厂房"] td')
            await expect(heat.last).to_have_text("3")
            await expect(manager.locator('[data-chart="times"] svg circle')).to_have_count(5)
            await shoot(manager, "gongdan_dashboard_manager.png")

            # English, then narrowed to the network team through the form.
            await manager.get_by_role("link", name="English").click()
            await expect(manager.locator("h1")).to_have_text("Service dashboard")
            await expect(manager.locator("html")).to_have_attribute("lang", "en")
            await manager.locator('select[name="team"]').select_option("net")
            await manager.get_by_role("button", name="Apply").click()
            await expect(kpi(manager, "open")).to_have_text("1")  # type: ignore[arg-type]
            assert "team=net" in manager.url and "lang=en" in manager.url
            await expect(manager.locator('[data-bar="wang"]')).to_have_text("1 / 5")
            await shoot(manager, "gongdan_dashboard_net_en.png")
            # A customer, picked from the list: ACME's tickets (its assets and sites).
            await manager.locator('select[name="team"]').select_option("")
            await manager.locator('select[name="customer"]').select_option("acme")
            await manager.get_by_role("button", name="Apply").click()
            await expect(kpi(manager, "open")).to_have_text("3")  # type: ignore[arg-type]
            assert "customer=acme" in manager.url

            # An engineer: his team's figures only, and no other team to pick.
            own = await browser.new_context(viewport={"width": 1280, "height": 900})
            own.set_default_timeout(TIMEOUT_MS)
            engineer = await own.new_page()
            engineer.on("pageerror", lambda exc: errors.append(str(exc)))
            await sign_in(engineer, "li")
            await engineer.goto(hub.base + "/dashboard")
            await expect(kpi(engineer, "open")).to_have_text("4")  # type: ignore[arg-type]
            await expect(engineer.locator('select[name="team"] option')).to_have_count(2)
            await expect(engineer.locator("table.risks")).not_to_contain_text("GD-5")
            await shoot(engineer, "gongdan_dashboard_engineer.png")
            response = await engineer.goto(hub.base + "/dashboard?team=net")
            assert response is not None and response.status == 403
            assert not errors, errors
        finally:
            await browser.close()
