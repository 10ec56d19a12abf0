"""Staff access and the audit trail from the command line: ``login-link``, ``passwd``,
``sign-out``, ``audit verify`` and ``audit checkpoint``."""

from __future__ import annotations

import getpass
import sys
from datetime import timedelta

from bot.access import Access, check_password
from bot.audit import take_checkpoint
from bot.config import Settings
from bot.errors import BadRequest
from bot.hub import load_secret
from storage import repo
from storage.audit import audit_key
from storage.db import opened
from storage.models import utcnow

__all__ = ["access_command", "audit_command", "audit_key_of"]


def audit_key_of(settings: Settings) -> bytes | None:
    """The audit key from the hub's secret, without creating one (``hub.load_secret`` would:
    a new secret verifies nothing)."""
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


async def audit_command(settings: Settings, command: str) -> int:
    """``audit verify`` and ``audit checkpoint``."""
    key = audit_key_of(settings)
    if key is None:
        return 2
    async with opened(settings.database.url) as db:
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


async def access_command(
    settings: Settings, command: str, person: str, remove: bool, stdin: bool
) -> int:
    """``login-link``, ``passwd`` and ``sign-out``: staff access from the command line."""
    if person not in {p.id for p in settings.people}:
        print(f"gongdan {command}: no person {person!r} in [[people]]", file=sys.stderr)
        return 2
    async with opened(settings.database.url, migrated=True) as db:
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
    return 0


def _read_password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("gongdan passwd: the two passwords differ")
    return first
