"""The ``gongdan`` command: its arguments, and which module runs each subcommand.

Each group of subcommands lives in its own module, imported only when it runs, so that
``gongdan classify`` does not load the web server and ``gongdan --help`` loads nothing:

- ``bot.cli.serve``: ``serve`` (and ``db upgrade`` here);
- ``bot.cli.admin``: ``login-link``, ``passwd``, ``sign-out``, ``audit verify|checkpoint``;
- ``bot.cli.registry``: ``assets import|export|qr``, ``parts import|export``;
- ``bot.cli.reports``: ``rules explain``, ``report``, ``service-report``;
- ``bot.cli.reading``: ``classify``; ``bot.cli.voice``: ``transcribe``; ``train`` is
  ``bot.nlp.train``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.config import Settings, load_settings
from bot.errors import ConfigError

__all__ = ["main"]


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
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser(
        "verify",
        help="check every ticket's keyed hash chain, head and state against the newest "
        "checkpoint (exit 1 when anything was tampered with)",
    )
    audit_sub.add_parser("checkpoint", help="record the head of every ticket's audit chain now")
    link = sub.add_parser("login-link", help="print a one-time sign-in link for a staff member")
    link.add_argument("person", help="the person's id in [[people]]")
    pw = sub.add_parser("passwd", help="set (or remove) a staff member's own password")
    pw.add_argument("person", help="the person's id in [[people]]")
    pw.add_argument("--remove", action="store_true", help="remove it (links only from now on)")
    pw.add_argument("--stdin", action="store_true", help="read the password from stdin")
    out = sub.add_parser("sign-out", help="end every sign-in of a staff member")
    out.add_argument("person", help="the person's id in [[people]]")
    tr = sub.add_parser("transcribe", help="transcribe voice notes and read their diagnosis")
    tr.add_argument("files", nargs="+", type=Path, help="audio files (AMR, Ogg, WebM, M4A, MP3, …)")
    tr.add_argument("--json", action="store_true", help="one JSON object per line")
    tr.add_argument("--language", choices=["zh", "en"], help="skip language detection")
    trn = sub.add_parser("train", help="fit the intake model from the labelled messages")
    trn.add_argument(
        "--score",
        metavar="SPLIT",
        help="score the shipped model on a split instead (test, test2, or test+test2)",
    )
    trn.add_argument(
        "--cv",
        action="store_true",
        help="5-fold cross-validation on train + dev at several P0 thresholds (writes nothing)",
    )
    trn.add_argument(
        "--add-batch",
        type=Path,
        metavar="FILE",
        help="append newly written labelled messages to train/dev (4:1 per stratum, seeded)",
    )
    trn.add_argument("--data", type=Path, help="folder of train/dev/test .jsonl files")
    trn.add_argument("--out", type=Path, help="where to write the model (default: the shipped one)")
    assets = sub.add_parser("assets", help="the asset registry: import, export, QR links")
    assets_sub = assets.add_subparsers(dest="assets_command", required=True)
    imp = assets_sub.add_parser("import", help="add or update assets from a .csv or .xlsx file")
    imp.add_argument("file", type=Path)
    exp = assets_sub.add_parser("export", help="write every asset to a .csv or .xlsx file")
    exp.add_argument("file", type=Path)
    qr = assets_sub.add_parser("qr", help="print an asset's scan-to-report link")
    qr.add_argument("code", help="the asset's code")
    parts = sub.add_parser("parts", help="the spare-parts catalog: codes, names and stock")
    parts_sub = parts.add_subparsers(dest="parts_command", required=True)
    pimp = parts_sub.add_parser(
        "import", help="add or update parts and their stock from a .csv or .xlsx file"
    )
    pimp.add_argument("file", type=Path)
    pexp = parts_sub.add_parser("export", help="write the catalog with its stock to a file")
    pexp.add_argument("file", type=Path)
    rules = sub.add_parser("rules", help="the routing rules: who gets a ticket, and why")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    explain = rules_sub.add_parser(
        "explain", help="print the rules as an SOP (Markdown), or one ticket's scoring now"
    )
    explain.add_argument("--ticket", metavar="GD-n", help="score this ticket's engineers now")
    explain.add_argument("--locale", choices=["zh", "en"], help="default: the configured locale")
    rep = sub.add_parser("report", help="print the daily health report of a day")
    rep.add_argument("--date", required=True, metavar="YYYY-MM-DD", help="the local day")
    rep.add_argument("--lang", choices=["zh", "en"], help="default: the configured locale")
    rep.add_argument("--team", help="only this team's tickets (a team id)")
    rep = sub.add_parser("service-report", help="write a ticket's service report as a PDF")
    rep.add_argument("ticket", help="the ticket's number (GD-12) or id")
    rep.add_argument("-o", "--output", type=Path, required=True, help="the PDF file to write")
    rep.add_argument("--locale", choices=("zh", "en"), help="language (default: [locale])")
    cls = sub.add_parser("classify", help="print the intake's reading of messages as JSON lines")
    cls.add_argument(
        "file", nargs="?", help="plain lines or JSONL with id and text (default: stdin)"
    )
    return p


def _train(args: argparse.Namespace) -> int:
    from bot.nlp import intake_model, train

    if not args.score and not args.add_batch:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise SystemExit(
                "gongdan train needs scikit-learn: pip install 'gongdan[train]'"
            ) from None
    return train.main(
        args.out or intake_model.MODEL,
        args.score,
        args.data or train.DATA,
        cv=args.cv,
        batch=args.add_batch,
    )


def _classify(args: argparse.Namespace) -> int:
    from bot.cli.reading import classify_command

    if args.file:
        with open(args.file, encoding="utf-8") as f:
            return classify_command(f, sys.stdout)
    return classify_command(sys.stdin, sys.stdout)


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.command == "serve":
        server = {k: v for k, v in (("host", args.host), ("port", args.port)) if v}
        if server:
            overrides["server"] = server
    return load_settings(args.config, **overrides) if overrides else load_settings(args.config)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    """The subcommand that needs the settings (each module imported here, when it runs)."""
    command = args.command
    if command == "serve":
        from bot.cli.serve import serve_command

        return serve_command(settings)
    if command == "db":
        from storage.db import migrate

        migrate(settings.database.url)
        print("database is up to date")
        return 0
    if command in ("audit", "login-link", "passwd", "sign-out"):
        from bot.cli.admin import access_command, audit_command

        if command == "audit":
            return asyncio.run(audit_command(settings, args.audit_command))
        remove, stdin = getattr(args, "remove", False), getattr(args, "stdin", False)
        return asyncio.run(access_command(settings, command, args.person, remove, stdin))
    if command in ("assets", "parts"):
        from bot.cli.registry import assets_command, parts_command

        if command == "parts":
            return asyncio.run(parts_command(settings, args.parts_command, args.file))
        target = args.code if args.assets_command == "qr" else str(args.file)
        return asyncio.run(assets_command(settings, args.assets_command, target))
    if command in ("rules", "report", "service-report"):
        from bot.cli.reports import report_command, rules_command, service_report_command

        if command == "rules":
            return asyncio.run(rules_command(settings, args.ticket, args.locale))
        if command == "report":
            return asyncio.run(report_command(settings, args.date, args.lang, args.team))
        return asyncio.run(service_report_command(settings, args.ticket, args.output, args.locale))
    if command == "transcribe":
        from bot.cli.voice import transcribe_command

        return asyncio.run(transcribe_command(settings, args.files, args.json, args.language))
    raise AssertionError(f"unhandled command {command!r}")  # (argparse knows every command)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # a line per scheduler tick drowns what matters
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if args.command == "train":
        return _train(args)
    if args.command == "classify":
        return _classify(args)
    try:
        return _run(args, _settings(args))
    except ConfigError as exc:
        print(f"gongdan: {exc}", file=sys.stderr)
        return 2
