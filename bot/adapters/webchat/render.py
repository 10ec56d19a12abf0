"""Neutral outbound messages → what the web chat pages draw (pure functions, no I/O)."""

from __future__ import annotations

from typing import Any

from bot.events import Card, Notice, Text
from bot.ticket_labels import press_of
from bot.tickets import Role, may_press

__all__ = ["render", "viewer_buttons"]


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
            notice = {"text": message.text, "user_id": message.user_id}
            if message.reply_ctx.get("press"):  # the console's press it answers
                notice["press"] = message.reply_ctx["press"]
            return "notice", notice
        case Text():
            return "text", {"text": message.text}


def viewer_buttons(payload: dict[str, Any], roles: frozenset[Role]) -> dict[str, Any]:
    """A card's payload with only the buttons someone holding ``roles`` may press."""
    buttons = [b for b in payload.get("buttons", []) if _may(b.get("action", ""), roles)]
    return {**payload, "buttons": buttons}


def _may(action: str, roles: frozenset[Role]) -> bool:
    press = press_of(action)
    return press is None or may_press(press, roles)
