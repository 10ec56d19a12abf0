"""Telegram adapter (python-telegram-bot): webhook or long polling, cards as inline keyboards.

The hub calls ``create(deps)`` when ``[telegram] enabled = true``; see README.md here for setting
up the bot.
"""

from __future__ import annotations

from bot.adapters.base import Adapter, AdapterDeps
from bot.adapters.telegram.adapter import TelegramAdapter
from bot.adapters.telegram.parse import PLATFORM

__all__ = ["TelegramAdapter", "create"]


def create(deps: AdapterDeps) -> dict[str, Adapter]:
    """The adapter for ``settings.telegram``."""
    return {PLATFORM: TelegramAdapter(deps.inbox, deps.settings)}
