"""Telegram: a bot in private chats and groups, through python-telegram-bot (PTB).

PTB's ``Application`` runs without its web server and without handlers (the engine processes
what the inbox stored): ``application.bot`` makes every API call, ``Update.de_json`` reads
updates for ``parse``, and in polling mode ``application.updater`` runs ``getUpdates``.

Webhook: ``POST /webhooks/telegram`` checks ``X-Telegram-Bot-Api-Secret-Token`` in constant time
(missing or wrong → 403), requires ``application/json`` and a JSON object (UTF-8, within the
depth limit) with an integer ``update_id`` — else 400: Telegram never sends anything else, so
whoever knew the secret sent a malformed request —, parses, stores through the inbox, then
answers 200. An update whose fields are malformed (no ``chat``, a number for ``text``…) is
answered 200 as well, stored nowhere and counted (``malformed``): Telegram has no "do not retry"
answer and would deliver it again and again for a day. A failed store answers 5xx and
Telegram delivers the update again.

Polling: the updater moves its offset past a batch only after ``put`` returned for each update,
and the next ``getUpdates`` confirms the batch to Telegram. Our queue stores inside ``put``, so
nothing is confirmed before it is committed; a failed store raises ``NetworkError`` from ``put``,
PTB backs off and fetches the same updates again, and the inbox drops those already stored.

PTB never retries or sleeps on its own here (no rate limiter): each error is translated once,
and the outbox owns retries, backoff and the flood limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Coroutine, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from telegram import LinkPreviewOptions, Update
from telegram import error as tg
from telegram.constants import FloodLimit, ParseMode
from telegram.ext import Application

from bot.adapters.base import Adapter, Capability, RateLimit, Sent
from bot.adapters.body import depth_limit, loads_object
from bot.adapters.http import download
from bot.adapters.telegram.parse import (
    PLATFORM,
    BotIdentity,
    ConfirmStep,
    bot_id_of,
    parse_update,
    read_update,
)
from bot.adapters.telegram.render import CONFIRM, arm, disarm, render_card, render_text
from bot.config import Settings
from bot.errors import (
    BadRequest,
    ConfigError,
    MediaTooLarge,
    PlatformApiError,
    RateLimited,
    TransientSendError,
)
from bot.events import Address, Card, Notice, Text
from bot.inbox import Inbox, raw_json

__all__ = ["SECRET_HEADER", "WEBHOOK_PATH", "TelegramAdapter"]

log = logging.getLogger(__name__)
_POOL = 16  # connections to the Bot API
_POOL_WAIT_S = 10.0  # a send waits this long for one (the outbox bounds the whole send)

WEBHOOK_PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ("message", "callback_query")
POLL_TIMEOUT = timedelta(seconds=25)  # long polling: Telegram holds getUpdates this long
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_TOAST_MAX = 200  # answerCallbackQuery's text limit
_ALERT_OVER = 60  # longer answers are shown as an alert the presser dismisses
_ARMED_HINT = {"zh": "请再点 ✔ 确认，点 ✖ 取消。", "en": "Tap ✔ to confirm, ✖ to keep it."}


class _StoringQueue(asyncio.Queue[object]):
    """The updater's queue: ``put`` returns only once the update is stored (see module doc)."""

    def __init__(self, adapter: TelegramAdapter) -> None:
        super().__init__()
        self._adapter = adapter

    async def put(self, item: object) -> None:
        if not isinstance(item, Update):
            return
        try:
            data = item.to_dict()  # checked as a webhook's would be: PTB checks no types
            await self._adapter.receive(read_update(data, self._adapter.bot), raw_json(data))
        except BadRequest as exc:  # malformed: fetching it again would not help
            self._adapter.dropped(item.update_id, exc)
        except Exception as exc:  # PTB's polling loop retries TelegramErrors, without the offset
            raise tg.NetworkError(f"storing update {item.update_id} failed: {exc!r}") from exc


