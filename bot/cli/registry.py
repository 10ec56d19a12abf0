"""The asset registry and the spare-parts catalog from files: ``assets import|export|qr`` and
``parts import|export`` (CSV or XLSX; every bad row named, nothing half-imported)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bot.asset_files import read_assets, write_assets
from bot.assets import AssetLinks
from bot.config import Settings
from bot.hub import load_secret
from bot.part_files import read_parts_file, write_parts
from bot.sheets import ImportProblems
from storage import assets, parts
from storage.db import opened
from storage.models import utcnow

__all__ = ["assets_command", "parts_command"]

T = TypeVar("T")


def _read_sheet(what: str, command: str, path: Path, read: Callable[[], list[T]]) -> list[T] | int:
    """What ``read`` finds in ``path`` for ``<what> import`` (nothing for other commands), or
    the exit code once every problem is printed: 1 for bad rows, 2 for an unreadable file."""
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


def _wrote(what: str, path: Path, write: Callable[[], None]) -> bool:
    """Whether ``<what> export`` wrote ``path``; if not, why is printed (an unknown file type,
    a folder that is not there, no permission)."""
    try:
        write()
    except (ImportProblems, OSError) as exc:
        problem = exc.problems[0] if isinstance(exc, ImportProblems) else str(exc)
        print(f"gongdan {what} export: {path}: {problem}", file=sys.stderr)
        return False
    return True


async def assets_command(settings: Settings, command: str, target: str) -> int:
    """``assets import FILE``, ``assets export FILE`` and ``assets qr CODE``."""
    path = Path(target)
    people = {p.id for p in settings.people}
    rows = _read_sheet("assets", command, path, lambda: read_assets(path, people))
    if isinstance(rows, int):
        return rows
    async with opened(settings.database.url, migrated=True) as db:
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
            if not _wrote("assets", path, lambda: write_assets(path, found)):
                return 2
            print(f"exported {len(found)} assets to {path}")
        else:
            async with db.reads() as conn:
                asset = await assets.by_code(conn, target)
            if asset is None:
                print(f"gongdan assets qr: no asset {target!r}", file=sys.stderr)
                return 1
            print(AssetLinks(load_secret(settings)).url(settings.public_url, asset.id))
    return 0


async def parts_command(settings: Settings, command: str, path: Path) -> int:
    """``parts import FILE`` (every row checked first; nothing written unless all are good)
    and ``parts export FILE``."""
    rows = _read_sheet("parts", command, path, lambda: read_parts_file(path))
    if isinstance(rows, int):
        return rows
    async with opened(settings.database.url, migrated=True) as db:
        if command == "export":
            async with db.reads() as conn:
                found = await parts.entries(conn)
            if not _wrote("parts", path, lambda: write_parts(path, found)):
                return 2
            print(f"exported {len(found)} parts to {path}")
            return 0
        async with db.begin() as conn:
            done = await parts.upsert(conn, rows, utcnow())
    print(f"imported {len(rows)} parts ({done.new} new, {done.updated} updated), "
          f"stock of {done.stores} stores")  # fmt: skip
    return 0
