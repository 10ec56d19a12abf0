"""The aiohttp application: adapter routes, API, pages; the hub starts and stops with it."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from bot.adapters.body import JSON_DEPTH
from bot.config import Settings
from bot.errors import BadRequest, Forbidden, SignatureInvalid, TooManyRequests
from bot.hub import Hub
from bot.web import closure, dashboard
from bot.web.api import HUB, routes
from bot.web.progress import ProgressPages

__all__ = ["build_app"]

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Headers of an aiohttp ``HTTPException`` that the JSON answer keeps.
_PASSED_HEADERS = frozenset({"www-authenticate", "allow", "retry-after"})


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
    """Every failure becomes a JSON answer with a clear reason; nothing leaks a traceback.

    Bad input is a 4xx: ``BadRequest`` 400, ``SignatureInvalid`` 401, aiohttp's own (404, 405,
    413 over ``max_body_bytes``…) as they are; the excepts for JSON, UTF-8 and recursion errors
    are a net under routes that read a body without ``bot.adapters.body``. Only a fault of
    ours is a 500."""
    try:
        return await handler(request)
    except SignatureInvalid as exc:
        _count_refusal(request, "unauthorized")
        return _error(401, f"unauthorized: {exc}")
    except BadRequest as exc:
        _count_refusal(request, "bad_request")
        return _error(400, str(exc))
    except Forbidden as exc:
        _count_refusal(request, "forbidden")
        return _error(403, f"forbidden: {exc}")
    except TooManyRequests as exc:
        _count_refusal(request, "limited")
        return web.json_response(
            {"error": str(exc), "retry_after": exc.retry_after},
            status=exc.status,
            headers={"Retry-After": str(int(exc.retry_after))},
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response(
            {"error": exc.reason},
            status=exc.status,
            headers={k: v for k, v in exc.headers.items() if k.lower() in _PASSED_HEADERS},
        )
    except json.JSONDecodeError:
        return _error(400, "body is not valid JSON")
    except UnicodeDecodeError:  # a route that decoded a body itself (``bot.adapters.body``)
        return _error(400, "body is not valid UTF-8")
    except RecursionError:  # a route that parsed JSON without ``bot.adapters.body``
        log.warning("%s %s parsed a deeply nested body itself", request.method, request.path)
        return _error(400, "JSON nested too deeply")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal error (logged)")


async def _index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/chat")


def build_app(settings: Settings, hub: Hub | None = None) -> web.Application:
    hub = hub or Hub(settings)
    app = web.Application(client_max_size=settings.server.max_body_bytes, middlewares=[errors])
    app[HUB] = hub
    app[JSON_DEPTH] = settings.limits.json_depth
    app.add_routes(routes())
    app.add_routes(closure.routes())  # evidence photos, service report
    app.add_routes([web.get("/", _index)])
    app.add_routes(dashboard.routes())
    app.add_routes(ProgressPages(hub).routes())  # /t/<token>: the customer's progress page
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