class _RedactToken(logging.Filter):
    """Bot API URLs contain the token: httpx logs each one at INFO, PTB's bot at DEBUG."""

    LOGGERS = ("httpx", "telegram.Bot", "telegram.ext.ExtBot", "telegram.ext.Updater")

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._token in message:
            record.msg, record.args = message.replace(self._token, "<token>"), ()
        return True

    def attach(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)

    def detach(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """PTB's errors → ours, so the outbox knows what to retry (see ``bot.errors``)."""
    try:
        yield
    except tg.RetryAfter as exc:
        raise RateLimited(_retry_after(exc), "telegram: flood control") from exc
    except tg.TimedOut as exc:
        raise TransientSendError(f"telegram: {exc.message}") from exc
    except tg.BadRequest as exc:
        raise PlatformApiError(400, exc.message) from exc
    except tg.NetworkError as exc:  # connection errors and 5xx
        raise TransientSendError(f"telegram: {exc.message}") from exc
    except tg.Forbidden as exc:  # blocked by the user, removed from the group, never /started
        raise PlatformApiError(403, exc.message) from exc
    except tg.InvalidToken as exc:
        raise PlatformApiError(401, "the bot token was rejected") from exc
    except tg.ChatMigrated as exc:
        raise PlatformApiError("chat_migrated", f"now chat {exc.new_chat_id}") from exc
    except tg.TelegramError as exc:  # e.g. an unreadable answer: worth a few more tries
        raise TransientSendError(f"telegram: {exc.message}") from exc


def _retry_after(exc: tg.RetryAfter) -> float:
    seconds = exc.__reduce__()[1][0]  # int seconds, without PTB's int/timedelta deprecation
    return max(float(seconds), 0.0)


def _chat_id(destination: Address) -> int | str:
    chat = destination.chat_id
    return int(chat) if chat.lstrip("-").isdigit() else chat


class TelegramAdapter(Adapter):
    platform = PLATFORM
    capabilities = Capability.BUTTONS | Capability.EDIT_CARD | Capability.NOTICE | Capability.VOICE

    def __init__(self, inbox: Inbox, settings: Settings) -> None:
        super().__init__(inbox)
        self.settings = settings.telegram
        if self.settings.bot_token is None:
            raise ConfigError(["telegram.bot_token: required when telegram is enabled"])
        self._token = self.settings.bot_token.get_secret_value()
        self._public_url = settings.public_url.rstrip("/")
        self._locale = settings.locale
        self._people = {
            p.id: (ref.partition(":")[2], p.name)
            for p in settings.people
            for ref in reversed(p.identities)
            if ref.startswith("telegram:")
        }
        self._redact = _RedactToken(self._token)
        self._redact.attach()  # before PTB's bot logs its URLs
        base = self.settings.api_base_url.rstrip("/")
        self._file_base = f"{base}/file/bot{self._token}/"
        builder = (
            Application.builder()
            .token(self._token)
            .base_url(f"{base}/bot")
            .base_file_url(f"{base}/file/bot")
            .job_queue(None)
            # One host, kept-alive connections: a few suffice for thousands of calls a second,
            # and httpcore looks over every pooled connection for each request (PTB's default
            # pool of 256 made a send cost milliseconds of CPU under load).
            .connection_pool_size(_POOL)
            .pool_timeout(_POOL_WAIT_S)
        )
        if self.settings.mode == "polling":
            builder = builder.update_queue(_StoringQueue(self))
        else:
            builder = builder.updater(None)
        self.application: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self.bot = self.application.bot
        self.me = BotIdentity(bot_id_of(self._token))
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None

    # -------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._redact.attach()  # again, after a stop
        try:
            await self._connect()
        except (tg.NetworkError, tg.RetryAfter) as exc:
            log.warning("Telegram is not reachable (%s); trying again in the background", exc)
            self._spawn(self._connect_later())

    async def _connect(self) -> None:
        """getMe (who we are), then start polling or register the webhook. Idempotent."""
        try:
            await self.application.initialize()
        except tg.InvalidToken:
            raise ConfigError(["telegram.bot_token: Telegram rejected the token"]) from None
        self.me = BotIdentity(self.bot.id, self.bot.username)
        updater = self.application.updater
        if updater is not None and not updater.running:
            await updater.start_polling(
                timeout=POLL_TIMEOUT,
                allowed_updates=ALLOWED_UPDATES,
                error_callback=self._polling_error,
            )
        elif self.settings.set_webhook and self._public_url.startswith("https://"):
            await self._set_webhook()

    async def _set_webhook(self) -> None:
        secret = self.settings.webhook_secret
        try:
            await self.bot.set_webhook(
                url=self._public_url + WEBHOOK_PATH,
                secret_token=secret.get_secret_value() if secret else None,
                allowed_updates=ALLOWED_UPDATES,
            )
        except tg.BadRequest as exc:  # e.g. a public_url Telegram cannot reach: fix the config
            log.error("setWebhook refused: %s; no Telegram updates will arrive", exc.message)

    async def _connect_later(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                await self._connect()
            except (tg.NetworkError, tg.RetryAfter) as exc:
                delay = _retry_after(exc) if isinstance(exc, tg.RetryAfter) else min(delay * 2, 60)
                log.info("Telegram still not reachable (%s); next try in %.0fs", exc, delay)
            except ConfigError as exc:
                log.error("%s", exc)
                return
            else:
                log.info("connected to Telegram as @%s", self.me.username)
                return

    @staticmethod
    def _polling_error(exc: tg.TelegramError) -> None:
        log.warning("Telegram polling: %s (retrying)", exc)

    async def stop(self) -> None:
        """Idempotent: the app's shutdown and the hub both call it."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()  # confirms what was stored with a last getUpdates
        await self.application.shutdown()
        if self._http is not None:
            await self._http.close()
            self._http = None
        self._redact.detach()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------------------- inbound

    def routes(self) -> Sequence[web.RouteDef]:
        return [web.post(WEBHOOK_PATH, self._webhook)]

    async def _webhook(self, request: web.Request) -> web.Response:
        secret = self.settings.webhook_secret
        given = request.headers.get(SECRET_HEADER)
        if (
            secret is None
            or given is None
            or not hmac.compare_digest(given.encode(), secret.get_secret_value().encode())
        ):
            raise web.HTTPForbidden(reason="missing or wrong secret token")
        if request.content_type != "application/json":
            raise BadRequest("expected Content-Type: application/json")
        body = await request.read()
        data = loads_object(body, depth=depth_limit(request), what="Telegram update")
        update_id = data.get("update_id")
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            raise BadRequest("not a Telegram update: no update_id")
        try:
            await self.receive(read_update(data, self.bot), body.decode("utf-8"))
        except BadRequest as exc:  # acknowledged: Telegram would retry anything else for a day
            self.dropped(update_id, exc)
        return web.Response(status=200)

    def dropped(self, update_id: object, error: BadRequest) -> None:
        """A malformed update, acknowledged and not stored: counted and logged."""
        self.inbox.note(PLATFORM, "malformed")
        log.warning("telegram update %s is malformed; acknowledged, dropped: %s", update_id, error)

    async def receive(self, update: Update, raw: str) -> None:
        """Store what ``update`` means; return once it is committed (or needs no storing)."""
        parsed = parse_update(update, self.me, datetime.now(UTC))
        if parsed is None:
            return
        if isinstance(parsed, ConfirmStep):
            self._spawn(self._confirm_step(parsed))
            return
        (accepted,) = await self.inbox.accept([parsed], raw=raw)
        if not accepted.new:
            log.debug("telegram update %s was already stored", update.update_id)

    async def _confirm_step(self, step: ConfirmStep) -> None:
        """Arm or disarm a confirm row, for the presser's eyes only: nothing is stored, and if
        this is lost the presser just presses again."""
        arming = step.data.startswith(CONFIRM)
        markup = (arm if arming else disarm)(step.keyboard, step.data)
        try:
            if markup is not None:
                await self.bot.edit_message_reply_markup(
                    chat_id=step.chat_id, message_id=step.message_id, reply_markup=markup
                )
            hint = _ARMED_HINT.get(self._locale, _ARMED_HINT["en"]) if arming else None
            await self.bot.answer_callback_query(step.callback_query_id, text=hint)
        except tg.TelegramError as exc:
            log.info("confirm step on message %s failed: %s", step.message_id, exc)

    # --------------------------------------------------------------------------- outbound

    def limits(self, destination: Address) -> Sequence[RateLimit]:
        """PTB's ``FloodLimit``: 1/s per chat, 20/min per group; ``messages_per_second`` (30
        unless paid broadcasts raise it) for the whole bot."""
        chat, flood = destination.chat_id, FloodLimit
        limits = [
            RateLimit(f"telegram:chat:{chat}", flood.MESSAGES_PER_SECOND_PER_CHAT, 1.0),
            self._bot_limit(),
        ]
        if chat.startswith("-"):  # groups and supergroups have negative ids
            group = RateLimit(f"telegram:group:{chat}", flood.MESSAGES_PER_MINUTE_PER_GROUP, 60.0)
            limits.append(group)
        return limits

    def notice_limits(self, destination: Address) -> Sequence[RateLimit]:
        """A toast (answerCallbackQuery) is not a chat message: only the bot-wide limit."""
        return [self._bot_limit()]

    def _bot_limit(self) -> RateLimit:
        return RateLimit("telegram:bot", self.settings.messages_per_second, 1.0)

    def _mentions(self, people: Sequence[str]) -> list[tuple[int | str, str]]:
        return [self._people[key] for key in people if key in self._people]

    async def send(self, destination: Address, message: Text | Card, *, key: str) -> Sent:
        if isinstance(message, Card):
            rendered = render_card(message)
        else:
            rendered = render_text(message.text, self._mentions(message.mentions))
        with _translated():
            sent = await self.bot.send_message(
                chat_id=_chat_id(destination),
                text=rendered.text,
                parse_mode=ParseMode.HTML,
                reply_markup=rendered.reply_markup,
                link_preview_options=_NO_PREVIEW,
            )
        return Sent(str(sent.message_id))

    async def update(self, destination: Address, platform_message_id: str, card: Card) -> None:
        rendered = render_card(card)
        try:
            with _translated():
                await self.bot.edit_message_text(
                    text=rendered.text,
                    chat_id=_chat_id(destination),
                    message_id=int(platform_message_id),
                    parse_mode=ParseMode.HTML,
                    # Without a keyboard Telegram removes the old one: a card with no buttons
                    # left loses them (PTB would serialize an empty keyboard as ``{}``).
                    reply_markup=rendered.reply_markup,
                    link_preview_options=_NO_PREVIEW,
                )
        except PlatformApiError as exc:
            if "message is not modified" in exc.message.lower():
                return  # the card already shows exactly this
            raise

    async def notify(self, destination: Address, notice: Notice, *, key: str) -> None:
        """A toast for the presser (``answerCallbackQuery``); if the press is too old to answer,
        or there was no press, the text goes to the chat instead."""
        query_id = notice.reply_ctx.get("callback_query_id")
        if isinstance(query_id, str) and query_id:
            text = notice.text
            alert = len(text) > _ALERT_OVER
            if len(text) > _TOAST_MAX:
                text = text[: _TOAST_MAX - 1] + "…"
            try:
                with _translated():
                    await self.bot.answer_callback_query(query_id, text=text, show_alert=alert)
                return
            except PlatformApiError as exc:
                if "query is too old" not in exc.message.lower():
                    raise
                log.info("callback query %s expired; posting the answer instead", query_id)
        await self.send(destination, Text(notice.text), key=key)

    async def download(self, media_ref: str) -> bytes:
        limit = self.settings.max_download_bytes
        try:
            with _translated():
                file = await self.bot.get_file(media_ref)
        except PlatformApiError as exc:
            if "file is too big" in exc.message.lower():
                raise MediaTooLarge("telegram file is over the bot download limit") from exc
            raise
        if file.file_size is not None and file.file_size > limit:
            raise MediaTooLarge(f"telegram file of {file.file_size} bytes (limit {limit})")
        if not file.file_path or not file.file_path.startswith(self._file_base):
            raise PlatformApiError("file_path", "getFile returned no downloadable path")
        if self._http is None:
            self._http = aiohttp.ClientSession()
        # The file URL holds the token: the shared download never repeats it.
        got = await download(self._http, file.file_path, limit=limit, what="telegram file download")
        return got.data
