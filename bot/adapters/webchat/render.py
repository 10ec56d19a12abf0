"""Neutral outbound messages → what the web chat pages draw (pure functions, no I/O)."""

from __future__ import annotations

from typing import Any

from bot.events import Card, Notice, Text

__all__ = ["render"]


def render(message: Text | Card | Notice) -> tuple[str, dict[str, Any]]:
    """(feed kind, payload) for a message."""
    match message:
        case Card():
            return "card", {
                "ticket_id": message.ticket_id,
                "version": message.version,
                "title": message.title,
                "fields": [list(f) for f in message.fields],
                "text": message.text,
                "footer": message.footer,
                "buttons": [
                    {
                        "label": b.label,
                        "token": b.token,
                        "style": b.style,
                        "confirm": b.confirm,
                        "action": b.action,
                    }
                    for b in message.buttons
                ],
            }
        case Notice():
            return "notice", {"text": message.text, "user_id": message.user_id}
        case Text():
            return "text", {"text": message.text}
