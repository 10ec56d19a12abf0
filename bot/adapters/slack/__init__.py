"""Slack: Events API and interactivity on ``/webhooks/slack`` (or Socket Mode), Web API out.

The hub calls ``create(deps)`` when ``[slack] enabled = true``; see README.md here for setting up
the Slack app.
"""

from __future__ import annotations

from bot.adapters.base import Adapter, AdapterDeps
from bot.adapters.slack.adapter import SlackAdapter
from bot.adapters.slack.parse import PLATFORM

__all__ = ["SlackAdapter", "create"]


def create(deps: AdapterDeps) -> dict[str, Adapter]:
    """The adapter for ``settings.slack``; people's ``slack:U…`` identities name mentions."""
    settings = deps.settings
    slack_ids: dict[str, str] = {}
    for person in settings.people:
        for ref in person.identities:
            platform, _, user_id = ref.partition(":")
            if platform == PLATFORM and person.id not in slack_ids:
                slack_ids[person.id] = user_id
    return {PLATFORM: SlackAdapter(deps.inbox, settings.slack, slack_ids=slack_ids)}
