"""The `gongdan` command: classify, db upgrade, audit verify."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from bot.cli import main
from bot.cli.reading import classify_command


def test_classify_reads_plain_lines_and_jsonl() -> None:
    src = io.StringIO(
        '3号注塑机停机了，报警E102\n{"id": "m-7", "text": "车间冒烟了，有焦味"}\n\n谢谢\n'
    )
    out = io.StringIO()
    assert classify_command(src, out) == 0
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["id"] for r in rows] == [1, "m-7", 4]
    assert rows[0]["is_fault_report"] and rows[0]["priority"] == "P0"  # a machine stopped
    assert (rows[0]["device_code"], rows[0]["device_name"]) == (None, "3号注塑机")  # no tag
    assert 0.5 <= rows[0]["confidence"]["is_fault_report"] <= 1
    assert rows[1]["priority"] == "P0" and rows[1]["category"] == "safety"
    assert rows[2]["is_fault_report"] is False
    for r in rows:
        assert {"id", "is_fault_report", "priority", "category", "device_code", "location"} <= set(
            r
        )


def test_classify_command_line_from_stdin() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "classify"],
        input="空压机漏油\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["priority"] == "P2"


def test_db_upgrade_then_audit_verify(tmp_path: Path, capsys: object) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    cfg = tmp_path / "g.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n[security]\nsecret_key = "cli-secret"\n')
    assert main(["--config", str(cfg), "db", "upgrade"]) == 0
    assert main(["--config", str(cfg), "audit", "verify"]) == 0


async def test_audit_verify_names_a_tampered_event(tmp_path: Path) -> None:
    import asyncio
    import sqlite3

    from storage import repo
    from storage.audit import audit_key
    from storage.db import Database, migrate_async

    url = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    await migrate_async(url)
    db = Database(url)
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
        key = audit_key(b"cli-secret")
        await repo.append_event(s, t.id, key=key, actor="张三", kind="created", via="message")
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
    await db.dispose()
    with sqlite3.connect(tmp_path / "g.db") as conn:
        conn.execute("UPDATE ticket_events SET to_state = 'closed' WHERE seq = 2")
    cfg = tmp_path / "g.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n[security]\nsecret_key = "cli-secret"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "--config",
        str(cfg),
        "audit",
        "verify",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 1
    assert b"TAMPERED: ticket 1 event #2: content does not match its hash" in out
    assert b"TAMPERED: ticket 1: state is 'accepted' but its last transition moved it" in out
    assert b"2 audit events of 1 tickets checked, 2 problems" in out


def test_transcribe_prints_the_voice_flows_reading_as_json(tmp_path: Path) -> None:
    fixtures = Path(__file__).parent / "fixtures"
    cfg = tmp_path / "g.toml"
    cfg.write_text(
        f'[asr]\nmodel = "{fixtures / "models" / "whisper-mini"}"\ncache_dir = "{tmp_path}"\n'
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "--config",
            str(cfg),
            "transcribe",
            "--json",
            str(fixtures / "audio" / "note.amr"),
            str(fixtures / "audio" / "note.ogg"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(r["file"]).name for r in rows] == ["note.amr", "note.ogg"]
    for row in rows:
        # The mini model always "says" 三號機辯評器報警，零點八兆帕; normalised and read:
        assert row["transcript"] == "3号机变频器报警，0.8兆帕"
        assert row["measurements"] == [{"quantity": "压力", "value": 0.8, "unit": "MPa"}]
        assert (row["equipment"], row["symptom"], row["suggested_state"]) == (
            "3号机",
            "报警",
            "diagnosing",
        )
        assert row["duration_s"] > 2
        # …with how sure the reader is of each field (0–1), and the unsure ones listed
        fields = {"equipment", "symptom", "parts_needed", "measurements", "suggested_state"}
        assert fields <= set(row["confidence"])
        assert all(0 <= c <= 1 for c in row["confidence"].values())
        assert row["unsure"] == [f for f, c in row["confidence"].items() if c < 0.6]


def test_transcribe_names_the_catalog_code_of_each_part_heard(tmp_path: Path) -> None:
    """With a parts catalog imported into the configured database, ``transcribe --json``
    gives each part it read the code the voice flow would (Whisper base, a real note)."""
    fixtures = Path(__file__).parent / "fixtures"
    url = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    cfg = tmp_path / "g.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n[security]\nsecret_key = "cli-secret"\n')
    catalog = tmp_path / "parts.csv"
    catalog.write_text("编码,名称,别名,单位,库存:总仓\nFAN-M1,冷却风扇电机,风扇马达,台,2\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "bot.cli", "--config", str(cfg), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)

    assert cli("parts", "import", str(catalog)).returncode == 0
    proc = cli("transcribe", "--json", str(fixtures / "audio" / "field01.amr"))
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(line) for line in proc.stdout.splitlines()]
    # "…要订一个风扇电机。": the reader's part, and the catalog's code for it
    (part,) = row["parts_needed"]
    assert (part["name"], part["qty"], part["code"]) == ("风扇电机", 1, "FAN-M1")
    assert 0.85 <= part["code_confidence"] <= 1
