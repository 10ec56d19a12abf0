"""``gongdan transcribe``: voice notes through the voice flow's ears (Whisper, clean-up,
diagnosis), each part named with its code in the configured database's parts catalog."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bot.config import Settings
from bot.hearing import Ears
from bot.nlp.asr import build_transcriber
from bot.nlp.correct import catalog_terms
from bot.parts_catalog import PartsCatalog, load_catalog, with_codes
from bot.texts import refusal
from storage.db import opened

__all__ = ["transcribe_command"]


async def transcribe_command(
    settings: Settings, files: list[Path], as_json: bool, language: str | None
) -> int:
    catalog = await _parts_catalog(settings)
    terms = catalog_terms([n for e in catalog.entries for n in (e.name, *e.aliases)])
    ears = Ears({}, build_transcriber(settings.asr), terms=lambda: terms)  # as the hub hears
    failed = 0
    for path in files:
        heard = await ears.understand(path.read_bytes(), language)
        if heard.problem is not None:
            failed += 1
            print(f"{path}: {refusal(heard.problem, settings.locale)}", file=sys.stderr)
            continue
        diagnosis = with_codes(heard.diagnosis or {}, catalog)  # as the voice flow does
        row = {
            "file": str(path),
            "transcript": heard.transcript,
            "language": heard.language,
            "duration_s": heard.duration_s,
            **diagnosis,
        }
        if as_json:
            print(json.dumps(row, ensure_ascii=False), flush=True)
        else:
            print(f"== {path} ({heard.duration_s or 0:.1f} s, {heard.language})")
            print(heard.transcript)
            for key, value in diagnosis.items():
                if value:
                    print(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
    return 1 if failed else 0


async def _parts_catalog(settings: Settings) -> PartsCatalog:
    """The configured database's parts catalog, for ``transcribe`` to name each part's code;
    an empty one when there is no database yet (a SQLite file not made: none is made here) or
    it cannot be read (said on stderr)."""
    url = settings.database.url
    path = url.partition(":///")[2]
    if url.startswith("sqlite"):
        made: bool = bool(path) and await asyncio.to_thread(Path(path).exists)
        if not made:
            return PartsCatalog([])
    try:
        async with opened(url) as db, db.reads() as conn:
            return await load_catalog(conn)
    except Exception as exc:  # (an old schema, a server away: transcribe all the same)
        print(f"no parts catalog ({exc.__class__.__name__}): parts without codes", file=sys.stderr)
        return PartsCatalog([])
