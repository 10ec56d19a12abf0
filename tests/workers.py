"""``gongdan serve`` worker processes for tests that run several on one database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, spawn_serve, wait_serving

__all__ = ["Worker"]

ROOT = Path(__file__).resolve().parent.parent


class Worker:
    """One ``python -m bot.cli serve`` process with its own port, config and log. ``config``
    is the TOML text, with ``{port}`` where the worker's port goes."""

    def __init__(self, tmp: Path, name: str, config: str) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.dir = tmp / name
        self.dir.mkdir()
        self.config = self.dir / "gongdan.toml"
        self.config.write_text(config.replace("{port}", str(self.port)), encoding="utf-8")
        self.log = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        # The processes run the code under test (this checkout), whatever is installed.
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        self.proc = spawn_serve(self.config, self.log, self.dir, {"PYTHONPATH": path})

    def tail(self) -> str:
        """The end of the log, without httpx's line per platform call."""
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(line for line in lines if " INFO httpx: " not in line)[-3000:]

    async def wait_healthy(self, http: aiohttp.ClientSession) -> None:
        assert self.proc is not None
        await wait_serving(self.proc, self.base, http, self.log, within=30, name=self.name)

    async def metric(self, http: aiohttp.ClientSession, name: str, label: str) -> Counter[str]:
        """This process's own counter ``name`` (e.g. ``gongdan_processed_events_total``), by
        one of its labels."""
        async with http.get(self.base + "/metrics") as r:
            assert r.status == 200
            body = await r.text()
        out: Counter[str] = Counter()
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name:
                    out[sample.labels[label]] += int(sample.value)
        return out

    def cpu_seconds(self) -> float | None:
        """CPU time the process has used so far (Linux; None elsewhere)."""
        assert self.proc is not None
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return None
        return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    async def wait_exit(self) -> int | None:
        if self.proc is None:
            return None
        try:
            return await asyncio.to_thread(self.proc.wait, 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait, 30)
            raise AssertionError(f"{self.name} ignored SIGTERM:\n{self.tail()}") from None
