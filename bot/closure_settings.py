"""``[closure]``: what a ticket needs before it may be resolved, the photos that prove the work,
the notice before auto-close and the service report. Part of the one settings object,
``bot.config.Settings``, kept apart so that each file stays readable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ClosureSettings"]

#: Ticket categories (``bot.tickets.Category`` values; repeated here: settings sit below it).
_CATEGORIES = frozenset(
    {
        "equipment_failure",
        "network_it",
        "software_config",
        "safety",
        "facility",
        "consultation",
        "other",
        "preventive_maintenance",
    }
)


class ClosureSettings(BaseModel):
    """Closure that proves the work (``bot/closure.py``, ``bot/flows/closure.py``)."""

    model_config = ConfigDict(extra="forbid")

    checklists: dict[str, list[str]] = {}
    """Per ticket category (``equipment_failure``, ``network_it``, ``safety`` …), the items the
    assignee ticks on the card before 已解决 is allowed, e.g. ``safety = ["现场已清理",
    "安全防护已恢复"]``. At most 8 items of at most 40 characters each."""
    require_root_cause: bool = True
    """已解决 needs a root cause: written (typed with the press, or "GD-12 原因：…") or the
    suspected cause of a confirmed voice diagnosis."""
    photo_max_mb: float = Field(5.0, gt=0, le=50)
    """The largest evidence photo taken (JPEG, PNG or WebP, checked by their magic bytes)."""
    photos_per_ticket: int = Field(20, ge=1, le=200)
    """At most this many photos on one ticket."""
    reports_per_minute: int = Field(6, ge=1, le=600)
    """Service reports (PDF) one person may have drawn per minute; the hub draws one at a
    time (a report is ~0.5 s of CPU), so a busy console cannot starve the hub."""
    notice_hours: float = Field(24.0, ge=0)
    """The customer is told this long before a resolved ticket closes by itself
    (``[tickets] auto_close_hours``), and is always given at least this long to answer (0: no
    notice)."""

    @field_validator("checklists")
    @classmethod
    def _items(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for category, items in v.items():
            if category not in _CATEGORIES:
                known = ", ".join(sorted(_CATEGORIES))
                raise ValueError(f"unknown category {category!r} (known: {known})")
            cleaned = [i.strip() for i in items]
            if not all(cleaned):
                raise ValueError(f"{category}: an item is empty")
            if len(cleaned) > 8 or any(len(i) > 40 for i in cleaned):
                raise ValueError(f"{category}: at most 8 items of at most 40 characters")
            if len(set(cleaned)) != len(cleaned):
                raise ValueError(f"{category}: an item appears twice")
            out[category] = cleaned
        return out

    @property
    def photo_max_bytes(self) -> int:
        return int(self.photo_max_mb * 1024 * 1024)
