"""Who should take a ticket, and why: named rules score every engineer (pure, no I/O).

Each rule gives an engineer points and a short reason (a text key and its values, said in
any language later). Three rules can exclude instead of scoring:

- **load**: an engineer at ``max_open`` open tickets is never picked;
- **duty**: one outside their shifts is not picked while anyone is on duty (when nobody is,
  everyone is scored and those off duty lose ``off_duty_points``);
- being named in ``exclude`` (an escalation looking for someone else).

The others only add points: **skills** (the asset's category or model when the ticket has an
asset, else its category, device and title), **load** per open ticket, **distance** (km from
where the engineer is to the ticket's site), **fatigue** (too many similar tickets in a row),
**preferred** (the asset's preferred engineer). The highest total wins; on equal totals the
engineer whose newest ticket is oldest (or who has none) goes first, so equal engineers take
turns rather than the first name always winning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.config import RoutingSettings
from bot.shifts import Shift
from bot.texts import say

__all__ = [
    "Candidate",
    "Job",
    "Part",
    "Ranking",
    "Score",
    "haversine_km",
    "rank",
    "reason_text",
    "recorded_reason",
]

Coords = tuple[float, float]
#: Verdicts that say nothing about this engineer in particular (left out of the one line).
_QUIET = frozenset({"routing.duty.always", "routing.distance.no_site"})


@dataclass(frozen=True, slots=True)
class Job:
    """What is to be routed."""

    category: str
    title: str
    device: str | None = None
    asset_category: str | None = None  # set when the ticket names a registered asset
    asset_model: str | None = None
    has_asset: bool = False
    preferred: str | None = None  # the asset's preferred engineer (a person's config id)
    site: Coords | None = None  # the ticket's site, when its coordinates are known

    @property
    def kind(self) -> str:
        """What "similar" means for fatigue: the asset's category, else the ticket's."""
        return self.asset_category or self.category


@dataclass(frozen=True, slots=True)
class Candidate:
    """An engineer as the rules see them at one moment."""

    key: str
    person_id: int
    name: str
    skills: tuple[str, ...]
    max_open: int
    load: int
    shifts: tuple[Shift, ...] = ()
    base: Coords | None = None
    last_site: Coords | None = None  # where their newest recent ticket is
    streak: int = 0  # their newest tickets in a row of the job's kind
    last_ticket: int | None = None  # the id of the newest ticket they hold or held


@dataclass(frozen=True, slots=True)
class Part:
    """One rule's verdict on one engineer."""

    rule: str  # skills | duty | load | distance | fatigue | preferred | excluded
    points: float
    key: str  # a text key in bot/texts.py
    values: dict[str, Any] = field(default_factory=dict)

    def said(self, locale: str) -> str:
        return say(self.key, locale, **self.values)

    def as_json(self) -> list[Any]:
        return [self.rule, round(self.points, 2), self.key, self.values]

    @classmethod
    def from_json(cls, raw: Sequence[Any]) -> Part:
        return cls(str(raw[0]), float(raw[1]), str(raw[2]), dict(raw[3]))


@dataclass(slots=True)
class Score:
    candidate: Candidate
    parts: list[Part]
    excluded: Part | None = None  # why this engineer cannot be picked now

    @property
    def total(self) -> float:
        return round(sum(p.points for p in self.parts), 2)


@dataclass(slots=True)
class Ranking:
    """Every engineer's score, best first (those excluded last), and the winner."""

    scores: list[Score]
    tie: bool = False  # the winner's total equals the runner-up's (the tie-break decided)
    nobody_on_duty: bool = False

    @property
    def winner(self) -> Score | None:
        first = self.scores[0] if self.scores else None
        return first if first is not None and first.excluded is None else None

    def as_json(self, locale: str) -> dict[str, Any]:
        """What the ticket keeps (``intake["routing"]``) and the assignment's audit row says."""
        win = self.winner
        if win is None:
            return {"person": None, "reason": say("routing.nobody", locale)}
        return {
            "person": win.candidate.key,
            "score": win.total,
            "reason": reason_text(win, locale, tie=self.tie),
            "parts": [p.as_json() for p in win.parts],
            "tie": self.tie,
            "scores": {s.candidate.key: None if s.excluded else s.total for s in self.scores},
        }


