"""``gongdan serve``: migrate, then run the hub and its web server until stopped."""

from __future__ import annotations

import gc
import logging

from aiohttp import web

from bot.app import build_app
from bot.config import Settings
from bot.console import first_run_links
from bot.web.api import HUB
from storage.db import migrate

__all__ = ["serve_command"]

log = logging.getLogger("gongdan")


#: Young objects allocated before the collector looks (Python's default is 700). A busy hub
#: allocates a few hundred thousand a second, nearly all freed by reference counting: at 700
#: the collector ran some 200 times a second (about 3.5 % of a press's CPU); at this it runs
#: about once a second, and what waits for it is a few megabytes at most.
GC_YOUNG = 20_000


def serve_command(settings: Settings) -> int:
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
    migrate(settings.database.url)
    app = build_app(settings)

    async def welcome(app: web.Application) -> None:  # (after the hub has started)
        for line in await first_run_links(app[HUB].access):
            print(line, flush=True)

    app.on_startup.append(welcome)
    log.info("Gongdan serving on http://%s:%d", settings.server.host, settings.server.port)
    web.run_app(
        app, host=settings.server.host, port=settings.server.port, print=None, access_log=None
    )
    return 0
