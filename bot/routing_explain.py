"""The routing rules as people read them: the whole rule set as an SOP in Markdown, generated
from the settings (``gongdan rules explain``), and one ticket's scoring
(``gongdan rules explain --ticket GD-n``)."""

from __future__ import annotations

from bot.config import Settings
from bot.routing_rules import Ranking, Score, reason_text, recorded_reason
from bot.texts import say
from storage.records import Ticket

__all__ = ["explain_ticket", "sop"]


def _points(value: float) -> str:
    return f"{value:+g}"


def _shifts(settings: Settings, person_id: str, locale: str) -> str:
    person = next(p for p in settings.people if p.id == person_id)
    if person.shifts:
        return ", ".join(person.shifts)
    for team in settings.teams:
        if team.shifts and (person_id in team.members or team.lead == person_id):
            return say("routing.sop.shifts.team", locale, shifts=", ".join(team.shifts),
                       team=team.name)  # fmt: skip
    return say("routing.sop.shifts.none", locale)


def sop(settings: Settings, locale: str) -> str:
    """Every routing rule with its weights and every engineer's facts, in Markdown."""
    r = settings.routing
    duty = "routing.sop.who.duty_" + ("exclude" if r.off_duty == "exclude" else "penalise")
    rows = [
        say("routing.sop.row.skills", locale, points=_points(r.skill_points)),
        say("routing.sop.row.load", locale, points=_points(r.load_points)),
        say("routing.sop.row.distance", locale, points=_points(r.km_points), max_km=f"{r.max_km:g}",
            hours=f"{r.last_site_hours:g}", half=f"{r.max_km / 2:g}"),
        say("routing.sop.row.fatigue", locale, points=_points(r.fatigue_points),
            n=r.fatigue_after) if r.fatigue_after else say("routing.sop.row.fatigue_off", locale),
        say("routing.sop.row.preferred", locale, points=_points(r.preferred_points)),
    ]  # fmt: skip
    lines = [
        say("routing.sop.title", locale),
        "",
        say("routing.sop.intro", locale, tz=settings.timezone),
        "",
        say("routing.sop.who", locale),
        say("routing.sop.who.role", locale),
        say("routing.sop.who.load", locale),
        say(duty, locale, points=_points(r.off_duty_points)),
        say("routing.sop.who.escalation", locale),
        "",
        say("routing.sop.score", locale),
        say("routing.sop.head", locale),
        *rows,
        "",
        say("routing.sop.tie", locale),
        "",
        say("routing.sop.people", locale),
        say("routing.sop.people.head", locale),
    ]
    for p in settings.people:
        if p.role != "engineer":
            continue
        base = f"{p.base[0]:g}, {p.base[1]:g}" if p.base else "—"
        skills = ("、" if locale == "zh" else ", ").join(p.skills) or "—"
        shifts = _shifts(settings, p.id, locale)
        lines.append(f"| {p.name} ({p.id}) | {skills} | {p.max_open} | {shifts} | {base} |")
    return "\n".join(lines) + "\n"


def _row(score: Score, ranking: Ranking, locale: str) -> str:
    c = score.candidate
    if score.excluded is not None:
        outcome = say("routing.explain.out", locale, why=score.excluded.said(locale))
    elif score is ranking.winner:
        outcome = say("routing.explain.winner", locale)
    else:
        outcome = say("routing.explain.eligible", locale)
    parts = "; ".join(f"{p.rule} {_points(p.points)}: {p.said(locale)}" for p in score.parts)
    return f"| {c.name} ({c.key}) | {score.total:g} | {outcome} | {parts} |"


def explain_ticket(
    ticket: Ticket, ranking: Ranking, *, assignee: str | None, asset: str | None, locale: str
) -> str:
    """One ticket scored now: every engineer, each rule's points and reason, the winner; and
    the reason recorded when it was assigned, if any."""
    extra = say("routing.explain.asset", locale, asset=asset) if asset else ""
    lines = [
        say("routing.explain.title", locale, number=ticket.number),
        "",
        say("routing.explain.ticket", locale, title=ticket.title, priority=ticket.priority,
            category=ticket.category, asset=extra, assignee=assignee or "—"),
        "",
        say("routing.explain.head", locale),
        *(_row(s, ranking, locale) for s in ranking.scores),
        "",
    ]  # fmt: skip
    win = ranking.winner
    if win is None:
        lines.append(say("routing.nobody", locale))
    else:
        lines.append(
            say("routing.explain.result", locale, name=win.candidate.name, score=f"{win.total:g}",
                reason=reason_text(win, locale, tie=ranking.tie))
        )  # fmt: skip
    why = (ticket.intake or {}).get("routing")
    if why and why.get("person"):
        lines.append("")
        lines.append(say("routing.explain.recorded", locale, person=why["person"],
                         reason=recorded_reason(why, locale)))  # fmt: skip
    return "\n".join(lines) + "\n"