def haversine_km(a: Coords, b: Coords) -> float:
    """Great-circle distance in km between two (lat, lon) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(min(1.0, h)))


def reason_text(score: Score, locale: str, *, tie: bool = False) -> str:
    """ "技能匹配：注塑机 · 距离 3.2 km · 当前 2 单" — the parts worth saying, joined."""
    said = [p.said(locale) for p in score.parts if p.key not in _QUIET]
    if tie:
        said.append(say("routing.tie", locale))
    return " · ".join(said)


def recorded_reason(why: dict[str, Any], locale: str) -> str:
    """A reason kept with a ticket (``Ranking.as_json``), said in ``locale``."""
    parts = [Part.from_json(raw) for raw in why.get("parts") or ()]
    said = reason_text(Score(_NOBODY, parts), locale, tie=bool(why.get("tie")))
    if why.get("by_name"):  # a dispatcher's or manager's own choice
        said = " · ".join(
            x for x in (say("routing.manual", locale, name=why["by_name"]), said) if x
        )
    return said or str(why.get("reason") or "")


_NOBODY = Candidate("", 0, "", (), 0, 0)


def _skills(rules: RoutingSettings, job: Job, c: Candidate) -> Part:
    if job.has_asset:
        wanted = [w for w in (job.asset_category, job.asset_model) if w]
    else:
        wanted = [w for w in (job.category, job.device, job.title) if w]
    for skill in c.skills:
        if skill and any(skill.lower() in w.lower() for w in wanted):
            return Part("skills", rules.skill_points, "routing.skills", {"skill": skill})
    return Part("skills", 0.0, "routing.skills.none")


def _on_duty(c: Candidate, local: datetime) -> Part | None:
    """The duty verdict when on duty (or without shifts); None when off duty."""
    if not c.shifts:
        return Part("duty", 0.0, "routing.duty.always")
    for shift in c.shifts:
        if shift.covers(local):
            return Part("duty", 0.0, "routing.duty.on", {"shift": shift.text})
    return None


def _distance(rules: RoutingSettings, job: Job, c: Candidate) -> Part:
    origin, where = (c.last_site, "last") if c.last_site else (c.base, "base")
    if job.site is None:
        return Part("distance", 0.0, "routing.distance.no_site")
    if origin is None:  # counted as half the cap: neither favoured nor buried
        half = rules.max_km / 2
        return Part("distance", rules.km_points * half or 0.0, "routing.distance.unknown",
                    {"km": f"{half:g}"})  # fmt: skip
    km = round(haversine_km(origin, job.site), 1)
    points = rules.km_points * min(km, rules.max_km) or 0.0
    return Part("distance", points, f"routing.distance.{where}", {"km": km})


def rank(
    rules: RoutingSettings,
    job: Job,
    candidates: Sequence[Candidate],
    local_now: datetime,
    *,
    exclude: frozenset[int] = frozenset(),
) -> Ranking:
    """Score every candidate for ``job`` at ``local_now`` (in the configured time zone)."""
    scores: list[Score] = []
    duty: dict[int, Part | None] = {}
    for c in candidates:
        score = Score(c, [])
        if c.person_id in exclude:
            score.excluded = Part("excluded", 0.0, "routing.excluded")
        elif c.load >= c.max_open:
            score.excluded = Part(
                "load", 0.0, "routing.load.full", {"load": c.load, "max": c.max_open}
            )
        duty[c.person_id] = _on_duty(c, local_now)
        scores.append(score)
    nobody = not any(duty[s.candidate.person_id] for s in scores if s.excluded is None)
    for s in scores:
        c = s.candidate
        verdict = duty[c.person_id]
        if verdict is None:
            if rules.off_duty == "exclude" and not nobody:
                s.excluded = s.excluded or Part("duty", 0.0, "routing.duty.off")
            key = "routing.duty.off_nobody" if nobody else "routing.duty.off"
            verdict = Part("duty", rules.off_duty_points, key)
        s.parts = [_skills(rules, job, c), verdict]
        s.parts.append(
            Part("load", rules.load_points * c.load or 0.0, "routing.load", {"load": c.load})
        )
        s.parts.append(_distance(rules, job, c))
        if rules.fatigue_after and c.streak >= rules.fatigue_after:
            s.parts.append(
                Part("fatigue", rules.fatigue_points, "routing.fatigue",
                     {"n": c.streak, "kind": job.kind})
            )  # fmt: skip
        if job.preferred and job.preferred == c.key:
            s.parts.append(Part("preferred", rules.preferred_points, "routing.preferred"))
    scores.sort(
        key=lambda s: (
            s.excluded is not None,
            -s.total,
            s.candidate.last_ticket or 0,  # the longest without a new ticket first
            s.candidate.person_id,
        )
    )
    eligible = [s for s in scores if s.excluded is None]
    tie = len(eligible) > 1 and eligible[0].total == eligible[1].total
    return Ranking(scores, tie=tie, nobody_on_duty=nobody)
