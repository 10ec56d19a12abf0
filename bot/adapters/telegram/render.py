"""Neutral outbound messages → Telegram HTML text and inline keyboards (pure, no I/O).

A card is HTML (``parse_mode=HTML``): the title in bold, one line per field, the text, the footer
in italics. Everything that came from people or the database goes through ``html.escape``; the
only tags are the ones written here. Buttons become an inline keyboard whose ``callback_data`` is
the action token (≤ 64 bytes), laid out three to a row for short labels and two for longer ones,
with the Bot API's own ``style`` (``primary`` blue, ``danger`` red) where the card asks for one.

Telegram has no confirm dialog, so a button with ``confirm`` is a two-step press. It carries
``CONFIRM + token``; pressing it changes nothing but *arms* the keyboard: a row
``[✔ label？] [✖]`` appears under it, ``✔`` carrying the bare token and ``✖`` ``DISARM + token``.
``arm`` and ``disarm`` compute those keyboards from the one Telegram sends back with the press,
so no state is kept anywhere. Tokens are base64url, so the two prefixes can never be confused
with a token.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import InlineKeyboardButtonLimit, KeyboardButtonStyle

from bot.events import Button, Card

__all__ = [
    "CONFIRM",
    "DISARM",
    "Rendered",
    "arm",
    "disarm",
    "keyboard",
    "mention",
    "render_card",
    "render_text",
]

CONFIRM = "?"  # first press of a button that needs confirming: arms the keyboard
DISARM = "!"  # the ✖ next to an armed button: puts the keyboard back
_ARMED_MARK = "✔ "
_MAX_DATA = int(InlineKeyboardButtonLimit.MAX_CALLBACK_DATA)
#: Telegram allows 4096 characters after entity parsing; leave room for UTF-16 surrogates.
_BUDGET = 4000
_MAX_TITLE = 200
_MAX_FIELD = 300
_STYLES = {"primary": KeyboardButtonStyle.PRIMARY, "danger": KeyboardButtonStyle.DANGER}


@dataclass(frozen=True, slots=True)
class Rendered:
    """What ``sendMessage`` / ``editMessageText`` take: HTML text and an optional keyboard."""

    text: str
    reply_markup: InlineKeyboardMarkup | None = None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def mention(user_id: int | str, name: str) -> str:
    """An HTML mention that works without a username (``tg://user?id=…``)."""
    return f'<a href="tg://user?id={int(user_id)}">{html.escape(name)}</a>'


def render_text(text: str, mentions: Sequence[tuple[int | str, str]] = ()) -> Rendered:
    """Plain text as HTML, prefixed by mentions of ``(telegram user id, name)``."""
    prefix = " ".join(mention(uid, name) for uid, name in mentions)
    used = sum(len(name) + 1 for _, name in mentions)
    body = html.escape(_clip(text, _BUDGET - used))
    return Rendered(f"{prefix} {body}" if prefix else body)


def render_card(card: Card) -> Rendered:
    title = _clip(card.title, _MAX_TITLE)
    fields = [(_clip(label, 40), _clip(value, _MAX_FIELD)) for label, value in card.fields]
    footer = _clip(card.footer, 200)
    link = _clip(card.link or "", 500)
    used = len(title) + sum(len(k) + len(v) + 2 for k, v in fields) + len(footer) + len(link) + 8
    text = _clip(card.text, max(0, _BUDGET - used))
    lines = [f"<b>{html.escape(title)}</b>"]
    lines += [f"{html.escape(k)}：{html.escape(v)}" for k, v in fields]
    if text:
        lines += ["", html.escape(text)]
    if footer or link:
        lines.append("")
    if footer:
        lines.append(f"<i>{html.escape(footer)}</i>")
    if link:
        # Plain text: Telegram links it; an <a href> to a non-public URL could be refused.
        lines.append(f"🔗 {html.escape(link)}")
    return Rendered("\n".join(lines), keyboard(card.buttons))


def _callback_data(button: Button) -> str:
    if button.confirm and len(button.token.encode()) + len(CONFIRM) <= _MAX_DATA:
        return CONFIRM + button.token
    return button.token  # a token that leaves no room for the prefix is pressed in one step


def _tg_button(button: Button) -> InlineKeyboardButton:
    style = _STYLES.get(button.style)
    return InlineKeyboardButton(
        button.label, callback_data=_callback_data(button), style=style.value if style else None
    )


def keyboard(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
    """Buttons in the card's order, three to a row when labels are short, else two."""
    if not buttons:
        return None
    per_row = 3 if max(len(b.label) for b in buttons) <= 6 else 2
    tg = [_tg_button(b) for b in buttons]
    return InlineKeyboardMarkup([tg[i : i + per_row] for i in range(0, len(tg), per_row)])


def _rows(markup: InlineKeyboardMarkup | None) -> list[list[InlineKeyboardButton]]:
    return [list(row) for row in markup.inline_keyboard] if markup is not None else []


def arm(markup: InlineKeyboardMarkup | None, data: str) -> InlineKeyboardMarkup | None:
    """The keyboard after the first press of ``data`` (``CONFIRM + token``): a confirm row under
    the pressed button's row. ``None`` when there is nothing to change (already armed, or the
    button is no longer on the card)."""
    token = data.removeprefix(CONFIRM)
    rows = _rows(markup)
    if any(b.callback_data == DISARM + token for row in rows for b in row):
        return None
    for i, row in enumerate(rows):
        pressed = next((b for b in row if b.callback_data == data), None)
        if pressed is not None:
            confirm_row = [
                InlineKeyboardButton(
                    f"{_ARMED_MARK}{pressed.text}？",
                    callback_data=token,
                    style=KeyboardButtonStyle.DANGER.value,
                ),
                InlineKeyboardButton("✖", callback_data=DISARM + token),
            ]
            return InlineKeyboardMarkup([*rows[: i + 1], confirm_row, *rows[i + 1 :]])
    return None


def disarm(markup: InlineKeyboardMarkup | None, data: str) -> InlineKeyboardMarkup | None:
    """The keyboard after ``✖`` (``DISARM + token``): the confirm row removed, or ``None``."""
    rows = _rows(markup)
    kept = [row for row in rows if not any(b.callback_data == data for b in row)]
    return None if len(kept) == len(rows) else InlineKeyboardMarkup(kept)
