"""The aiohttp application: adapter routes, API, pages; the hub starts and stops with it."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from bot.config import Settings
from bot.errors import BadRequest, SignatureInvalid
from bot.hub import Hub
from bot.web.api import HUB, routes

__all__ = ["build_app"]

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _platform_of(path: str) -> str | None:
    parts = path.strip("/").split("/")
    if parts[0] == "webhooks" and len(parts) > 1:
        return parts[1]
    return "web" if parts[0] == "webchat" else None


def _count_refusal(request: web.Request, outcome: str) -> None:
    platform = _platform_of(request.path)
    if platform is not None:
        request.app[HUB].metrics.inbound.labels(platform, outcome).inc()


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a JSON answer with a clear reason; nothing leaks a traceback."""
    try:
        return await handler(request)
    except SignatureInvalid as exc:
        _count_refusal(request, "unauthorized")
        return _error(401, f"unauthorized: {exc}")
    except BadRequest as exc:
        _count_refusal(request, "bad_request")
        return _error(400, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response(
            {"error": exc.reason},
            status=exc.status,
            headers={
                k: v for k, v in exc.headers.items() if k.lower() in ("www-authenticate", "allow")
            },
        )
    except json.JSONDecodeError:
        return _error(400, "body is not valid JSON")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal error (logged)")


async def _index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/chat")


def build_app(settings: Settings, hub: Hub | None = None) -> web.Application:
    hub = hub or Hub(settings)
    app = web.Application(client_max_size=settings.server.max_body_bytes, middlewares=[errors])
    app[HUB] = hub
    app.add_routes(routes())
    app.add_routes([web.get("/", _index)])
    for adapter in hub.adapters.values():
        app.add_routes(adapter.routes())

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await hub.start()
        yield
        await hub.stop()

    async def end_streams(app: web.Application) -> None:
        for adapter in hub.adapters.values():
            await adapter.stop()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(end_streams)
    return app
