"""The Slack adapter: Events API + interactivity in (HTTP or Socket Mode), Web API out.

Inbound, HTTP: ``POST /webhooks/slack`` → our handler checks the v0 signature over the raw
bytes (``slack_sdk`` ``SignatureVerifier``, clock injectable; a bad, missing or stale signature
raises ``SignatureInvalid`` → 401, nothing stored) → ``parse.read_body`` reads the body as Bolt
will and checks the types of what Bolt reads (not UTF-8, too deep, not JSON, a wrong type →
400 with ``X-Slack-No-Retry: 1``, nothing stored; a malformed event over Socket Mode is acked
and dropped instead, counted as ``malformed``, since an unacked one comes back) → a Bolt
``AsyncApp`` with
``process_before_response=True`` routes it: ``url_verification`` / ``ssl_check`` are answered by
Bolt, events and ``block_actions`` reach our two listeners, which parse and
``await inbox.accept(...)``; only then does Bolt's answer (200) go back. Anything else Bolt
does not route is answered 200 and logged at debug. If storing fails the answer is 500, and
Slack retries. Inbound, Socket Mode (``app_token`` set): Bolt's ``AsyncSocketModeHandler``
feeds the same ``AsyncApp``; it acks an envelope only when dispatch returned 200, i.e. after
the event was stored.

Outbound: ``chat.postMessage`` / ``chat.update`` / ``chat.postEphemeral`` through one
``AsyncWebClient`` whose retry handlers are switched off: the outbox owns retries and backoff,
so ``SlackApiError``s are mapped, not retried here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.base import Adapter, Capability, RateLimit, Sent
from bot.adapters.body import depth_limit
from bot.adapters.http import download, retry_after, status_error
from bot.adapters.slack.parse import (
    PLATFORM,
    BotIdentity,
    parse_block_actions,
    parse_event_callback,
    read_body,
    verify_signature,
)
from bot.adapters.slack.render import render_card, render_notice, render_text
from bot.config import SlackSettings
from bot.errors import (
    AdapterError,
    BadRequest,
    ConfigError,
    PlatformApiError,
    RateLimited,
    TransientSendError,
)
from bot.events import Address, Card, Inbound, Notice, Text
from bot.inbox import Inbox, raw_json

__all__ = ["WORKSPACE_LIMIT", "SlackAdapter"]

log = logging.getLogger(__name__)

#: ``chat.postMessage`` allows about one message per second per channel (short bursts aside).
CHANNEL_LIMIT = (1, 1.0)
#: Slack does not publish its workspace-wide ceiling ("several hundred per minute"); 5/s
#: (300/min) keeps well inside it. One key for the workspace this bot token belongs to.
WORKSPACE_LIMIT = RateLimit("slack:workspace", 5, 1.0)
#: Errors Slack documents as temporary: worth a retry with backoff.
_TRANSIENT = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
#: postEphemeral refusals after which the notice goes to the presser's DM instead.
_NOT_IN_CHANNEL = frozenset({"user_not_in_channel", "channel_not_found", "not_in_channel"})
#: Answered with a refusal: Slack does not retry it (its retries would be refused the same).
_NO_RETRY = {"X-Slack-No-Retry": "1"}
#: Seconds to wait after a 429 (or ``ratelimited``) that names no Retry-After.
_RATE_LIMIT_WAIT_S = 1.0
_IDENTITY_WAIT_S = 1.5


def _now() -> datetime:
    return datetime.now(UTC)


class SlackAdapter(Adapter):
    platform = PLATFORM
    capabilities = Capability.BUTTONS | Capability.EDIT_CARD | Capability.NOTICE | Capability.VOICE

    def __init__(
        self,
        inbox: Inbox,
        settings: SlackSettings,
        *,
        slack_ids: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(inbox)
        if settings.bot_token is None:
            raise ConfigError(["slack.bot_token: required when slack is enabled"])
        self.settings = settings
        self._token = settings.bot_token.get_secret_value()
        self._slack_ids = dict(slack_ids or {})  # person key → Slack user id, for mentions
        self._api_base = settings.api_base_url
        self.client = AsyncWebClient(
            token=self._token, base_url=self._api_base, timeout=15, retry_handlers=[]
        )
        secret = settings.signing_secret
        self.verifier = (
            SignatureVerifier(secret.get_secret_value(), clock=clock or Clock()) if secret else None
        )
        self.identity: BotIdentity | None = None
        self._identity_lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._socket_task: asyncio.Task[None] | None = None
        self.bolt = self._build_bolt()

    # ------------------------------------------------------------------- contract: inbound

    def _build_bolt(self) -> AsyncApp:
        async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
            # No network here: Bolt's own auth.test middleware would answer 200 (and so drop
            # the event) when auth.test fails. We learn who we are in start() instead.
            bot = self.identity or BotIdentity(None)
            return AuthorizeResult(
                enterprise_id=enterprise_id,
                team_id=team_id or bot.team_id,
                bot_token=self._token,
                bot_id=bot.bot_id,
                bot_user_id=bot.user_id,
            )

        bolt = AsyncApp(
            name="gongdan-slack",
            logger=logging.getLogger(f"{__name__}.bolt"),
            client=AsyncWebClient(base_url=self._api_base, retry_handlers=[]),
            authorize=authorize,
            signing_secret="",  # verified before dispatch, in _webhook (clock injectable)
            request_verification_enabled=False,
            process_before_response=True,  # the listener stores before the answer is sent
            raise_error_for_unhandled_request=True,  # → _on_error: 200, debug log
        )
        bolt.event(re.compile(r".*"))(self._on_event)
        bolt.block_action(re.compile(r".*"))(self._on_block_actions)
        bolt.error(self._on_error)
        return bolt

    def routes(self) -> Sequence[web.RouteDef]:
        if self.verifier is None:  # Socket Mode only: nothing may arrive over HTTP
            return []
        return [web.post("/webhooks/slack", self._webhook)]

    async def _webhook(self, request: web.Request) -> web.Response:
        assert self.verifier is not None
        body = await request.read()
        verify_signature(self.verifier, request.headers, body)  # over the raw bytes
        content_type = request.headers.get("Content-Type", "").split(";")[0]  # as Bolt reads it
        try:
            read_body(body, content_type, depth=depth_limit(request))
        except BadRequest as exc:
            return self._refused(exc)
        bolt_request = AsyncBoltRequest(
            body=body.decode("utf-8"), query=request.query_string, headers=dict(request.headers)
        )
        if "X-Slack-Retry-Num" in request.headers:
            log.debug(
                "slack: delivery retry %s (%s)",
                request.headers["X-Slack-Retry-Num"],
                request.headers.get("X-Slack-Retry-Reason", "?"),
            )
        return await to_aiohttp_response(await self.bolt.async_dispatch(bolt_request))

    async def _on_event(self, body: dict[str, Any]) -> None:
        bot = await self._bot_identity(body)
        await self._store(parse_event_callback(body, bot, _now()), body)

    async def _on_block_actions(self, body: dict[str, Any], ack: Any) -> None:
        await self._store(parse_block_actions(body, _now()), body)
        await ack()

    def _refused(self, error: BadRequest) -> web.Response:
        """400 with ``X-Slack-No-Retry``: Slack's way to hear "retrying will not help"."""
        self.inbox.note(PLATFORM, "bad_request")
        log.info("slack: refused a request: %s", error)
        return web.json_response({"error": str(error)}, status=400, headers=_NO_RETRY)

    async def _on_error(
        self, error: Exception, body: dict[str, Any], request: AsyncBoltRequest
    ) -> BoltResponse | None:
        if isinstance(error, BadRequest):  # a field of the event with a wrong type
            if request.mode == "socket_mode":  # acked, or Slack would deliver it again
                self.inbox.note(PLATFORM, "malformed")
                log.warning("slack: dropped a malformed event: %s", error)
                return BoltResponse(status=200, body="")
            self.inbox.note(PLATFORM, "bad_request")
            log.info("slack: refused a request: %s", error)
            return BoltResponse(
                status=400,
                body=json.dumps({"error": str(error)}),
                headers={"content-type": "application/json", **_NO_RETRY},
            )
        if isinstance(error, BoltUnhandledRequestError):
            if body.get("type") == "app_rate_limited":  # Slack is dropping our events
                log.warning("slack: events are being rate limited by Slack: %s", body)
            else:
                log.debug("slack: ignored a %r request", body.get("type"))
            return BoltResponse(status=200, body="")
        # Not stored: the 500 makes Slack retry (HTTP) or redeliver (Socket Mode, no ack).
        log.error("slack: could not store a %r request", body.get("type"), exc_info=error)
        return None

    async def _store(self, events: Sequence[Inbound], body: dict[str, Any]) -> None:
        if not events:
            return
        for accepted in await self.inbox.accept(events, raw=raw_json(body)):
            if not accepted.new:
                log.debug("slack: %s was already stored (retry or duplicate)", accepted.event_id)

    async def _bot_identity(self, body: Mapping[str, Any]) -> BotIdentity:
        if self.identity is not None:
            return self.identity
        try:
            async with asyncio.timeout(_IDENTITY_WAIT_S):  # Slack wants its answer within 3 s
                return await self._learn_identity()
        except (AdapterError, TimeoutError) as exc:
            # Storing the event matters more than recognising a mention: fall back to the bot
            # user Slack names in the event's own authorizations.
            auths = [a for a in body.get("authorizations") or () if a.get("is_bot")]
            log.warning("slack: auth.test failed (%r); using the event's authorizations", exc)
            return BotIdentity(auths[0].get("user_id") if auths else None)

    async def _learn_identity(self) -> BotIdentity:
        async with self._identity_lock:
            if self.identity is None:
                me = await self._api("auth.test")
                self.identity = BotIdentity(me.get("user_id"), me.get("bot_id"), me.get("team_id"))
                log.info("slack: connected as %s (bot %s)", me.get("user_id"), me.get("bot_id"))
            return self.identity

    # ------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        self.client.session = self._http
        try:
            await self._learn_identity()
        except PlatformApiError as exc:
            await self.stop()
            raise ConfigError([f"slack.bot_token: Slack refused it ({exc.code})"]) from exc
        except TransientSendError as exc:
            log.warning("slack: auth.test failed (%s); retrying on the first event", exc)
        if self.settings.app_token is not None:
            self._socket = AsyncSocketModeHandler(
                self.bolt,
                app_token=self.settings.app_token.get_secret_value(),
                logger=logging.getLogger(f"{__name__}.socket"),
                web_client=self.client,
            )
            # connect() retries until it succeeds; it must not hold up the hub's start.
            self._socket_task = asyncio.create_task(
                self._socket.connect_async(),  # type: ignore[no-untyped-call]  # untyped in Bolt
                name="slack-socket-mode",
            )

    async def stop(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.close_async()  # type: ignore[no-untyped-call]  # untyped in Bolt
        task, self._socket_task = self._socket_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        http, self._http = self._http, None
        if http is not None:
            self.client.session = None
            await http.close()

    # ------------------------------------------------------------------ contract: outbound

    def limits(self, destination: Address) -> Sequence[RateLimit]:
        count, per = CHANNEL_LIMIT
        return (RateLimit(f"slack:{destination.chat_id}", count, per), WORKSPACE_LIMIT)

    async def send(self, destination: Address, message: Text | Card, *, key: str) -> Sent:
        args = (
            render_card(message)
            if isinstance(message, Card)
            else render_text(message, self._slack_ids)
        )
        posted = await self._api(
            "chat.postMessage",
            channel=destination.chat_id,
            unfurl_links=False,
            unfurl_media=False,
            **args,
        )
        channel, ts = posted.get("channel"), posted.get("ts")
        if not isinstance(ts, str):
            log.warning("slack: chat.postMessage to %s answered without a ts", destination)
            return Sent(None)
        # Posting to a user id lands in the app's DM (D…): remember which, for chat.update.
        if isinstance(channel, str) and channel != destination.chat_id:
            return Sent(f"{channel}/{ts}")
        return Sent(ts)

    async def update(self, destination: Address, platform_message_id: str, card: Card) -> None:
        channel, sep, ts = platform_message_id.rpartition("/")
        await self._api(
            "chat.update",
            channel=channel if sep else destination.chat_id,
            ts=ts,
            **render_card(card),
        )

    async def notify(self, destination: Address, notice: Notice, *, key: str) -> None:
        """An ephemeral answer to the presser in a channel; a plain post in a DM."""
        args = render_notice(notice)
        if notice.user_id and not _is_direct(destination.chat_id):
            try:
                await self._api(
                    "chat.postEphemeral",
                    channel=destination.chat_id,
                    user=notice.user_id,
                    **args,
                )
                return
            except PlatformApiError as exc:
                if exc.code not in _NOT_IN_CHANNEL:
                    raise
                log.info(
                    "slack: ephemeral to %s refused (%s); using a DM", notice.user_id, exc.code
                )
            destination = Address(PLATFORM, notice.user_id)
        await self._api("chat.postMessage", channel=destination.chat_id, **args)

    async def download(self, media_ref: str) -> bytes:
        """GET a ``url_private_download`` with the bot token, at most ``max_download_bytes``."""
        if not self._trusted_media_url(media_ref):
            raise PlatformApiError("untrusted_media_url", "the bot token is only sent to Slack")
        async with contextlib.AsyncExitStack() as stack:
            http = self._http
            if http is None:  # not started (or stopping): a session for this call only
                http = await stack.enter_async_context(aiohttp.ClientSession())
            got = await download(
                http,
                media_ref,
                limit=self.settings.max_download_bytes,
                what="slack download",
                headers={"Authorization": f"Bearer {self._token}"},
                rate_limit_wait=_RATE_LIMIT_WAIT_S,
            )
        if got.content_type == "text/html":
            # What Slack serves instead of the file when the token may not read it.
            raise PlatformApiError("file_access_denied", "got a login page: is files:read granted?")
        return got.data

    def _trusted_media_url(self, url: str) -> bool:
        parts, api = urlsplit(url), urlsplit(self._api_base)
        host = parts.hostname or ""
        if parts.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com")):
            return True
        return (parts.scheme, parts.netloc) == (api.scheme, api.netloc)  # a proxy or test double

    async def _api(self, method: str, **args: Any) -> dict[str, Any]:
        try:
            response = await self.client.api_call(method, json=args or None)
        except SlackApiError as exc:
            raise _api_error(method, exc) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientSendError(f"slack {method}: {exc!r}") from exc
        return response.data if isinstance(response.data, dict) else {}


def _is_direct(chat_id: str) -> bool:
    return chat_id[:1] in ("D", "U", "W")


def _api_error(method: str, exc: SlackApiError) -> AdapterError:
    """Slack's own error names first (``ratelimited``, the temporary ones), then the status."""
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    error = str(data.get("error") or "")
    what = f"slack {method}"
    if error == "ratelimited":
        return RateLimited(retry_after(response.headers, _RATE_LIMIT_WAIT_S), f"{what}: {error}")
    if error in _TRANSIENT:
        return TransientSendError(f"{what}: HTTP {status} {error}")
    mapped = status_error(
        status,
        what,
        response.headers,
        code=error or None,
        detail=error,
        rate_limit_wait=_RATE_LIMIT_WAIT_S,
    )
    return mapped or PlatformApiError(error or status, what)
