"""Slack: Events API and interactivity on ``/webhooks/slack`` (or Socket Mode), Web API out.

The hub calls ``create(inbox, settings)`` when ``[slack] enabled = true``; see README.md here
for setting up the Slack app.
"""

from __future__ import annotations

from bot.adapters.slack.adapter import SlackAdapter
from bot.config import Settings
from bot.inbox import Inbox

__all__ = ["SlackAdapter", "create"]


def create(inbox: Inbox, settings: Settings) -> SlackAdapter:
    """The adapter for ``settings.slack``; people's ``slack:U…`` identities name mentions."""
    slack_ids: dict[str, str] = {}
    for person in settings.people:
        for ref in person.identities:
            platform, _, user_id = ref.partition(":")
            if platform == "slack" and person.id not in slack_ids:
                slack_ids[person.id] = user_id
    return SlackAdapter(inbox, settings.slack, slack_ids=slack_ids)
