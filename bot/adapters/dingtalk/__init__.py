"""DingTalk: robot messages and interactive-card clicks in (HTTP callbacks or Stream mode),
OpenAPI out.

The hub calls ``create(deps)`` when ``[dingtalk] enabled = true``; see README.md here for setting
up the app, its robot and the card template.
"""

from __future__ import annotations

from bot.adapters.base import Adapter, AdapterDeps
from bot.adapters.dingtalk.adapter import DingtalkAdapter
from bot.adapters.dingtalk.parse import PLATFORM

__all__ = ["DingtalkAdapter", "create"]


def create(deps: AdapterDeps) -> dict[str, Adapter]:
    """The adapter for ``settings.dingtalk``; people's ``dingtalk:<staffId>`` identities (the
    first one each) name @mentions."""
    settings = deps.settings
    people: dict[str, tuple[str, str]] = {}
    for person in settings.people:
        for ref in person.identities:
            platform, _, staff_id = ref.partition(":")
            if platform == PLATFORM and person.id not in people:
                people[person.id] = (staff_id, person.name)
    return {
        PLATFORM: DingtalkAdapter(
            deps.inbox,
            settings.dingtalk,
            public_url=settings.public_url,
            locale=settings.locale,
            people=people,
        )
    }
