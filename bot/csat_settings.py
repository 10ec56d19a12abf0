"""``[csat]``: the customer's 1–5 rating after close (``bot/flows/csat.py``). Part of the one
settings object, ``bot.config.Settings``, kept apart so that each file stays readable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CsatSettings"]


class CsatSettings(BaseModel):
    """Customer satisfaction: when a ticket closes (the customer confirms, or it closes itself)
    its reporter is asked for 1–5 stars, as buttons in the chat the ticket came from."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    """Ask for a rating at close (off: nothing is asked; presses on old stars still count)."""
    remind_after: float = Field(24.0, ge=0)
    """Hours after the question to ask once more if no star was pressed (0: never)."""
    comment_window: float = Field(30.0, ge=0)
    """Minutes after a rating during which the customer's next message in that chat is kept as
    the rating's comment instead of being read as a new report (0: no comment is invited)."""
    low_score: int = Field(2, ge=0, le=5)
    """A rating at or below this notifies the team's manager(s) (0: never)."""
