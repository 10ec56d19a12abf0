"""The built-in web chat: ``/chat`` for customers, ``/console`` for engineers and dispatchers.

The hub calls ``create(deps)`` when ``[webchat] enabled = true`` (the default); the pages are
served from ``pages/`` here and follow their conversations live from the ``webchat_feed`` table.
"""

from __future__ import annotations

from bot.access import Access
from bot.adapters.base import Adapter, AdapterDeps
from bot.adapters.webchat.adapter import WebchatAdapter
from bot.adapters.webchat.parse import PLATFORM

__all__ = ["WebchatAdapter", "create"]


def create(deps: AdapterDeps) -> dict[str, Adapter]:
    """The web chat adapter: it keeps its feed in ``deps.db`` and signs sessions with
    ``deps.secret``."""
    access = deps.access or Access(deps.db, deps.settings, deps.secret)
    return {PLATFORM: WebchatAdapter(deps.inbox, deps.db, deps.settings, deps.secret, access)}
