"""``[maintenance]``: repeat-failure suggestions and preventive-maintenance plans. Part of the
one settings object, ``bot.config.Settings`` (which re-exports these), kept apart so that each
file stays readable."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["MaintenancePlan", "MaintenanceSettings"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MaintenancePlan(_Section):
    """A preventive-maintenance schedule (``[[maintenance.plans]]``) for one asset (``asset``,
    its code) or every asset of a category (``category``): a calendar interval
    (``every_days``, fixed or ``floating``) or a meter interval (``meter_every``)."""

    id: str | None = Field(None, min_length=1, max_length=120)
    """Names the plan in its runs (default: made of its target and interval). Changing it
    starts the plan afresh."""
    asset: str | None = Field(None, min_length=1, max_length=100)
    category: str | None = Field(None, min_length=1, max_length=100)
    title: str | None = Field(None, min_length=1, max_length=120)
    """The PM ticket's title (default: 预防性维护 / Preventive maintenance)."""
    every_days: int | None = Field(None, ge=1, le=3660)
    """Fixed: due every N days from ``start``, whenever the last one was done. Floating: due
    N days after the last PM ticket of the plan was resolved."""
    floating: bool = False
    start: date | None = None
    """The first due date (default: ``every_days`` after the asset's install date, or after
    it was registered)."""
    lead_days: int = Field(0, ge=0)
    """Open the ticket this many days before the due date."""
    meter_every: float | None = Field(None, gt=0)
    """Due each time the asset's meter (imported readings) passes a multiple of this."""
    checklist: list[str] = Field(min_length=1)
    """The steps, shown on the ticket's card and in its description."""
    priority: Literal["P0", "P1", "P2", "P3"] | None = None
    """Default: ``maintenance.priority``."""

    @field_validator("checklist")
    @classmethod
    def _steps(cls, v: list[str]) -> list[str]:
        steps = [s.strip() for s in v]
        if not all(steps):
            raise ValueError("a checklist step is empty")
        return steps

    @model_validator(mode="after")
    def _one_of_each(self) -> MaintenancePlan:
        if (self.asset is None) == (self.category is None):
            raise ValueError("give exactly one of 'asset' (a code) or 'category'")
        if (self.every_days is None) == (self.meter_every is None):
            raise ValueError("give exactly one of 'every_days' or 'meter_every'")
        if self.every_days is None and (self.floating or self.start or self.lead_days):
            raise ValueError("'floating', 'start' and 'lead_days' need 'every_days'")
        if self.every_days is not None and self.lead_days >= self.every_days:
            raise ValueError("'lead_days' must be less than 'every_days'")
        return self

    @property
    def key(self) -> str:
        if self.id is not None:
            return self.id
        target = f"asset:{self.asset}" if self.asset else f"category:{self.category}"
        if self.meter_every is not None:
            return f"{target}/{self.meter_every:g}m"
        return f"{target}/{self.every_days}d{'-floating' if self.floating else ''}"


class MaintenanceSettings(_Section):
    """Preventive maintenance (``bot/flows/maintenance.py``): suggestions for assets that keep
    failing, and PM tickets opened on schedule."""

    enabled: bool = True
    suggest_after: int = Field(3, ge=0)
    """Suggest preventive maintenance when an asset has this many tickets within
    ``suggest_days`` (0: never)."""
    suggest_days: float = Field(30.0, gt=0)
    priority: Literal["P0", "P1", "P2", "P3"] = "P3"
    """Priority of PM tickets (a plan's own wins)."""
    check_minutes: float = Field(60.0, gt=0)
    """How often the hub looks for due plans and repeat failures."""
    plans: list[MaintenancePlan] = []

    @model_validator(mode="after")
    def _unique_keys(self) -> MaintenanceSettings:
        keys = [p.key for p in self.plans]
        for dup in sorted({k for k in keys if keys.count(k) > 1}):
            raise ValueError(f"two plans are both {dup!r}: give one an 'id'")
        return self
