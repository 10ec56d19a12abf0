"""Staff access: who a signed-in browser is, and how one signs in.

Two ways in, both per person:

- **A one-time link** (the default). A staff member types "登录"/"login" to the bot in their own
  direct chat (Slack, Telegram, WeCom, DingTalk), or an admin runs ``gongdan login-link
  <person>``; the link names the person, is signed with the hub's secret, works within
  ``[security] login_link_minutes`` and only once (its use is recorded). Its token travels in
  the URL's fragment (``/console#login=…``): browsers never send a fragment to a server, so it
  is not in access logs or ``Referer`` headers, and link previews cannot use it up.
- **Their own password**, when one is set (``gongdan passwd <person>``): Argon2id
  (argon2-cffi), compared in a thread; an unknown person costs the same as a wrong password.

A sign-in is a random token held by the browser (an ``HttpOnly`` cookie) or an API client (a
bearer token); the database keeps only its SHA-256. It ends after ``session_hours``, after
``idle_minutes`` unused, on sign-out, and when the person's password changes. Failed attempts
are throttled per person and per client address (``sign_in_attempts`` per
``sign_in_window_minutes``). The CSRF token a browser must send with each staff POST is derived
from its session (an HMAC of the session's hash): nothing more to store.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.config import Person, Settings
from bot.errors import BadRequest, SignatureInvalid, TooManyRequests
from bot.mac import KeyedSha256
from bot.ratelimit import Limiter, per_minutes
from storage import access as rows
from storage.db import Database
from storage.models import utcnow

__all__ = ["Access", "LinkClaim", "SignedIn", "StaffUser", "check_password"]

log = logging.getLogger(__name__)

_TOKEN_PREFIX = "gds_"
_TOUCH_EVERY = timedelta(minutes=1)  # seen_at is written at most this often per session
_RECENT_MAX = 10_000  # sessions remembered at most (a bound, not a working size)
MIN_PASSWORD = 10
MAX_PASSWORD = 256


@dataclass(frozen=True, slots=True)
class StaffUser:
    """A signed-in staff member."""

    person: Person
    digest: str  # the session's id (SHA-256 of its token)
    csrf: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: StaffUser
    token: str  # give it to the browser (cookie) or the API client; never stored


@dataclass(frozen=True, slots=True)
class LinkClaim:
    person_key: str
    via: str
    issued_at: datetime
    expires_at: datetime


def check_password(password: str) -> str:
    """The password, or ``BadRequest`` saying what is wrong with it."""
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise BadRequest(f"a password may have at most {MAX_PASSWORD} characters")
    return password


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Access:
    def __init__(self, db: Database, settings: Settings, secret: bytes) -> None:
        self.db = db
        self.settings = settings
        self.people = {p.id: p for p in settings.people}
        self._link_key = hmac.new(secret, b"gongdan/sign-in-link/v1", hashlib.sha256).digest()
        self._csrf = KeyedSha256.derived(secret, b"gongdan/csrf/v1")
        self.hasher = PasswordHasher()  # Argon2id, RFC 9106's low-memory profile
        self._dummy: str | None = None
        sec = settings.security
        self.limiter = Limiter(settings.limits.storage)
        self._per_person = per_minutes(sec.sign_in_attempts, sec.sign_in_window_minutes)
        self._per_client = per_minutes(4 * sec.sign_in_attempts, sec.sign_in_window_minutes)
        # Sessions read lately (digest → when read, the row): a console's stream and presses
        # do not each cost a database read; ``session_recheck_seconds`` bounds how stale.
        self._recent: dict[str, tuple[float, rows.SessionRow]] = {}

    # ------------------------------------------------------------------------- links

    def issue_link(self, person_key: str, via: str, *, now: datetime | None = None) -> str:
        """A one-time sign-in link for ``person_key`` (``via``: "cli" or the chat platform)."""
        if person_key not in self.people:
            raise BadRequest(f"unknown person {person_key!r}")
        now = now or utcnow()
        minutes = self.settings.security.login_link_minutes
        body = json.dumps(
            {
                "p": person_key,
                "v": via,
                "i": int(now.timestamp() * 1000),  # ms: a password changed after it wins
                "e": int((now + timedelta(minutes=minutes)).timestamp()),
                "n": secrets.token_urlsafe(9),
            },
            separators=(",", ":"),
        ).encode()
        mac = hmac.new(self._link_key, body, hashlib.sha256).digest()[:18]
        token = f"{_b64(body)}.{_b64(mac)}"
        return f"{self.settings.public_url.rstrip('/')}/console#login={token}"

    def read_link(self, token: object, now: datetime) -> LinkClaim:
        """What a link's token says, once its signature and time are checked."""
        if not isinstance(token, str) or token.count(".") != 1 or len(token) > 400:
            raise SignatureInvalid("not a sign-in link")
        body_b64, mac_b64 = token.split(".")
        try:
            body, mac = _unb64(body_b64), _unb64(mac_b64)
        except ValueError:
            raise SignatureInvalid("not a sign-in link") from None
        good = hmac.new(self._link_key, body, hashlib.sha256).digest()[:18]
        if not hmac.compare_digest(mac, good):
            raise SignatureInvalid("the sign-in link is not valid")
        d = json.loads(body)
        claim = LinkClaim(
            person_key=str(d["p"]),
            via=str(d["v"]),
            issued_at=datetime.fromtimestamp(int(d["i"]) / 1000, UTC),
            expires_at=datetime.fromtimestamp(int(d["e"]), UTC),
        )
        if now >= claim.expires_at:
            raise SignatureInvalid("the sign-in link has expired: ask for a new one")
        return claim

    # ----------------------------------------------------------------------- sign-in

    async def _throttled(self, person_key: str | None, client: str) -> None:
        waits = [await self.limiter.check(self._per_client, "sign-in", "client", client)]
        if person_key is not None:
            waits.append(
                await self.limiter.check(self._per_person, "sign-in", "person", person_key)
            )
        wait = max((w for w in waits if w is not None), default=None)
        if wait is not None:
            raise TooManyRequests(wait, "too many failed sign-ins; try again later")

    async def _failed(self, person_key: str | None, client: str) -> None:
        await self.limiter.hit(self._per_client, "sign-in", "client", client)
        if person_key is not None:
            await self.limiter.hit(self._per_person, "sign-in", "person", person_key)

    async def sign_in_link(self, token: object, client: str) -> SignedIn:
        await self._throttled(None, client)
        now = utcnow()
        try:
            claim = self.read_link(token, now)
            if claim.person_key not in self.people:
                raise SignatureInvalid("this person can no longer sign in")
        except SignatureInvalid:
            await self._failed(None, client)
            raise
        await self._throttled(claim.person_key, client)
        async with self.db.begin() as conn:
            fresh = await rows.use_link(
                conn,
                _digest(str(token)),
                claim.person_key,
                via=claim.via,
                issued_at=claim.issued_at,
                expires_at=claim.expires_at,
                now=now,
            )
            if not fresh:
                raise SignatureInvalid("this sign-in link was used already: ask for a new one")
            changed = await rows.get_password(conn, claim.person_key)
            if changed is not None and changed[1] > claim.issued_at:
                raise SignatureInvalid("the password changed since this link was made")
            return await self._open(conn, claim.person_key, "link", client, now)

    async def sign_in_password(self, person_key: object, password: object, client: str) -> SignedIn:
        if not isinstance(person_key, str) or not isinstance(password, str):
            raise BadRequest("'person' and 'password' must be strings")
        if len(password) > MAX_PASSWORD or len(person_key) > 200:
            raise BadRequest("'person' or 'password' is too long")
        key = person_key if person_key in self.people else None
        await self._throttled(key, client)
        async with self.db.reads() as conn:
            stored = await rows.get_password(conn, key) if key is not None else None
        hashed = stored[0] if stored is not None else await self._dummy_hash()
        ok = await asyncio.to_thread(self._verify, hashed, password)
        if not ok or key is None or stored is None:
            await self._failed(key, client)
            raise SignatureInvalid("wrong person or password")
        now = utcnow()
        async with self.db.begin() as conn:
            return await self._open(conn, key, "password", client, now)

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self.hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await asyncio.to_thread(self.hasher.hash, secrets.token_urlsafe(16))
        return self._dummy

    async def _open(
        self, conn: AsyncConnection, person_key: str, via: str, client: str, now: datetime
    ) -> SignedIn:
        token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = _digest(token)
        expires = now + timedelta(hours=self.settings.security.session_hours)
        await rows.new_session(
            conn,
            digest,
            person_key,
            via=via,
            client=client,
            now=now,
            expires_at=expires,
        )
        log.info("%s signed in (%s) from %s", person_key, via, client)
        user = StaffUser(self.people[person_key], digest, self.csrf(digest), expires)
        return SignedIn(user, token)

    # ---------------------------------------------------------------------- sessions

    def csrf(self, digest: str) -> str:
        return self._csrf.digest(digest.encode()).hex()[:40]

    async def authenticate(self, token: str) -> StaffUser:
        """The staff member a session token belongs to, or ``SignatureInvalid`` saying why not."""
        if not token.startswith(_TOKEN_PREFIX) or len(token) > 100:
            raise SignatureInvalid("not a staff session")
        digest = _digest(token)
        row = await self._session(digest)
        now = utcnow()
        if row is None or row.revoked_at is not None:
            raise SignatureInvalid("signed out: sign in again")
        idle = timedelta(minutes=self.settings.security.idle_minutes)
        if now >= row.expires_at or now - row.seen_at >= idle:
            raise SignatureInvalid("your sign-in has expired: sign in again")
        person = self.people.get(row.person_key)
        if person is None:
            raise SignatureInvalid("this person can no longer sign in")
        if now - row.seen_at >= _TOUCH_EVERY:
            async with self.db.begin() as conn:
                await rows.touch_session(conn, digest, now)
            if digest in self._recent:
                self._recent[digest] = (self._recent[digest][0], replace(row, seen_at=now))
        return StaffUser(person, digest, self.csrf(digest), row.expires_at)

    async def _session(self, digest: str) -> rows.SessionRow | None:
        """The session's row: as read within the last ``session_recheck_seconds`` in this
        process, else from the database. A sign-out here takes effect at once; one made by
        another process (or ``gongdan passwd``) within that many seconds."""
        recheck = self.settings.security.session_recheck_seconds
        mono = time.monotonic()
        known = self._recent.get(digest)
        if known is not None and mono - known[0] < recheck:
            return known[1]
        async with self.db.quick() as conn:
            row = await rows.get_session(conn, digest)
        if recheck > 0 and row is not None and row.revoked_at is None:
            if len(self._recent) >= _RECENT_MAX:  # (stale entries first; never unbounded)
                self._recent = {d: k for d, k in self._recent.items() if mono - k[0] < recheck}
                if len(self._recent) >= _RECENT_MAX:
                    self._recent.clear()
            self._recent[digest] = (mono, row)
        else:
            self._recent.pop(digest, None)
        return row

    def _forget(self, person_key: str | None = None, digest: str | None = None) -> None:
        """Sessions ended here are never taken from memory again."""
        if digest is not None:
            self._recent.pop(digest, None)
        if person_key is not None:
            gone = [d for d, (_, row) in self._recent.items() if row.person_key == person_key]
            for d in gone:
                del self._recent[d]

    async def sign_out(self, user: StaffUser) -> None:
        async with self.db.begin() as conn:
            await rows.revoke_session(conn, user.digest, utcnow())
        self._forget(digest=user.digest)

    async def sign_out_everywhere(self, person_key: str) -> int:
        async with self.db.begin() as conn:
            ended = await rows.revoke_person(conn, person_key, utcnow())
        self._forget(person_key)
        return ended

    async def set_password(self, person_key: str, password: str | None) -> None:
        """Set (None: remove) a person's password; every sign-in of theirs ends."""
        if person_key not in self.people:
            raise BadRequest(f"unknown person {person_key!r}")
        hashed = None
        if password is not None:
            hashed = await asyncio.to_thread(self.hasher.hash, check_password(password))
        async with self.db.begin() as conn:
            await rows.set_password(conn, person_key, hashed, utcnow())
        self._forget(person_key)
