"""``[progress]``: the customer's progress page (``/t/<token>``) and the link to it in every
milestone message. Part of the one settings object, ``bot.config.Settings``, kept apart so
that each file stays readable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ProgressSettings"]


class ProgressSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    """Serve ``/t/<token>`` and put its link under every milestone message the customer gets."""
    expire_days: int = Field(30, ge=1, le=3650)
    """A ticket's link works while it is open and this many days after it was closed or
    cancelled; after that it answers 404 like a forged one."""
    requests_per_minute: int = Field(60, ge=1, le=10_000)
    """Page and JSON loads per client address per minute (the route needs no sign-in);
    ``[limits] exempt`` addresses are not counted."""
    refresh_seconds: int = Field(30, ge=5, le=3600)
    """How often an open page asks whether the ticket changed (and then redraws itself)."""
