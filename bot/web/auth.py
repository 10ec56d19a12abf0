"""Staff requests: the session a request carries, CSRF and origin checks, the client address.

A browser carries its staff session in an ``HttpOnly``, ``SameSite=Strict`` cookie; every POST
it makes must also send the session's CSRF token in ``X-CSRF-Token`` and, where it sends an
``Origin``, come from this hub. An API client sends ``Authorization: Bearer gds_…`` instead (a
header no other site can make a browser send, so it needs no CSRF token).
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from aiohttp import web

from bot.access import Access, SignedIn, StaffUser
from bot.config import Settings
from bot.errors import Forbidden, SignatureInvalid
from storage.models import utcnow

__all__ = ["COOKIE", "client_of", "forget", "remember", "staff_of"]

COOKIE = "gongdan_staff"
CSRF_HEADER = "X-CSRF-Token"


def client_of(request: web.Request, settings: Settings) -> str:
    """The client's address: the peer, or behind a trusted proxy the last ``X-Forwarded-For``
    hop it added."""
    if settings.limits.trust_forwarded:
        forwarded = request.headers.get("X-Forwarded-For", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1][:64]
    return (request.remote or "unknown")[:64]


def _token(request: web.Request) -> tuple[str | None, bool]:
    """The session token, and whether it came in the cookie (which needs CSRF checks)."""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer gds_"):
        return auth.removeprefix("Bearer ").strip(), False
    cookie = request.cookies.get(COOKIE)
    return (cookie, True) if cookie else (None, False)


def _same_origin(request: web.Request, settings: Settings) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # (not sent: not a cross-site form; the CSRF token still applies)
        return True
    mine = {f"{request.scheme}://{request.host}"}
    public = urlsplit(settings.public_url)
    mine.add(f"{public.scheme}://{public.netloc}")
    return origin in mine


async def staff_of(request: web.Request, access: Access) -> StaffUser:
    """The signed-in staff member making ``request``; a write from a browser must prove it
    came from our page (CSRF token, origin)."""
    token, from_cookie = _token(request)
    if token is None:
        raise SignatureInvalid("sign in first")
    user = await access.authenticate(token)
    if from_cookie and request.method not in ("GET", "HEAD", "OPTIONS"):
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), user.csrf.encode()):
            raise Forbidden("missing or wrong CSRF token (reload the page)")
        if not _same_origin(request, access.settings):
            raise Forbidden("request from another site")
    return user


def remember(
    response: web.Response, request: web.Request, signed: SignedIn, settings: Settings
) -> None:
    """Hand the browser its session cookie, ``Secure`` when the hub is reached over HTTPS:
    directly, or through ``public_url``'s ``https://`` host (a TLS proxy). Reached on its own
    plain-HTTP address instead, a ``Secure`` cookie would be dropped by the browser and the
    next reload would find nobody signed in."""
    public = urlsplit(settings.public_url)
    secure = request.secure or (public.scheme == "https" and request.host == public.netloc)
    response.set_cookie(
        COOKIE,
        signed.token,
        max_age=max(0, int((signed.user.expires_at - utcnow()).total_seconds())),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=secure,
    )


def forget(response: web.Response) -> None:
    response.del_cookie(COOKIE, path="/")
