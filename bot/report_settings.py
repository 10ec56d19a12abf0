"""``[report]``: the daily health report (``bot/flows/reports.py``). Part of the one settings
object, ``bot.config.Settings``, kept apart so that each file stays readable."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ReportSettings"]

_AT = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_CHAT = re.compile(r"[a-z][a-z0-9-]*:.+")


class ReportSettings(BaseModel):
    """Yesterday's figures, posted once a day to each manager's chat."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    at: str = "08:30"
    """Local time (``timezone``) after which the day's report is posted, ``HH:MM``."""
    chats: list[str] = []
    """Where it goes, ``platform:chat_id`` (e.g. a managers' group ``slack:C0MGR``). Empty:
    each manager's direct chat — their first identity on a running platform, as the SLA
    escalation's ``notify_manager`` step reaches them."""
    locale: Literal["zh", "en"] | None = None
    """Language of the report in ``chats`` (default: ``locale``; a manager's direct chat gets
    the manager's own ``locale``)."""
    check_minutes: float = Field(1.0, gt=0, le=60)
    """How often a worker looks whether a report is due."""

    @field_validator("at")
    @classmethod
    def _time(cls, v: str) -> str:
        if not _AT.fullmatch(v):
            raise ValueError("must be HH:MM (24-hour clock), e.g. '08:30'")
        return v

    @field_validator("chats")
    @classmethod
    def _chats(cls, v: list[str]) -> list[str]:
        for ref in v:
            if not _CHAT.fullmatch(ref):
                raise ValueError(f"{ref!r} is not platform:chat_id")
        return v

    @property
    def hour_minute(self) -> tuple[int, int]:
        h, m = self.at.split(":")
        return int(h), int(m)
