"""``[dashboard]``: the managers' figures page (``bot/web/dashboard.py``). Part of the one
settings object, ``bot.config.Settings``, kept apart so that each file stays readable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DashboardSettings"]


class DashboardSettings(BaseModel):
    """``/dashboard``, ``/dashboard/api/figures`` and ``/dashboard/export.csv`` (staff only:
    managers and dispatchers see every team, engineers their own)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_days: int = Field(92, ge=1, le=366)
    """The longest period a request may ask for (``from``/``to``)."""
    risk_rows: int = Field(50, ge=1, le=500)
    """How many tickets the SLA-risk list shows, the nearest deadline first."""
    requests_per_minute: int = Field(60, ge=1)
    """Per signed-in person, over the page, its JSON and the export (each costs a few
    queries over the period); more is a 429."""
    export_rows: int = Field(50_000, ge=1, le=1_000_000)
    """At most this many tickets in one CSV export (the oldest first)."""
