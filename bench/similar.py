"""Similar past cases at scale: build time, memory and lookup time of the BM25 index.

    .venv/bin/python bench/similar.py [--cases 100000] [--lookups 2000] [--json FILE]

Makes ``--cases`` resolved tickets (Chinese and English, like ``tests/fixtures/similar/``:
machines, numbers, alarm codes, symptoms and root causes drawn at random, so the vocabulary
grows as a real one does), tokenises them (``SimilarCases.prepare``, as the hub's start-up
does in a thread), builds the ``bm25s`` index (``compact``), then times ``--lookups`` calls
of ``similar()`` for new reports, with ``--pending`` cases resolved since the build (2,000
is the most there are at 100,000 before ``compact`` rebuilds), as a card draws them.
Memory is the process's resident size gained by tokenising and building.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.nlp.similar import SimilarCases
from bot.nlp.text import warm_up
from storage.cases import CaseRow

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "similar"
AT = datetime(2026, 12, 1, tzinfo=UTC)
PLACES = ["一车间", "二车间", "三车间", "动力站", "仓库", "包装线", "line 2", "plant B"]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _corpus(n: int, seed: int) -> tuple[list[CaseRow], list[CaseRow]]:
    """``n`` past cases and 500 new reports, varied from the labelled fixture's."""
    rng = random.Random(seed)
    cases = json.loads((FIXTURES / "cases.json").read_text(encoding="utf-8"))
    queries = json.loads((FIXTURES / "queries.json").read_text(encoding="utf-8"))

    def vary(text: str) -> str:
        return (f"{rng.randint(1, 60)}号 {text} {rng.choice(PLACES)} "
                f"E{rng.randint(1, 999):03d} SN{rng.randint(10_000, 99_999)}")  # fmt: skip

    rows = []
    for i in range(1, n + 1):
        c = rng.choice(cases)
        rows.append(CaseRow(i, f"GD-{i}", vary(c["title"]), vary(c["description"]), None,
                            c["root_cause"], None, "closed", None, 1, AT))  # fmt: skip
    asked = []
    for j in range(500):
        q = rng.choice(queries)
        asked.append(CaseRow(n + 1 + j, None, vary(q["title"]), vary(q["description"]), None,
                             None, None, "accepted", None, 1, AT))  # fmt: skip
    return rows, asked


async def _run(n: int, lookups: int, pending: int, seed: int) -> dict[str, float | int | str]:
    rows, asked = _corpus(n + pending, seed)
    late, rows = rows[n:], rows[:n]
    warm_up()
    index = SimilarCases(top_k=3, min_score=1.0)
    rss0 = _rss_mb()
    started = time.perf_counter()
    prepared = [index.prepare(rows[i : i + 2_000]) for i in range(0, len(rows), 2_000)]
    tokenised = time.perf_counter() - started
    for chunk in prepared:
        index.offer(chunk)
    del prepared
    rss_docs = _rss_mb()
    started = time.perf_counter()
    await index.compact(force=True)
    built = time.perf_counter() - started
    rss1 = _rss_mb()
    index.observe([r.__class__(*(r.id, r.number, r.title, r.description, r.alarm_code,
                                 r.root_cause, r.diagnosis, "resolved", None, 2, AT))
                   for r in late])  # fmt: skip
    times = []
    found = 0
    for k in range(lookups):
        ticket = asked[k % len(asked)]
        t0 = time.perf_counter()
        found += len(index.similar(ticket))
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {
        "cases": n,
        "vocabulary": len(index._vocab),
        "tokenise_s": round(tokenised, 1),
        "build_s": round(built, 2),
        "memory_mb": round(rss1 - rss0, 1),
        "memory_cases_mb": round(rss_docs - rss0, 1),  # token ids, numbers, causes, vocabulary
        "pending": pending,
        "lookups": lookups,
        "lookup_median_ms": round(statistics.median(times), 2),
        "lookup_p99_ms": round(times[int(len(times) * 0.99) - 1], 2),
        "lookup_max_ms": round(times[-1], 2),
        "found_per_lookup": round(found / lookups, 2),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=2_000)
    parser.add_argument("--pending", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(_run(args.cases, args.lookups, args.pending, args.seed))
    for key, value in result.items():
        print(f"{key:>18}: {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
