"""Telegram adapter (python-telegram-bot): webhook or long polling, cards as inline keyboards."""

from __future__ import annotations

from bot.adapters.telegram.adapter import TelegramAdapter
from bot.config import Settings
from bot.inbox import Inbox

__all__ = ["TelegramAdapter", "create"]


def create(inbox: Inbox, settings: Settings) -> TelegramAdapter:
    """The hub's entry point when ``[telegram] enabled = true``."""
    return TelegramAdapter(inbox, settings)
