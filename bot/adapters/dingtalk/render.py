"""Neutral outbound messages → DingTalk payloads (pure, no I/O).

A ``Card`` becomes the ``cardParamMap`` of our interactive card template (every value a
string, every variable always present so an update by key leaves nothing stale):

=====================  =====================================================================
``title``              the card's title
``fields``             Markdown, one ``**label**：value`` line per field
``text``               Markdown, the description (may be empty)
``footer``             e.g. the last update time
``link``               the progress page, or empty
``btn<i>_label``       button ``i`` (0…5): its label,
``btn<i>_token``       the token its click sends back (``params.token``),
``btn<i>_style``       ``primary`` | ``default`` | ``danger``,
``btn<i>_visible``     ``"true"`` or ``"false"``
=====================  =====================================================================

Private variables, per presser: ``notice`` (our answer to their last click) and the confirm
row ``confirm_visible`` / ``confirm_label`` / ``confirm_token``. A button that needs confirming
carries ``CONFIRM + token``: its first press only shows the presser the confirm row, whose ✔
carries the bare token and whose ✖ (action id ``disarm``) hides it again — no state is kept.
Tokens are base64url, so the prefixes never collide with one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.events import Card

__all__ = [
    "CONFIRM",
    "DISARM",
    "MAX_BUTTONS",
    "callback_answer",
    "confirm_row",
    "hidden_confirm_row",
    "notice_data",
    "openapi_text",
    "render_card",
    "webhook_text",
]

CONFIRM = "?"
DISARM = "!"
#: Button slots in the template; the state table never offers more than five at once.
MAX_BUTTONS = 6
_MAX_TEXT = 4000
_MAX_FIELD = 300
_STYLES = ("primary", "default", "danger")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_card(card: Card, *, two_step_confirm: bool = True) -> dict[str, str]:
    fields = "  \n".join(
        f"**{_one_line(label)}**：{_clip(_one_line(value), _MAX_FIELD)}"
        for label, value in card.fields
    )
    params = {
        "title": _clip(_one_line(card.title), 200),
        "fields": fields,
        "text": _clip(card.text, _MAX_TEXT),
        "footer": _clip(card.footer, 200),
        "link": card.link or "",
    }
    for i in range(MAX_BUTTONS):
        button = card.buttons[i] if i < len(card.buttons) else None
        token = ""
        if button is not None:
            confirm = button.confirm and two_step_confirm
            token = CONFIRM + button.token if confirm else button.token
        params |= {
            f"btn{i}_label": button.label if button else "",
            f"btn{i}_token": token,
            f"btn{i}_style": button.style if button and button.style in _STYLES else "default",
            f"btn{i}_visible": "true" if button else "false",
        }
    return params


def confirm_row(token: str, label: str, question: str) -> dict[str, str]:
    """The presser's private confirm row after the first press of ``CONFIRM + token``."""
    return {
        "confirm_visible": "true",
        "confirm_label": f"✔ {label}？" if label else question,
        "confirm_token": token,
    }


def hidden_confirm_row() -> dict[str, str]:
    return {"confirm_visible": "false", "confirm_token": ""}


def notice_data(text: str) -> dict[str, str]:
    """Our answer to a presser, on their copy of the card (and the confirm row put away)."""
    return {"notice": _clip(text, 500), **hidden_confirm_row()}


def callback_answer(private: dict[str, str] | None = None) -> dict[str, Any]:
    """A card callback's immediate answer: changes for the presser only, or nothing."""
    if not private:
        return {}
    return {
        "cardUpdateOptions": {"updateCardDataByKey": True, "updatePrivateDataByKey": True},
        "userPrivateData": {"cardParamMap": private},
    }


def webhook_text(text: str, at_user_ids: Sequence[str] = ()) -> dict[str, Any]:
    """A ``sessionWebhook`` text; an @mention needs both ``atUserIds`` and ``@id`` in it."""
    prefix = "".join(f"@{uid} " for uid in at_user_ids)
    body: dict[str, Any] = {
        "msgtype": "text",
        "text": {"content": prefix + _clip(text, _MAX_TEXT)},
    }
    if at_user_ids:
        body["at"] = {"atUserIds": list(at_user_ids), "isAtAll": False}
    return body


def openapi_text(text: str, names: Sequence[str] = ()) -> dict[str, str]:
    """``msgKey`` / ``msgParam`` for the robot send APIs (which cannot @mention: names only)."""
    prefix = "".join(f"@{name} " for name in names)
    param = {"content": prefix + _clip(text, _MAX_TEXT)}
    return {"msgKey": "sampleText", "msgParam": json.dumps(param, ensure_ascii=False)}
