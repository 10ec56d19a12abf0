"""Neutral outbound messages → WeCom JSON bodies (pure functions, no I/O).

- A ``Card`` for the app (and the AI bot) is a ``template_card`` of type ``button_interaction``
  (doc 90236): the title, the fields as ``horizontal_content_list`` (at most 6), the text as
  ``sub_title_text``, the progress link as ``card_action``, and up to 6 buttons whose ``key`` is
  the signed action token (WeCom echoes it back as ``EventKey``). ``replace_text`` greys the
  buttons out on the presser's phone while the click is processed.
- A card is **marked stale** with ``update_template_card``'s ``button.replace_name`` form: its
  buttons become one grey label pointing at the fresh card below.
- A card to a group robot is markdown (robots cannot call back, so there are no buttons; the
  text says where to act instead).

Lengths follow the template-card field notes ("建议不超过…"): text is clipped, tokens never.
WeCom has no confirm dialog: a button's ``confirm`` question is not shown (the ticket rules
still decide what a press may do).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from bot.events import Button, Card

__all__ = [
    "MARKDOWN_MAX",
    "TEXT_MAX",
    "app_text",
    "clip_bytes",
    "markdown_card",
    "new_task_id",
    "robot_text",
    "stale_label",
    "template_card",
]

TEXT_MAX = 2048  # bytes: app and robot text
MARKDOWN_MAX = 4096  # bytes: robot markdown
TITLE_MAX = 36
DESC_MAX = 44
SUBTITLE_MAX = 160
KEYNAME_MAX = 10
VALUE_MAX = 30
FIELDS_MAX = 6
BUTTONS_MAX = 6
BUTTON_TEXT_MAX = 10
#: Button styles 1–4 (the doc lists the numbers only); the shared send sample uses 1 for the
#: main action, 2 for a second and 3 for an escalation.
_STYLES = {"primary": 1, "default": 2, "danger": 3}
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_TASK_ID = re.compile(r"[^0-9A-Za-z_\-@]")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def clip_bytes(text: str, limit: int) -> str:
    """At most ``limit`` UTF-8 bytes, cut on a character boundary, marked with "…"."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def _zh(card: Card) -> bool:
    return bool(_CJK.search(card.title + "".join(label for label, _ in card.fields)))


def new_task_id(card: Card) -> str:
    """Unique per app, ≤128 bytes of ``[0-9a-zA-Z_-@]``: ticket, version and a random tail."""
    task = f"gd{card.ticket_id}v{card.version}-{secrets.token_hex(6)}"
    return _TASK_ID.sub("", task)[:128]


def _button(button: Button) -> dict[str, Any]:
    return {
        "type": 0,
        "text": _clip(button.label, BUTTON_TEXT_MAX),
        "style": _STYLES.get(button.style, 2),
        "key": button.token,
    }


def template_card(
    card: Card, task_id: str, *, fallback_url: str, source: str = ""
) -> dict[str, Any]:
    """The ``template_card`` object for ``message/send`` and ``update_template_card``.

    A card with buttons is ``button_interaction``; one with nothing left to press (a closed
    ticket) is a ``text_notice``, which needs a click target: the card's link, else
    ``fallback_url`` (the hub's public URL)."""
    fields = [
        {"keyname": _clip(label, KEYNAME_MAX), "value": _clip(value or "—", VALUE_MAX)}
        for label, value in card.fields[:FIELDS_MAX]
    ]
    body: dict[str, Any] = {
        "card_type": "button_interaction" if card.buttons else "text_notice",
        "main_title": {"title": _clip(card.title, TITLE_MAX)},
        "task_id": task_id,
        "horizontal_content_list": fields,
    }
    if source:
        body["source"] = {"desc": _clip(source, 20), "desc_color": 1}
    if card.footer:
        body["main_title"]["desc"] = _clip(card.footer, DESC_MAX)
    if card.text:
        body["sub_title_text"] = _clip(card.text, SUBTITLE_MAX)
    if card.link or not card.buttons:
        body["card_action"] = {"type": 1, "url": card.link or fallback_url}
    if card.buttons:
        body["button_list"] = [_button(b) for b in card.buttons[:BUTTONS_MAX]]
        body["replace_text"] = "处理中…" if _zh(card) else "Working…"
    return body


def stale_label(card: Card) -> str:
    """The grey label an out-of-date card's buttons are replaced with."""
    return "已更新，见新卡片" if _zh(card) else "Updated — see below"


def app_text(text: str) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": clip_bytes(text, TEXT_MAX)}}


def markdown_card(card: Card) -> str:
    """A card for a group robot: markdown, no buttons, and where to act instead."""
    zh = _zh(card)
    lines = [f"**{_md(card.title)}**"]
    lines += [f"> {_md(label)}：{_md(value or '—')}" for label, value in card.fields]
    if card.text:
        lines += ["", _md(card.text)]
    if card.buttons:
        actions = "、".join(_md(b.label) for b in card.buttons)
        lines += [
            "",
            f'<font color="comment">可执行：{actions}。请在企业微信应用消息中操作。</font>'
            if zh
            else f'<font color="comment">Next: {actions}. Act on the card in the WeCom app.</font>',
        ]
    if card.link:
        lines.append(f"[{'查看进度' if zh else 'Progress'}]({card.link})")
    if card.footer:
        lines.append(f'<font color="comment">{_md(card.footer)}</font>')
    return clip_bytes("\n".join(lines), MARKDOWN_MAX)


def _md(text: str) -> str:
    """Keep people's text from opening markdown links or tags."""
    return text.replace("<", "＜").replace(">", "＞").replace("[", "［").replace("]", "］")


def robot_text(text: str, mentions: Sequence[str], userids: Mapping[str, str]) -> dict[str, Any]:
    """Robot text; people with a ``wecom:`` identity are @-mentioned through ``mentioned_list``."""
    mentioned = [userids[k] for k in mentions if k in userids]
    body: dict[str, Any] = {"content": clip_bytes(text, TEXT_MAX)}
    if mentioned:
        body["mentioned_list"] = mentioned
    return {"msgtype": "text", "text": body}
