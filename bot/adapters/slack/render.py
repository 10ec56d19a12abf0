"""Neutral outbound messages → Slack ``chat.*`` arguments (pure functions, no I/O).

A ``Card`` becomes Block Kit: a header, the fields as section fields (ten per section, the
Block Kit maximum; more fields continue in the next section), the optional text, a context line
(footer and progress link) and an actions block of buttons. Each button carries the signed
action token as its ``value`` and a unique ``action_id`` ``gd:<action>:<index>``; ``default``
buttons have no ``style``; ``Button.confirm`` becomes a Slack ``confirm`` dialog. Every
message also carries a plain ``text`` fallback (notifications, screen readers, old clients).

Limits from the Block Kit reference are enforced by clipping text (never tokens): header 150,
field 2000, section text 3000, button label 75, confirm title 100 / text 300 / buttons 30.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.events import Button, Card, Notice, Text

__all__ = ["escape", "render_card", "render_notice", "render_text"]

HEADER_MAX = 150
FIELD_MAX = 2000
FIELDS_PER_SECTION = 10
SECTION_TEXT_MAX = 3000
BUTTON_TEXT_MAX = 75
BUTTONS_MAX = 25
FALLBACK_MAX = 3000
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def escape(text: str) -> str:
    """Slack's three control characters in ``mrkdwn`` and message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": _clip(text, limit) or "—", "emoji": True}


def _mrkdwn(text: str, limit: int) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _clip(text, limit) or "—"}


def render_card(card: Card) -> dict[str, Any]:
    """``{"text": …, "blocks": […]}`` for ``chat.postMessage`` / ``chat.update``."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(card.title, HEADER_MAX)},
    ]
    fields = [
        _mrkdwn(f"*{escape(label)}*\n{escape(value or '—')}", FIELD_MAX)
        for label, value in card.fields
    ]
    for start in range(0, len(fields), FIELDS_PER_SECTION):
        blocks.append({"type": "section", "fields": fields[start : start + FIELDS_PER_SECTION]})
    if card.text:
        blocks.append({"type": "section", "text": _mrkdwn(escape(card.text), SECTION_TEXT_MAX)})
    context = [_mrkdwn(escape(card.footer), SECTION_TEXT_MAX)] if card.footer else []
    if card.link:
        context.append(_mrkdwn(f"<{card.link}>", SECTION_TEXT_MAX))
    if context:
        blocks.append({"type": "context", "elements": context})
    if card.buttons:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"gd:{card.ticket_id}",
                "elements": [_button(b, i) for i, b in enumerate(card.buttons[:BUTTONS_MAX])],
            }
        )
    return {"text": _fallback(card), "blocks": blocks}


def _button(button: Button, index: int) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "action_id": f"gd:{button.action or 'button'}:{index}",
        "text": _plain(button.label, BUTTON_TEXT_MAX),
        "value": button.token,
    }
    if button.style in ("primary", "danger"):
        element["style"] = button.style
    if button.confirm:
        element["confirm"] = {
            "title": _plain(button.label, 100),
            "text": _plain(button.confirm, 300),
            "confirm": _plain(button.label, 30),
            "deny": _plain(_deny_label(button.confirm + button.label), 30),
            **({"style": "danger"} if button.style == "danger" else {}),
        }
    return element


def _deny_label(question: str) -> str:
    # The card carries no locale; the question is already in the reader's language.
    return "取消" if _CJK.search(question) else "Cancel"


def _fallback(card: Card) -> str:
    lines = [card.title, *(f"{label}: {value}" for label, value in card.fields)]
    return _clip(escape("\n".join(lines)), FALLBACK_MAX)


def render_text(message: Text, slack_ids: Mapping[str, str]) -> dict[str, Any]:
    """Plain text; mentioned people that have a Slack identity are prefixed as ``<@U…>``."""
    mentions = " ".join(f"<@{slack_ids[k]}>" for k in message.mentions if k in slack_ids)
    text = escape(message.text)
    return {"text": f"{mentions} {text}" if mentions else text}


def render_notice(notice: Notice) -> dict[str, Any]:
    return {"text": escape(notice.text)}
