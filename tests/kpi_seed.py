"""A small history with known figures, written straight into the tables (as the engine would
have left them): the dashboard's and the daily report's tests read it back.

The zone is Asia/Shanghai (UTC+8); "now" is 2026-12-04 12:00 local. Local times below.

- GD-1 (maint, 一号厂房): 12-02 09:00 opened; accepted 09:30, on site 10:30, resolved 12:00,
  closed 14:00; CSAT 5.
- GD-2 (maint, 一号厂房): 12-02 10:00 opened; reassigned 10:20, assigned 10:25, accepted 11:00,
  on site 13:00, parts 13:30; repairing 12-03 09:00, resolved 10:00, closed 11:00 (CSAT 2 at
  11:30), reopened 12:00 → assigned.
- GD-3 (maint, 二号厂房): 12-03 08:00 opened, assigned; respond due 12-04 12:30.
- GD-4 (maint, 一号厂房): 12-03 09:00 opened, new; respond due 12-03 23:00, breached then.
- GD-5 (net, 三号车间): 12-03 10:00 opened, accepted by 王工 at 10:05.
- GD-6 (maint, 一号厂房): 12-03 11:00 a repeat merged into GD-1 (left out of every figure).
- GD-7 (maint, 一号厂房): 11-20 opened, diagnosing (before the period; still open).

Expected over 2026-11-28 … 12-04, every team: open 5 (new 1, assigned 2, accepted 1,
diagnosing 1); SLA risk GD-4 (overdue 13 h) then GD-3 (30 min left); opened 5; median first
response 30 min (5, 30, 60), arrival 2 h 15 min, resolution 13.5 h; first-time fix 50 %;
reopen 50 %; transfers per ticket 0.2; CSAT 3.5 from 2 ratings; load 李工 3, 王工 1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from storage.db import Database
from storage.models import TABLES

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=ZONE).astimezone(UTC)

STAFF: dict[str, Any] = {
    "people": [
        {"id": "li", "name": "李工", "role": "engineer", "identities": ["web:li"]},
        {"id": "wang", "name": "王工", "role": "engineer", "identities": ["web:wang"]},
        {"id": "zhao", "name": "赵经理", "role": "manager", "identities": ["web:zhao"]},
        {"id": "qian", "name": "钱经理", "role": "manager", "identities": ["web:qian"],
         "locale": "en"},
        {"id": "sun", "name": "孙调度", "role": "dispatcher", "identities": ["web:sun"]},
    ],
    "teams": [
        {"id": "maint", "name": "维修组", "members": ["li"], "lead": "zhao", "chats": ["web:team"]},
        {"id": "net", "name": "网络组", "members": ["wang"], "chats": ["web:net"]},
    ],
}  # fmt: skip


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


async def seed(db: Database) -> dict[str, int]:
    """Write the history; returns the people's ids by key."""
    people, tickets, events, ratings = (
        TABLES["people"],
        TABLES["tickets"],
        TABLES["ticket_events"],
        TABLES["csat_ratings"],
    )
    ids: dict[str, int] = {}
    async with db.begin() as conn:
        for n, (key, name, role) in enumerate(
            [
                ("li", "李工", "engineer"),
                ("wang", "王工", "engineer"),
                ("zhao", "赵经理", "manager"),
                ("qian", "钱经理", "manager"),
                ("sun", "孙调度", "dispatcher"),
                ("cust-1", "张三", "customer"),
            ],
            start=1,
        ):
            await conn.execute(
                people.insert().values(id=n, key=key, name=name, role=role, skills=[], max_open=5)
            )
            ids[key] = n
        org = TABLES["organisations"]
        await conn.execute(org.insert().values(id=1, code="acme", name="ACME 工厂"))
        await conn.execute(
            TABLES["sites"].insert().values(id=1, code="s1", name="一号厂房", organisation_id=1)
        )
        await conn.execute(
            TABLES["assets"].insert().values(
                id=1, code="IM-3", name="3号注塑机", category="注塑机", site_id=1,
                organisation_id=1, aliases=[],
            )
        )  # fmt: skip

        def ticket(
            n: int, team: str, site: str, state: str, created: datetime, **kw: Any
        ) -> dict[str, Any]:
            return {
                "id": n,
                "number": f"GD-{n}",
                "title": f"故障 {n}",
                "description": "",
                "priority": "P1",
                "category": "equipment_failure",
                "state": state,
                "site": site,
                "reporter_id": ids["cust-1"],
                "team_key": team,
                "origin_chat": "web:c-1",
                "created_at": created,
                "updated_at": created,
                "asset_id": 1 if site == "一号厂房" else None,
                **kw,
            }

        rows = [
            ticket(1, "maint", "一号厂房", "closed", local(12, 2, 9), closed_at=local(12, 2, 14),
                   assignee_id=ids["li"], root_cause="轴承磨损"),
            ticket(2, "maint", "一号厂房", "assigned", local(12, 2, 10), assignee_id=ids["li"],
                   root_cause="电源模块损坏", resolve_due=local(12, 5, 12)),
            ticket(3, "maint", "二号厂房", "assigned", local(12, 3, 8), assignee_id=ids["li"],
                   respond_due=local(12, 4, 12, 30), resolve_due=local(12, 4, 18)),
            ticket(4, "maint", "一号厂房", "new", local(12, 3, 9), respond_due=local(12, 3, 23)),
            ticket(5, "net", "三号车间", "accepted", local(12, 3, 10), assignee_id=ids["wang"]),
            ticket(6, "maint", "一号厂房", "closed", local(12, 3, 11), closed_at=local(12, 3, 11),
                   merged_into=1),
            ticket(7, "maint", "一号厂房", "diagnosing", local(11, 20, 9), assignee_id=ids["li"]),
        ]  # fmt: skip
        for row in rows:
            await conn.execute(tickets.insert().values(**row))

        trail: dict[int, list[tuple[datetime, str, str | None, str | None]]] = {
            1: [
                (local(12, 2, 9), "created", None, "new"),
                (local(12, 2, 9, 1), "transition", "new", "assigned"),
                (local(12, 2, 9, 30), "transition", "assigned", "accepted"),
                (local(12, 2, 9, 40), "transition", "accepted", "en_route"),
                (local(12, 2, 10, 30), "transition", "en_route", "on_site"),
                (local(12, 2, 10, 40), "transition", "on_site", "diagnosing"),
                (local(12, 2, 12), "transition", "diagnosing", "resolved"),
                (local(12, 2, 14), "transition", "resolved", "closed"),
            ],
            2: [
                (local(12, 2, 10), "created", None, "new"),
                (local(12, 2, 10, 1), "transition", "new", "assigned"),
                (local(12, 2, 10, 20), "transition", "assigned", "new"),
                (local(12, 2, 10, 25), "transition", "new", "assigned"),
                (local(12, 2, 11), "transition", "assigned", "accepted"),
                (local(12, 2, 12), "transition", "accepted", "en_route"),
                (local(12, 2, 13), "transition", "en_route", "on_site"),
                (local(12, 2, 13, 10), "transition", "on_site", "diagnosing"),
                (local(12, 2, 13, 30), "transition", "diagnosing", "waiting_parts"),
                (local(12, 3, 9), "transition", "waiting_parts", "repairing"),
                (local(12, 3, 10), "transition", "repairing", "resolved"),
                (local(12, 3, 11), "transition", "resolved", "closed"),
                (local(12, 3, 12), "transition", "closed", "assigned"),
            ],
            3: [
                (local(12, 3, 8), "created", None, "new"),
                (local(12, 3, 8, 1), "transition", "new", "assigned"),
            ],
            4: [
                (local(12, 3, 9), "created", None, "new"),
                (local(12, 3, 23), "sla_breach", None, None),
            ],
            5: [
                (local(12, 3, 10), "created", None, "new"),
                (local(12, 3, 10, 1), "transition", "new", "assigned"),
                (local(12, 3, 10, 5), "transition", "assigned", "accepted"),
            ],
            6: [
                (local(12, 3, 11), "created", None, "new"),
                (local(12, 3, 11, 5), "transition", "new", "closed"),
            ],
            7: [(local(11, 20, 9), "created", None, "new")],
        }
        for ticket_id, steps in trail.items():
            for seq, (at, kind, before, after) in enumerate(steps, start=1):
                data: dict[str, Any] = {"clock": "respond"} if kind == "sla_breach" else {}
                await conn.execute(
                    events.insert().values(
                        ticket_id=ticket_id, seq=seq, at=at, actor="system", kind=kind,
                        from_state=before, to_state=after, via="system", data=data,
                        prev_hash="0" * 64, hash="0" * 64,
                    )
                )  # fmt: skip
        await conn.execute(
            ratings.insert().values(
                ticket_id=1, rater_id=ids["cust-1"], score=5,
                asked_at=local(12, 2, 14), rated_at=local(12, 2, 15),
            )
        )  # fmt: skip
        await conn.execute(
            ratings.insert().values(
                ticket_id=2, rater_id=ids["cust-1"], score=2,
                asked_at=local(12, 3, 11), rated_at=local(12, 3, 11, 30),
            )
        )  # fmt: skip
        await conn.execute(
            TABLES["maintenance_suggestions"].insert().values(
                asset_id=1, trigger_ticket_id=4, tickets=["GD-1", "GD-2", "GD-4"], days=30.0,
                teams=["maint"], created_at=local(12, 3, 10),
            )
        )  # fmt: skip
    return ids


def hours(h: float) -> timedelta:
    return timedelta(hours=h)
