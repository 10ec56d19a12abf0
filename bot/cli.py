"""The ``gongdan`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from bot.config import Settings, load_settings
from bot.errors import ConfigError

__all__ = ["main"]

log = logging.getLogger("gongdan")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gongdan", description="Gongdan (工单): chat-ops for work orders"
    )
    p.add_argument(
        "--config", type=Path, help="TOML file (default: $GONGDAN_CONFIG or ./gongdan.toml)"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the hub (migrates the database first)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    db = sub.add_parser("db", help="database tasks")
    db.add_subparsers(dest="db_command", required=True).add_parser(
        "upgrade", help="apply migrations"
    )
    audit = sub.add_parser("audit", help="audit trail tasks")
    audit.add_subparsers(dest="audit_command", required=True).add_parser(
        "verify", help="check every ticket's hash chain"
    )
    tr = sub.add_parser("transcribe", help="transcribe voice notes and read their diagnosis")
    tr.add_argument("files", nargs="+", type=Path, help="audio files (AMR, Ogg, WebM, M4A, MP3, …)")
    tr.add_argument("--json", action="store_true", help="one JSON object per line")
    tr.add_argument("--language", choices=["zh", "en"], help="skip language detection")
    trn = sub.add_parser("train", help="fit the intake model from the labelled messages")
    trn.add_argument("--score", metavar="SPLIT", help="score the shipped model on a split instead")
    trn.add_argument("--data", type=Path, help="folder of train/dev/test .jsonl files")
    trn.add_argument("--out", type=Path, help="where to write the model (default: the shipped one)")
    cls = sub.add_parser("classify", help="print the intake's reading of messages as JSON lines")
    cls.add_argument(
        "file", nargs="?", help="plain lines or JSONL with id and text (default: stdin)"
    )
    return p


def _messages(stream: TextIO) -> Iterator[tuple[str | int, str]]:
    for n, line in enumerate(stream, start=1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"gongdan classify: line {n}: not valid JSON: {exc}") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise SystemExit(f"gongdan classify: line {n}: expected an object with 'text'")
            msg_id = obj.get("id", n)
            yield (msg_id if isinstance(msg_id, str | int) else str(msg_id)), obj["text"]
        else:
            yield n, line


def classify_command(stream: TextIO, out: TextIO) -> int:
    from bot.nlp.classify import classify

    for msg_id, text in _messages(stream):
        out.write(json.dumps(classify(text).as_json(msg_id), ensure_ascii=False) + "\n")
    return 0


async def _transcribe(
    settings: Settings, files: list[Path], as_json: bool, language: str | None
) -> int:
    from bot.hearing import Ears
    from bot.nlp.asr import build_transcriber
    from bot.texts import refusal

    ears = Ears({}, build_transcriber(settings.asr))
    failed = 0
    for path in files:
        heard = await ears.understand(path.read_bytes(), language)
        if heard.problem is not None:
            failed += 1
            print(f"{path}: {refusal(heard.problem, settings.locale)}", file=sys.stderr)
            continue
        row = {
            "file": str(path),
            "transcript": heard.transcript,
            "language": heard.language,
            "duration_s": heard.duration_s,
            **(heard.diagnosis or {}),
        }
        if as_json:
            print(json.dumps(row, ensure_ascii=False), flush=True)
        else:
            print(f"== {path} ({heard.duration_s or 0:.1f} s, {heard.language})")
            print(heard.transcript)
            for key, value in (heard.diagnosis or {}).items():
                if value:
                    print(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
    return 1 if failed else 0


async def _audit_verify(settings: Settings) -> int:
    from storage import repo
    from storage.db import Database

    db = Database(settings.database.url)
    try:
        async with db.read() as s:
            checked, problems = await repo.verify_audit(s)
    finally:
        await db.dispose()
    for p in problems:
        print(f"TAMPERED: {p}")
    print(f"{checked} audit events checked, {len(problems)} problems")
    return 1 if problems else 0


def _serve(settings: Settings) -> int:
    from aiohttp import web

    from bot.app import build_app
    from storage.db import migrate

    migrate(settings.database.url)
    app = build_app(settings)
    log.info("Gongdan serving on http://%s:%d", settings.server.host, settings.server.port)
    web.run_app(
        app, host=settings.server.host, port=settings.server.port, print=None, access_log=None
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # a line per scheduler tick drowns what matters
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if args.command == "train":
        from bot.nlp import intake_model, train

        if not args.score:
            try:
                import sklearn  # noqa: F401
            except ImportError:
                raise SystemExit(
                    "gongdan train needs scikit-learn: pip install 'gongdan[train]'"
                ) from None
        return train.main(args.out or intake_model.MODEL, args.score, args.data or train.DATA)
    if args.command == "classify":
        if args.file:
            with open(args.file, encoding="utf-8") as f:
                return classify_command(f, sys.stdout)
        return classify_command(sys.stdin, sys.stdout)
    try:
        overrides = {}
        if args.command == "serve":
            server = {}
            if args.host:
                server["host"] = args.host
            if args.port:
                server["port"] = args.port
            if server:
                overrides["server"] = server
        settings = (
            load_settings(args.config, **overrides) if overrides else load_settings(args.config)
        )
        if args.command == "serve":
            return _serve(settings)
        if args.command == "db":
            from storage.db import migrate

            migrate(settings.database.url)
            print("database is up to date")
            return 0
        if args.command == "audit":
            return asyncio.run(_audit_verify(settings))
        if args.command == "transcribe":
            return asyncio.run(_transcribe(settings, args.files, args.json, args.language))
    except ConfigError as exc:
        print(f"gongdan: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
