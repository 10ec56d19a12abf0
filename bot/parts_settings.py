"""``[parts]``: 待备件 with substance — the stores chat, the ETA and visit-time choices. Part of
the one settings object, ``bot.config.Settings``, kept apart so that each file stays readable."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["CHOICE", "PartsSettings"]

#: A choice on a button: ``today``, ``tomorrow``, or a span ``4h`` / ``3d`` / ``1w``.
CHOICE = re.compile(r"^(?:today|tomorrow|(?P<n>[1-9]\d{0,2})(?P<unit>[hdw]))$")
_ADDRESS = re.compile(r"^[a-z-]+:.+$")


def _choices(v: list[str]) -> list[str]:
    for choice in v:
        if not CHOICE.match(choice):
            raise ValueError(f"{choice!r} is not today, tomorrow or a span like 4h, 3d, 1w")
    if len(set(v)) != len(v):
        raise ValueError("a choice is listed twice")
    return v


class PartsSettings(BaseModel):
    """What 待备件 asks and whom it tells (``bot/flows/parts.py``)."""

    model_config = ConfigDict(extra="forbid")

    stores_chat: str | None = None
    """The stores' (备件库) chat, ``platform:chat_id`` (e.g. ``wecom-robot:<key>``,
    ``slack:C0STORES``, ``web:stores``): it gets each parts request once, and word when the
    parts arrived. None: nobody is told."""
    eta_choices: list[str] = Field(["today", "tomorrow", "3d", "1w"], min_length=1, max_length=5)
    """The buttons the engineer answers "when will the parts arrive?" with (今天 · 明天 ·
    3天内 · 1周内, then 待定: six buttons at most, as WeCom and DingTalk cards carry); a typed
    day works too (12月8日, 12-08, 周五)."""
    visit_choices: list[str] = Field(["4h", "today", "tomorrow"], min_length=1, max_length=6)
    """The buttons for "when will you be back to repair?" once the parts are in."""
    visit_default: str | None = None
    """Skip that question and promise this (e.g. ``"1d"``). None: ask."""
    day_ends: int = Field(18, ge=0, le=23)
    """A day-only answer (明天, 12月8日) means by this hour, local time."""
    ask_minutes: float = Field(120.0, gt=0)
    """How long the engineer's next message in a direct chat is read as the answer to an
    open parts question (later it is an ordinary message again)."""

    @field_validator("eta_choices", "visit_choices")
    @classmethod
    def _valid_choices(cls, v: list[str]) -> list[str]:
        return _choices(v)

    @field_validator("visit_default")
    @classmethod
    def _valid_default(cls, v: str | None) -> str | None:
        return v if v is None else _choices([v])[0]

    @field_validator("stores_chat")
    @classmethod
    def _valid_chat(cls, v: str | None) -> str | None:
        if v is not None and not _ADDRESS.match(v):
            raise ValueError(f"{v!r} is not platform:chat_id")
        return v
