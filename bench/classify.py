"""How fast the intake reads a message, and what its model costs in memory.

    .venv/bin/python bench/classify.py [--rounds 5] [--json FILE]

Reads every labelled message (train, dev and test files: 2,000+ real-style texts of every
length) ``--rounds`` times after one warm-up pass and prints the median and p99 time of one
``classify()`` call, and the resident memory the process gained by loading the reader (jieba's
dictionary, the lexicon) and by loading the trained model on top of it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "bot" / "nlp" / "data" / "intake"


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    texts = [
        json.loads(line)["text"]
        for name in ("train", "dev", "test")
        for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    start = _rss_mb()
    from bot.nlp import intake_model
    from bot.nlp.classify import read_rules
    from bot.nlp.text import normalize, token_spans, warm_up

    warm_up()
    norm = normalize(texts[0])
    read_rules(norm, token_spans(norm))
    rules_loaded = _rss_mb()
    intake_model.load()
    from bot.nlp.classify import classify

    model_loaded = _rss_mb()
    for t in texts:  # warm-up pass
        classify(t)
    times: list[float] = []
    for _ in range(args.rounds):
        for t in texts:
            t0 = time.perf_counter()
            classify(t)
            times.append(time.perf_counter() - t0)
    times.sort()
    result = {
        "messages": len(texts),
        "calls": len(times),
        "median_ms": round(statistics.median(times) * 1000, 3),
        "p99_ms": round(times[int(len(times) * 0.99)] * 1000, 3),
        "max_ms": round(times[-1] * 1000, 3),
        "rss_reader_mb": round(rules_loaded - start, 1),
        "rss_model_mb": round(model_loaded - rules_loaded, 1),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "model_file_kb": round(intake_model.MODEL.stat().st_size / 1024),
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
