#!/usr/bin/env python
"""Open live streams against ``/healthz``: how slow the hub gets for everyone else while many
web chat pages (or an attacker) hold ``GET /webchat/api/stream`` open.

One fresh ``gongdan serve`` (SQLite). ``/healthz`` is timed alone, then with N streams open for
each N asked (``--streams 0,100,200,300``); the hub refuses streams over ``[limits]
streams_total`` with 503, so asking for more than the cap shows what the cap protects. The
load generator is exempt from the per-client cap (``[limits] exempt``, as in every bench).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

SELF = Path(__file__).resolve()
sys.path.insert(0, str(SELF.parent.parent))

import aiohttp  # noqa: E402

from bench.ingest import Target, machine, percentile, running_server  # noqa: E402


async def open_streams(
    http: aiohttp.ClientSession, base: str, sessions: Sequence[str], n: int
) -> tuple[list[aiohttp.ClientResponse], Counter[int]]:
    """Open ``n`` streams (round-robin over ``sessions``); those refused are counted by status."""
    opened: list[aiohttp.ClientResponse] = []
    statuses: Counter[int] = Counter()
    no_limit = aiohttp.ClientTimeout(total=None, sock_read=None)
    for i in range(n):
        r = await http.get(
            base + "/webchat/api/stream",
            params={"session": sessions[i % len(sessions)]},
            timeout=no_limit,
        )
        statuses[r.status] += 1
        if r.status == 200:
            opened.append(r)
        else:
            r.release()
    return opened, statuses


async def time_healthz(base: str, samples: int) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as http:  # its own connection, like a load balancer
        for _ in range(samples):
            t0 = time.perf_counter()
            async with http.get(base + "/healthz") as r:
                await r.read()
                assert r.status == 200
            out.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.05)
    return sorted(out)


async def main(args: argparse.Namespace) -> None:
    print("machine:", machine())
    counts = [int(x) for x in args.streams.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        async with running_server(
            Target("gongdan-sqlite", "sqlite"), Path(tmp), cpus=None, profile=None
        ) as server:
            conn = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=conn) as http:
                sessions = []
                for i in range(10):
                    async with http.post(
                        server.base + "/chat/api/session", json={"name": f"客户{i}"}
                    ) as r:
                        sessions.append((await r.json())["session"])
                head = ("streams asked", "open", "refused", "healthz p50 ms", "p99 ms")
                print("{:>14} {:>6} {:>18} {:>15} {:>8}".format(*head))
                for n in counts:
                    opened, statuses = await open_streams(http, server.base, sessions, n)
                    await asyncio.sleep(1.0)  # let every stream settle into its wait
                    times = await time_healthz(server.base, args.samples)
                    refused = {k: v for k, v in statuses.items() if k != 200}
                    print(
                        f"{n:>14} {len(opened):>6} {refused or '-'!s:>18} "
                        f"{statistics.median(times):>15.1f} {percentile(times, 99):>8.1f}",
                        flush=True,
                    )
                    for r in opened:
                        r.close()
                    with contextlib.suppress(Exception):
                        await asyncio.sleep(3.0)  # the server frees their places on its next poll


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--streams", default="0,100,200,300", help="stream counts to try, in order")
    p.add_argument("--samples", type=int, default=100, help="/healthz requests per count")
    asyncio.run(main(p.parse_args()))
