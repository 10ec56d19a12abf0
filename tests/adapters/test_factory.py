"""One factory for every adapter package: ``create(deps) -> dict[str, Adapter]``, and the hub
builds exactly the packages that are enabled (nothing here starts or reaches a platform)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import bot.adapters
from bot.adapters.base import Adapter, AdapterDeps
from bot.config import Settings
from bot.hub import Hub
from bot.inbox import Inbox
from storage.db import Database
from tests.adapters import dingtalk_driver, slack_driver, wecom_driver
from tests.conftest import make_settings
from tests.fakes_telegram import TOKEN as TELEGRAM_TOKEN

NOWHERE = "http://127.0.0.1:9"  # never called: nothing is started
#: package → the platforms it serves with the settings below
PLATFORMS = {
    "webchat": {"web"},
    "slack": {"slack"},
    "telegram": {"telegram"},
    "wecom": {"wecom", "wecom-robot", "wecom-aibot"},
    "dingtalk": {"dingtalk"},
}
SECTIONS: dict[str, dict[str, Any]] = {
    "webchat": {"enabled": True},
    "slack": {
        "enabled": True,
        "bot_token": "xoxb-gongdan-test",
        "signing_secret": slack_driver.SIGNING_SECRET,
        "api_base_url": NOWHERE,
    },
    "telegram": {
        "enabled": True,
        "bot_token": TELEGRAM_TOKEN,
        "webhook_secret": "s3cr3t",
        "api_base_url": NOWHERE,
    },
    "wecom": wecom_driver.settings(NOWHERE)["wecom"],
    "dingtalk": {
        "enabled": True,
        "client_id": "ding1",
        "client_secret": dingtalk_driver.SECRET,
        "card_template_id": "tpl",
        "api_base_url": NOWHERE,
        "oapi_base_url": NOWHERE,
    },
}


def settings_with(tmp_path: Path, enabled: set[str]) -> Settings:
    sections = {name: section if name in enabled else {} for name, section in SECTIONS.items()}
    sections["webchat"] = {"enabled": "webchat" in enabled}
    return make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'factory.db'}", **sections)


async def stop_all(adapters: dict[str, Adapter]) -> None:
    for adapter in adapters.values():
        await adapter.stop()


def test_every_adapter_package_is_one_of_the_five() -> None:
    packages = {m.name for m in pkgutil.iter_modules(bot.adapters.__path__) if m.ispkg}
    assert packages == set(PLATFORMS)


@pytest.mark.parametrize("name", sorted(PLATFORMS))
def test_each_package_exposes_the_typed_factory(name: str) -> None:
    create = importlib.import_module(f"bot.adapters.{name}").create
    assert list(inspect.signature(create).parameters) == ["deps"]
    assert typing.get_type_hints(create) == {"deps": AdapterDeps, "return": dict[str, Adapter]}


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'factory.db'}")
    yield db
    await db.dispose()


@pytest.mark.parametrize("name", sorted(PLATFORMS))
async def test_create_returns_adapters_by_their_platform_name(
    name: str, tmp_path: Path, database: Database
) -> None:
    settings = settings_with(tmp_path, {name})
    deps = AdapterDeps(Inbox(database), settings, database, secret=b"k")
    made = importlib.import_module(f"bot.adapters.{name}").create(deps)
    try:
        assert set(made) == PLATFORMS[name]
        for platform, adapter in made.items():
            assert isinstance(adapter, Adapter)
            assert adapter.platform == platform
            assert adapter.inbox is deps.inbox
    finally:
        await stop_all(made)


def test_deps_are_frozen(tmp_path: Path) -> None:
    deps = AdapterDeps(None, settings_with(tmp_path, set()), None, b"k")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        deps.secret = b"other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "enabled",
    [set(), {"webchat"}, {"telegram"}, {"wecom", "dingtalk"}, {"slack", "webchat"}, set(PLATFORMS)],
    ids=lambda e: "+".join(sorted(e)) or "none",
)
async def test_the_hub_builds_exactly_the_enabled_packages(
    enabled: set[str], tmp_path: Path
) -> None:
    hub = Hub(settings_with(tmp_path, enabled))
    try:
        expected = set().union(*(PLATFORMS[name] for name in enabled))
        assert set(hub.adapters) == expected
        assert all(adapter.inbox is hub.inbox for adapter in hub.adapters.values())
    finally:
        await stop_all(hub.adapters)
        await hub.db.dispose()
