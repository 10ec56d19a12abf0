#!/usr/bin/env python
"""Voice-note transcription benchmark: speed, memory and accuracy of both backends.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/asr.py                    # both backends
    HF_HUB_OFFLINE=1 .venv/bin/python bench/asr.py --backends faster-whisper --repeats 1

Each backend runs in fresh child processes (so that peak RSS is its own), on the committed
clips in tests/fixtures/audio (references.tsv): AISHELL-1 (real Mandarin) and synthetic field
notes, each as a wideband file (WAV or 16 kHz Opus) and as AMR-NB 8 kHz (WeCom), plus one
English note. Both backends use the same weights (the packaged Whisper base) and the same
pipeline (``bot.nlp.asr``): decoding, language detection among zh/en, beam 5, normalisation.

* ``latency``: one note at a time, ``cpu_threads=2``: the real-time factor (processing time /
  audio duration, median of ``--repeats`` runs per clip) and character error rates at three
  stages: Whisper's raw text, after script and numerals (OpenCC, digits), after the lexicon's
  homophone pass. Also one long note: the wideband field notes joined (~81 s).
* ``throughput``: the field notes two at a time with ``workers=2, cpu_threads=1`` (production
  settings): wall time / audio time over all of them.

Prints a Markdown report (bench/README.md, "ASR", was made from it); ``--json`` keeps the rest.
openai-whisper needs ``pip install torch==2.13.0 -e '.[openai-whisper]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

SELF = Path(__file__).resolve()
REPO = SELF.parent.parent
AUDIO = REPO / "tests" / "fixtures" / "audio"
sys.path.insert(0, str(REPO))


def _clips() -> list[dict[str, str]]:
    """(id, format, file, reference, language) for every committed clip with a reference."""
    with (AUDIO / "references.tsv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    clips = []
    for row in rows:
        for fmt, ext in (("wideband", ".wav"), ("wideband", ".ogg"), ("amr-8k", ".amr")):
            path = AUDIO / f"{row['id']}{ext}"
            if path.exists():
                language = "en" if row["id"].startswith("english") else "zh"
                clips.append(
                    {
                        "id": row["id"],
                        "format": fmt,
                        "file": path.name,
                        "reference": row["reference"],
                        "language": language,
                    }
                )
    return clips


def _long_note(clips: list[dict[str, str]]) -> tuple[bytes, str]:
    """The wideband field notes joined into one WAV, and their joined references."""
    import numpy as np

    from bot.nlp.audio import decode_audio

    parts, references = [], []
    for clip in clips:
        if clip["id"].startswith("field") and clip["format"] == "wideband":
            data = (AUDIO / clip["file"]).read_bytes()
            parts.append(decode_audio(data, max_duration_s=120, max_bytes=10**8).samples)
            references.append(clip["reference"])
    pcm = (np.clip(np.concatenate(parts), -1, 1) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return out.getvalue(), "".join(references)


async def _latency(backend: str, repeats: int) -> dict[str, Any]:
    from bot.asr_settings import AsrSettings
    from bot.nlp.asr import build_transcriber
    from bot.nlp.normalize import cer, normalize_transcript

    transcriber = build_transcriber(AsrSettings(backend=backend, cpu_threads=2, workers=1))
    started = time.perf_counter()
    await transcriber.warm_up()
    load_s = time.perf_counter() - started
    clips = _clips()
    rows = []
    for clip in clips:
        data = (AUDIO / clip["file"]).read_bytes()
        times, cpu, transcript = [], [], None
        for _ in range(repeats):
            started, cpu_started = time.perf_counter(), time.process_time()
            transcript = await transcriber.transcribe(data)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
        assert transcript is not None
        plain = normalize_transcript(transcript.raw_text, transcript.language, None)
        reference = clip["reference"]
        rows.append(
            {
                **clip,
                "duration_s": transcript.duration_s,
                "seconds": times,
                "rtf": statistics.median(times) / transcript.duration_s,
                "cpu_rtf": statistics.median(cpu) / transcript.duration_s,
                "language_detected": transcript.language,
                "raw": transcript.raw_text,
                "text": transcript.text,
                "cer_raw": cer(reference, transcript.raw_text),
                "cer_script": cer(reference, plain),
                "cer_lexicon": cer(reference, transcript.text),
            }
        )
        print(f"  {backend} {clip['file']}: rtf {rows[-1]['rtf']:.3f}", file=sys.stderr)
    data, reference = _long_note(clips)
    started, cpu_started = time.perf_counter(), time.process_time()
    long = await transcriber.transcribe(data)
    long_s, long_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "load_s": load_s,
        "clips": rows,
        "long": {
            "duration_s": long.duration_s,
            "seconds": long_s,
            "rtf": long_s / long.duration_s,
            "cpu_rtf": long_cpu / long.duration_s,
            "cer": cer(reference, long.text),
        },
    }


async def _throughput(backend: str) -> dict[str, Any]:
    from bot.asr_settings import AsrSettings
    from bot.nlp.asr import build_transcriber

    transcriber = build_transcriber(AsrSettings(backend=backend, cpu_threads=1, workers=2))
    await transcriber.warm_up()
    notes = [(AUDIO / c["file"]).read_bytes() for c in _clips() if c["id"].startswith("field")]
    started, cpu_started = time.perf_counter(), time.process_time()
    results = []
    for pair in range(0, len(notes), 2):
        results += await asyncio.gather(
            *(transcriber.transcribe(n) for n in notes[pair : pair + 2])
        )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    audio = sum(r.duration_s for r in results)
    return {
        "notes": len(notes),
        "audio_s": audio,
        "wall_s": wall,
        "rtf": wall / audio,
        "cpu_rtf": cpu / audio,
    }


def _child(backend: str, mode: str, repeats: int) -> None:
    run = _latency(backend, repeats) if mode == "latency" else _throughput(backend)
    result = asyncio.run(run)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result, ensure_ascii=False))


def _spawn(backend: str, mode: str, repeats: int) -> dict[str, Any]:
    command = [sys.executable, str(SELF), "--child", backend, mode, "--repeats", str(repeats)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _cpu_name() -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.3f}" if values else "–"


def _report(results: dict[str, dict[str, Any]], machine: dict[str, Any]) -> str:
    lines = [
        f"Machine: {machine['cpus']} cores ({machine['cpu']}), Python {machine['python']}, "
        f"load average {machine['load']} before the run, {machine['load_after']} after; "
        "medians.",
        "",
    ]
    lines += [
        "| backend | model load (s) | RTF, short notes (4–10 s) | RTF, one ~81 s note | "
        "RTF, 2 notes at once (1 thread × 2 workers) | peak RSS (MB): 1 × 2 threads / "
        "2 workers |",
        "|---|---|---|---|---|---|",
    ]
    for backend, r in results.items():
        lat, thr, long = r["latency"], r["throughput"], r["latency"]["long"]
        rtf = [c["rtf"] for c in lat["clips"]]
        cpu = [c["cpu_rtf"] for c in lat["clips"]]
        lines.append(
            f"| {backend} | {lat['load_s']:.1f} | {_median(rtf)} (CPU {_median(cpu)}) | "
            f"{long['rtf']:.3f} (CPU {long['cpu_rtf']:.3f}) | "
            f"{thr['rtf']:.3f} (CPU {thr['cpu_rtf']:.3f}) | "
            f"{lat['peak_rss_mb']:.0f} / {thr['peak_rss_mb']:.0f} |"
        )
    lines += [
        "",
        "RTF = wall time / audio time; CPU = CPU seconds (all threads) / audio seconds, which "
        "other load on the machine does not inflate.",
    ]
    lines += [
        "",
        "CER (character error rate, punctuation ignored), median over clips:",
        "",
        "| backend | clips | format | raw Whisper | + script, numerals | + lexicon |",
        "|---|---|---|---|---|---|",
    ]
    groups = [
        ("AISHELL-1", "BAC"),
        ("field01–05", "field0[1-5]"),
        ("field06–11 (held out)", "field(0[6-9]|1)"),
        ("all field notes", "field"),
    ]
    for backend, r in results.items():
        for label, pattern in groups:
            for fmt in ("wideband", "amr-8k"):
                sel = [
                    c
                    for c in r["latency"]["clips"]
                    if re.match(pattern, c["id"]) and c["format"] == fmt
                ]
                if sel:
                    lines.append(
                        f"| {backend} | {label} | {fmt} | "
                        f"{_median([c['cer_raw'] for c in sel])} | "
                        f"{_median([c['cer_script'] for c in sel])} | "
                        f"{_median([c['cer_lexicon'] for c in sel])} |"
                    )
    lines += [
        "",
        "Per clip (CER raw → script → lexicon; RTF):",
        "",
        "| clip | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    first = next(iter(results.values()))["latency"]["clips"]
    for k, clip in enumerate(first):
        cells = []
        for r in results.values():
            c = r["latency"]["clips"][k]
            cells.append(
                f"{c['cer_raw']:.2f} → {c['cer_script']:.2f} → {c['cer_lexicon']:.2f}; "
                f"{c['rtf']:.2f}"
            )
        lines.append(f"| {clip['file']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="faster-whisper,openai-whisper")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per clip")
    parser.add_argument(
        "--reference-repeats", type=int, default=1, help="the same for openai-whisper (slow)"
    )
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--child", nargs=2, metavar=("BACKEND", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], args.repeats)
        return
    machine: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu": _cpu_name(),
        "python": platform.python_version(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    results: dict[str, dict[str, Any]] = {}
    for backend in args.backends.split(","):
        print(f"{backend}: one note at a time …", file=sys.stderr)
        repeats = args.reference_repeats if backend == "openai-whisper" else args.repeats
        latency = _spawn(backend, "latency", repeats)
        print(f"{backend}: two notes at a time …", file=sys.stderr)
        results[backend] = {"latency": latency, "throughput": _spawn(backend, "throughput", 1)}
    machine["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report = _report(results, machine)
    print(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"machine": machine, "results": results}
        args.json.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
