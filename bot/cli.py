"""The ``gongdan`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from bot.config import Settings, load_settings
from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.parts_catalog import PartsCatalog

T = TypeVar("T")

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
    from bot.parts_catalog import with_codes
    from bot.texts import refusal

    catalog = await _parts_catalog(settings)
    ears = Ears({}, build_transcriber(settings.asr))
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
    from bot.parts_catalog import PartsCatalog, load_catalog
    from storage.db import Database

    url = settings.database.url
    path = url.partition(":///")[2]
    if url.startswith("sqlite"):
        made: bool = bool(path) and await asyncio.to_thread(Path(path).exists)
        if not made:
            return PartsCatalog([])
    db = Database(url)
    try:
        async with db.reads() as conn:
            return await load_catalog(conn)
    except Exception as exc:  # (an old schema, a server away: transcribe all the same)
        print(f"no parts catalog ({exc.__class__.__name__}): parts without codes", file=sys.stderr)
        return PartsCatalog([])
    finally:
        await db.dispose()


def _audit_key(settings: Settings) -> bytes | None:
    """The audit key from the hub's secret, without creating one (``hub.load_secret`` would:
    a new secret verifies nothing)."""
    from storage.audit import audit_key

    if settings.security.secret_key is not None:
        return audit_key(settings.security.secret_key.get_secret_value().encode())
    path = settings.security.secret_key_file
    if not path.exists():
        print(
            f"gongdan audit: no secret: set [security] secret_key or run where the hub's "
            f"{path} is (the audit trail is sealed with it)",
            file=sys.stderr,
        )
        return None
    return audit_key(path.read_text().strip().encode())


async def _audit(settings: Settings, command: str) -> int:
    """``audit verify`` and ``audit checkpoint``."""
    from datetime import timedelta

    from bot.audit import take_checkpoint
    from storage import repo
    from storage.db import Database
    from storage.models import utcnow

    key = _audit_key(settings)
    if key is None:
        return 2
    db = Database(settings.database.url)
    try:
        if command == "checkpoint":
            cp = await take_checkpoint(db, settings, key)
            assert cp is not None
            print(
                f"checkpoint #{cp.id} at {cp.at:%Y-%m-%d %H:%M:%S} UTC: {cp.tickets} tickets, "
                f"{cp.events} events, digest {cp.digest}"
            )
            return 0
        minutes = settings.audit.checkpoint_minutes
        async with db.read() as s:
            report = await repo.verify_audit(
                s,
                key,
                now=utcnow(),
                stale_after=timedelta(minutes=2 * minutes) if minutes else None,
            )
    finally:
        await db.dispose()
    for p in report.problems:
        print(f"TAMPERED: {p}")
    for note in report.notes:
        print(f"NOTE: {note}")
    if (cp := report.checkpoint) is not None:
        print(
            f"checked against checkpoint #{cp.id} of {cp.at:%Y-%m-%d %H:%M:%S} UTC "
            f"({cp.tickets} tickets, {cp.events} events, digest {cp.digest})"
        )
    print(
        f"{report.events} audit events of {report.tickets} tickets checked, "
        f"{len(report.problems)} problems"
    )
    return 1 if report.problems else 0


async def _access(settings: Settings, command: str, person: str, remove: bool, stdin: bool) -> int:
    """``login-link``, ``passwd`` and ``sign-out``: staff access from the command line."""
    from bot.access import Access, check_password
    from bot.errors import BadRequest
    from bot.hub import load_secret
    from storage.db import Database, migrate_async

    if person not in {p.id for p in settings.people}:
        print(f"gongdan {command}: no person {person!r} in [[people]]", file=sys.stderr)
        return 2
    await migrate_async(settings.database.url)
    db = Database(settings.database.url)
    access = Access(db, settings, load_secret(settings))
    try:
        if command == "login-link":
            print(access.issue_link(person, "cli"))
            minutes = settings.security.login_link_minutes
            print(f"(works once, within {minutes:g} minutes)", file=sys.stderr)
        elif command == "sign-out":
            ended = await access.sign_out_everywhere(person)
            print(f"{ended} sign-ins of {person} ended")
        else:
            password = None if remove else _read_password(stdin)
            if password is not None:
                check_password(password)
            await access.set_password(person, password)
            done = "removed" if remove else "set"
            print(f"password of {person} {done}; their sign-ins have ended")
    except BadRequest as exc:
        print(f"gongdan {command}: {exc}", file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    return 0


def _read_password(stdin: bool) -> str:
    import getpass

    if stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("gongdan passwd: the two passwords differ")
    return first


def _read_sheet(what: str, command: str, path: Path, read: Callable[[], list[T]]) -> list[T] | int:
    """What ``read`` finds in ``path`` for ``<what> import`` (nothing for other commands), or
    the exit code once every problem is printed: 1 for bad rows, 2 for an unreadable file."""
    from bot.sheets import ImportProblems

    try:
        return read() if command == "import" else []
    except ImportProblems as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        print(f"gongdan {what} import: nothing imported ({len(exc.problems)} problems)",
              file=sys.stderr)  # fmt: skip
        return 1
    except OSError as exc:
        print(f"gongdan {what} {command}: {exc}", file=sys.stderr)
        return 2


async def _assets(settings: Settings, command: str, target: str) -> int:
    """``assets import FILE``, ``assets export FILE`` and ``assets qr CODE``."""
    from bot.asset_files import ImportProblems, read_assets, write_assets
    from bot.assets import AssetLinks
    from bot.hub import load_secret
    from storage import assets
    from storage.db import Database, migrate_async
    from storage.models import utcnow

    path = Path(target)
    people = {p.id for p in settings.people}
    rows = _read_sheet("assets", command, path, lambda: read_assets(path, people))
    if isinstance(rows, int):
        return rows
    await migrate_async(settings.database.url)
    db = Database(settings.database.url)
    try:
        if command == "import":
            async with db.begin() as conn:
                done = await assets.upsert(conn, rows, utcnow())
            print(
                f"imported {len(rows)} assets ({done.assets_new} new, {done.assets_updated} "
                f"updated), {done.sites} sites, {done.organisations} organisations"
            )
        elif command == "export":
            async with db.reads() as conn:
                found = await assets.rows(conn)
            try:
                write_assets(path, found)
            except ImportProblems as exc:
                print(f"gongdan assets export: {exc.problems[0]}", file=sys.stderr)
                return 2
            print(f"exported {len(found)} assets to {path}")
        else:
            async with db.reads() as conn:
                asset = await assets.by_code(conn, target)
            if asset is None:
                print(f"gongdan assets qr: no asset {target!r}", file=sys.stderr)
                return 1
            print(AssetLinks(load_secret(settings)).url(settings.public_url, asset.id))
    finally:
        await db.dispose()
    return 0


async def _parts(settings: Settings, command: str, path: Path) -> int:
    """``parts import FILE`` (every row checked first; nothing written unless all are good)
    and ``parts export FILE``."""
    from bot.part_files import ImportProblems, read_parts_file, write_parts
    from storage import parts
    from storage.db import Database, migrate_async
    from storage.models import utcnow

    rows = _read_sheet("parts", command, path, lambda: read_parts_file(path))
    if isinstance(rows, int):
        return rows
    await migrate_async(settings.database.url)
    db = Database(settings.database.url)
    try:
        if command == "export":
            async with db.reads() as conn:
                found = await parts.entries(conn)
            try:
                write_parts(path, found)
            except (ImportProblems, OSError) as exc:
                problem = exc.problems[0] if isinstance(exc, ImportProblems) else str(exc)
                print(f"gongdan parts export: {problem}", file=sys.stderr)
                return 2
            print(f"exported {len(found)} parts to {path}")
            return 0
        async with db.begin() as conn:
            done = await parts.upsert(conn, rows, utcnow())
    finally:
        await db.dispose()
    print(f"imported {len(rows)} parts ({done.new} new, {done.updated} updated), "
          f"stock of {done.stores} stores")  # fmt: skip
    return 0


async def _rules(settings: Settings, number: str | None, locale: str | None) -> int:
    """``rules explain``: the rule set as an SOP, or ``--ticket``'s scoring from the database."""
    from bot.adapters.codec import TokenCodec
    from bot.assets import AssetIndex
    from bot.directory import Directory
    from bot.flows.routing import job_of, ranking
    from bot.metrics import Metrics
    from bot.routing_explain import explain_ticket, sop
    from bot.unit import Env, Staff, Unit
    from storage import assets, repo
    from storage.db import Database
    from storage.models import utcnow
    from storage.unit import Ids, Store

    locale = locale or settings.locale
    if number is None:
        print(sop(settings, locale), end="")
        return 0
    db = Database(settings.database.url)
    try:
        async with db.read() as s:
            staff = Staff(*await repo.staff(s))
        async with db.reads() as conn:
            env = Env(settings=settings, codec=TokenCodec(b"unused"),
                      directory=Directory(settings), metrics=Metrics(), platforms=(),
                      staff=staff, assets=AssetIndex(await assets.entries(conn)))  # fmt: skip
            unit = Unit(env, Store(conn, Ids()), utcnow())
            ids = await unit.reads.ticket_ids_by_number([number])
            await unit.preload(ids.values())
            ticket = next(iter(unit.tickets.values()), None)
            if ticket is None:
                print(f"gongdan rules explain: no ticket {number!r}", file=sys.stderr)
                return 1
            scored = await ranking(unit, job_of(unit, ticket))
            assignee = unit.known_person(ticket.assignee_id)
            asset = env.assets.get(ticket.asset_id)
    finally:
        await db.dispose()
    print(explain_ticket(ticket, scored, assignee=assignee.name if assignee else None,
                         asset=asset.code if asset else None, locale=locale), end="")  # fmt: skip
    return 0


