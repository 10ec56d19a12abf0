#!/usr/bin/env python
"""Voice set (issue 15): Whisper's CER and the diagnosis readers' scores on noisy phone audio.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/voice_set.py --split dev            # dev only
    HF_HUB_OFFLINE=1 .venv/bin/python bench/voice_set.py --split test           # once, at the end
    HF_HUB_OFFLINE=1 taskset -c 0 .venv/bin/python bench/voice_set.py --time v27  # one note, 1 core

The notes are ``tests/fixtures/voiceset`` (labelled.jsonl: reference transcript, expected
diagnosis, dev/test split). Whisper base (faster-whisper, int8, beam 5, language detected among
zh/en, as in production) hears each note's AMR-NB 8 kHz file, and its Opus file where there is
one. Its raw text is kept in ``--cache`` (``bench/voice_set_heard.json``, committed: recognition
is the slow part and does not change when the readers do), so a run only recomputes
normalisation and diagnosis with the code as it is then; ``--fresh`` hears everything again.

Figures, per split and format:

* ``CER raw``: Whisper's text against the reference (corpus CER: all edits / all reference
  characters, punctuation and spaces ignored; ``bot.nlp.normalize.cer``); ``CER corrected``: after
  ``normalize_transcript`` (script, the corrector of ``bot/nlp/correct.py``: pinyin and tone
  matches of the maintenance lexicon kept where a word and a character model say the sentence
  reads better, numerals) — what the ticket shows.
* parts F1, measurements F1, suggested-state accuracy (``tests/nlp/score_diagnosis``) of
  ``diagnose`` on the corrected transcript; the same on the reference text ("text") shows how much
  is lost to recognition and how much to the readers.

``--time NOTE`` loads the model (not timed), then times audio → diagnosis (``Ears.understand``:
decode, Whisper with ``cpu_threads=1``, normalise, diagnose) three times and prints the median;
run it under ``taskset -c 0`` for one core. ``-v`` prints every difference (use it on dev only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

SELF = Path(__file__).resolve()
REPO = SELF.parent.parent
SET = REPO / "tests" / "fixtures" / "voiceset"
sys.path.insert(0, str(REPO))

FORMATS = {"amr": "AMR-NB 8 kHz", "ogg": "Opus 16 kHz"}


def notes(split: str | None = None) -> list[dict[str, Any]]:
    with (SET / "labelled.jsonl").open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if split in (None, "all", r["split"])]


def hear(cache: Path, fresh: bool, beam: int = 5, split: str = "all") -> dict[str, dict[str, Any]]:
    """Whisper's raw text for every note of ``split`` and format (from the cache when it is
    there), heard with beam search of ``beam``."""
    heard: dict[str, dict[str, Any]] = {}
    if cache.exists() and not fresh:
        heard = json.loads(cache.read_text(encoding="utf-8"))
    todo = [
        SET / f"{n['id']}.{ext}"
        for n in notes(split)
        for ext in FORMATS
        if (SET / f"{n['id']}.{ext}").exists() and f"{n['id']}.{ext}" not in heard
    ]
    if todo:
        asyncio.run(_recognise(todo, heard, cache, beam))
    return heard


async def _recognise(
    todo: list[Path], heard: dict[str, dict[str, Any]], cache: Path, beam: int
) -> None:
    from bot.asr_settings import AsrSettings
    from bot.nlp.asr import build_transcriber

    transcriber = build_transcriber(AsrSettings(cpu_threads=2, workers=1, beam_size=beam))
    for k, path in enumerate(todo, 1):
        data = await asyncio.to_thread(path.read_bytes)
        started = time.perf_counter()
        t = await transcriber.transcribe(data)
        heard[path.name] = {
            "raw": t.raw_text,
            "language": t.language,
            "duration_s": t.duration_s,
            "seconds": time.perf_counter() - started,
        }
        print(f"  [{k}/{len(todo)}] {path.name}", file=sys.stderr)
        text = json.dumps(heard, ensure_ascii=False, indent=0)
        await asyncio.to_thread(cache.write_text, text, encoding="utf-8")


def _edits(reference: str, hypothesis: str) -> tuple[float, int]:
    from bot.nlp.normalize import _NOT_COUNTED, cer

    length = len(_NOT_COUNTED.sub("", reference))
    return cer(reference, hypothesis) * length, length


def evaluate(split: str, heard: dict[str, dict[str, Any]], verbose: bool) -> list[dict[str, Any]]:
    from bot.nlp.diagnosis import diagnose
    from bot.nlp.normalize import load_lexicon, normalize_transcript
    from tests.nlp.score_diagnosis import differences, score

    lexicon = load_lexicon()
    rows = []
    text_pairs = [(n["expected"], diagnose(n["text"]).as_json()) for n in notes(split)]
    text = score(text_pairs)
    if verbose:
        for n, pair in zip(notes(split), text_pairs, strict=True):
            if diff := differences(*pair):
                print(f"[{n['id']} text] {n['text']}\n  " + "\n  ".join(diff))
    for ext, label in FORMATS.items():
        chosen = [n for n in notes(split) if f"{n['id']}.{ext}" in heard]
        if not chosen:
            continue
        raw_edits = fixed_edits = length = 0.0
        pairs = []
        for n in chosen:
            h = heard[f"{n['id']}.{ext}"]
            corrected = normalize_transcript(h["raw"], h["language"], lexicon)
            e, size = _edits(n["text"], h["raw"])
            raw_edits, length = raw_edits + e, length + size
            fixed_edits += _edits(n["text"], corrected)[0]
            pairs.append((n["expected"], diagnose(corrected).as_json()))
            if verbose and ext == "amr" and (diff := differences(*pairs[-1])):
                print(f"[{n['id']} {ext}] {corrected}\n  ref {n['text']}\n  " + "\n  ".join(diff))
        s = score(pairs)
        rows.append({
            "split": split, "format": label, "notes": len(chosen),
            "cer_raw": raw_edits / length, "cer_corrected": fixed_edits / length,
            "parts_f1": s.parts.f1, "measurements_f1": s.measurements.f1,
            "state": s.accuracy["suggested_state"],
            "text_parts_f1": text.parts.f1 if ext == "amr" else None,
            "text_measurements_f1": text.measurements.f1 if ext == "amr" else None,
            "text_state": text.accuracy["suggested_state"] if ext == "amr" else None,
        })  # fmt: skip
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def cell(x: float | None) -> str:
        return "–" if x is None else f"{x:.3f}"

    lines = [
        "| split | audio | notes | CER raw | CER corrected | parts F1 | measurements F1 | "
        "state acc. | text: parts F1 / meas. F1 / state |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        text = " / ".join(
            cell(r[k]) for k in ("text_parts_f1", "text_measurements_f1", "text_state")
        )
        lines.append(
            f"| {r['split']} | {r['format']} | {r['notes']} | {cell(r['cer_raw'])} | "
            f"{cell(r['cer_corrected'])} | {cell(r['parts_f1'])} | {cell(r['measurements_f1'])} "
            f"| {cell(r['state'])} | {text if r['text_state'] is not None else '–'} |"
        )
    return "\n".join(lines)


async def time_note(note_id: str, beam: int = 5) -> str:
    from bot.asr_settings import AsrSettings
    from bot.hearing import Ears
    from bot.nlp.asr import build_transcriber
    from bot.nlp.text import warm_up

    transcriber = build_transcriber(AsrSettings(cpu_threads=1, workers=1, beam_size=beam))
    await transcriber.warm_up()
    warm_up()
    ears = Ears({}, transcriber)
    data = await asyncio.to_thread((SET / f"{note_id}.amr").read_bytes)
    times, heard = [], None
    for _ in range(3):
        started = time.perf_counter()
        heard = await ears.understand(data)
        times.append(time.perf_counter() - started)
    assert heard is not None and heard.duration_s
    return (
        f"{note_id}.amr ({heard.duration_s:.1f} s of audio): audio → diagnosis "
        f"{', '.join(f'{t:.2f}' for t in times)} s, median {statistics.median(times):.2f} s "
        f"(RTF {statistics.median(times) / heard.duration_s:.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--split", choices=("dev", "test", "all"), default="dev")
    parser.add_argument("--cache", type=Path, help="default: voice_set_heard[_beamN].json")
    parser.add_argument(
        "--beam", type=int, default=5, help="Whisper's beam size ([asr] beam_size; default 5)"
    )
    parser.add_argument("--fresh", action="store_true", help="hear every note again")
    parser.add_argument("--time", metavar="NOTE", help="time one note, audio to diagnosis")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    if args.time:
        print(asyncio.run(time_note(args.time, args.beam)))
        return
    suffix = "" if args.beam == 5 else f"_beam{args.beam}"
    cache = args.cache or SELF.parent / f"voice_set_heard{suffix}.json"
    heard = hear(cache, args.fresh, args.beam, args.split)
    splits = ("dev", "test") if args.split == "all" else (args.split,)
    rows = [row for split in splits for row in evaluate(split, heard, args.verbose)]
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
