"""``gongdan audit checkpoint`` and ``gongdan audit verify`` as an operator runs them: the exit
code says whether anything was tampered with, and each problem is named on its own line."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sqlalchemy import select, text

from storage import repo
from storage.audit import audit_key
from storage.db import Database
from storage.models import TicketEvent

SECRET = "cli-audit-secret"


async def _gongdan(cwd: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _config(tmp_path: Path, db_url: str, *, secret: bool = True) -> Path:
    cfg = tmp_path / "g.toml"
    body = f'[database]\nurl = "{db_url}"\n'
    if secret:
        body += f'[security]\nsecret_key = "{SECRET}"\n'
    cfg.write_text(body)
    return cfg


async def _accepted_ticket(db: Database) -> int:
    key = audit_key(SECRET.encode())
    async with db.transaction() as s:
        person = await repo.identify(s, "web", "c-1", "张三")
        t = await repo.create_ticket(
            s,
            title="停机",
            description="停机",
            priority="P1",
            category="other",
            state="accepted",
            reporter_id=person.id,
            origin_chat="web:c-1",
        )
        await repo.append_event(
            s, t.id, key=key, actor="张三", kind="created", via="message", to_state="new"
        )
        await repo.append_event(
            s,
            t.id,
            key=key,
            actor="李工",
            kind="transition",
            via="button",
            from_state="new",
            to_state="accepted",
        )
        return t.id


async def test_a_checkpoint_then_verify_names_a_trail_cut_at_its_tail(
    tmp_path: Path, db: Database, db_url: str
) -> None:
    ticket_id = await _accepted_ticket(db)
    cfg = str(_config(tmp_path, db_url))
    code, out, err = await _gongdan(tmp_path, "--config", cfg, "audit", "checkpoint")
    assert code == 0, err
    assert out.startswith("checkpoint #1 at ") and ": 1 tickets, 2 events, digest " in out

    code, out, _ = await _gongdan(tmp_path, "--config", cfg, "audit", "verify")
    assert code == 0
    assert "TAMPERED" not in out and "checked against checkpoint #1 of " in out
    assert out.endswith("2 audit events of 1 tickets checked, 0 problems\n")

    async with db.transaction() as s:  # the last row cut, the ticket's head and state put back
        await s.execute(text("DELETE FROM ticket_events WHERE seq = 2"))
        head = await s.scalar(select(TicketEvent.hash).where(TicketEvent.seq == 1))
        await s.execute(
            text("UPDATE tickets SET audit_seq = 1, audit_hash = :h, state = 'new'"), {"h": head}
        )
    code, out, _ = await _gongdan(tmp_path, "--config", cfg, "audit", "verify")
    assert code == 1
    assert out.splitlines()[0] == (
        f"TAMPERED: ticket {ticket_id}: events #2–#2 recorded by checkpoint #1 are gone "
        "(trail cut at its tail)"
    )
    assert out.endswith("1 audit events of 1 tickets checked, 1 problems\n")


async def test_verify_without_a_checkpoint_passes_but_says_what_it_cannot_see(
    tmp_path: Path, db: Database, db_url: str
) -> None:
    await _accepted_ticket(db)
    cfg = str(_config(tmp_path, db_url))
    code, out, _ = await _gongdan(tmp_path, "--config", cfg, "audit", "verify")
    assert code == 0
    assert out.startswith("NOTE: no audit checkpoint yet: a trail cut at its tail")


async def test_verify_without_the_hubs_secret_refuses_rather_than_guess(
    tmp_path: Path, db: Database, db_url: str
) -> None:
    await _accepted_ticket(db)
    cfg = str(_config(tmp_path, db_url, secret=False))
    code, out, err = await _gongdan(tmp_path, "--config", cfg, "audit", "verify")
    assert (code, out) == (2, "")
    assert "gongdan audit: no secret: set [security] secret_key" in err
    assert not (tmp_path / ".gongdan-secret").exists()  # (a new secret would verify nothing)