async def _report(settings: Settings, day: str, lang: str | None, team: str | None) -> int:
    """``report --date``: the daily health report of that local day, as it is posted."""
    from datetime import date

    from bot.flows.reports import compose
    from storage.db import Database

    try:
        when = date.fromisoformat(day)
    except ValueError:
        print(f"gongdan report: --date {day!r} is not a date YYYY-MM-DD", file=sys.stderr)
        return 2
    if team is not None and team not in {t.id for t in settings.teams}:
        print(f"gongdan report: no team {team!r}", file=sys.stderr)
        return 2
    db = Database(settings.database.url)
    try:
        async with db.reads() as conn:
            teams = frozenset({team}) if team else None
            text = await compose(conn, settings, when, lang or settings.locale, teams=teams)
    finally:
        await db.dispose()
    print(text)
    return 0


async def _service_report(settings: Settings, ref: str, output: Path, locale: str | None) -> int:
    """``service-report``: the ticket's printable report (bot/service_report.py) to a file."""
    from bot.errors import BadRequest
    from bot.service_report import UnknownReportTicket, service_report
    from bot.web.api import ticket_ref
    from storage.db import Database

    try:
        which = ticket_ref(ref)
    except BadRequest as exc:
        print(f"gongdan service-report: {exc}", file=sys.stderr)
        return 2
    key = _audit_key(settings)  # (None: the report says the chain could not be checked)
    db = Database(settings.database.url)
    try:
        pdf = await service_report(db, settings, key, which, locale or settings.locale)
    except UnknownReportTicket:
        print(f"gongdan service-report: no ticket {ref!r}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
    await asyncio.to_thread(output.write_bytes, pdf)
    print(f"{output} ({len(pdf) // 1024} KB)")
    return 0


def _serve(settings: Settings) -> int:
    from aiohttp import web

    from bot.app import build_app
    from storage.db import migrate

    migrate(settings.database.url)
    app = build_app(settings)

    async def welcome(app: web.Application) -> None:  # (after the hub has started)
        from bot.console import first_run_links
        from bot.web.api import HUB

        for line in await first_run_links(app[HUB].access):
            print(line, flush=True)

    app.on_startup.append(welcome)
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
            return asyncio.run(_audit(settings, args.audit_command))
        if args.command in ("login-link", "passwd", "sign-out"):
            remove, stdin = getattr(args, "remove", False), getattr(args, "stdin", False)
            return asyncio.run(_access(settings, args.command, args.person, remove, stdin))
        if args.command == "assets":
            target = args.code if args.assets_command == "qr" else str(args.file)
            return asyncio.run(_assets(settings, args.assets_command, target))
        if args.command == "parts":
            return asyncio.run(_parts(settings, args.parts_command, args.file))
        if args.command == "rules":
            return asyncio.run(_rules(settings, args.ticket, args.locale))
        if args.command == "report":
            return asyncio.run(_report(settings, args.date, args.lang, args.team))
        if args.command == "service-report":
            return asyncio.run(_service_report(settings, args.ticket, args.output, args.locale))
        if args.command == "transcribe":
            return asyncio.run(_transcribe(settings, args.files, args.json, args.language))
    except ConfigError as exc:
        print(f"gongdan: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
