"""The adapter contract: every platform package has the same shape.

An adapter is the only code that knows a platform. Inbound, it verifies a request, parses it into
neutral events and hands them to the ``Inbox`` (which stores them durably) before answering the
platform. Outbound, ``send`` / ``update`` / ``notify`` are the only calls that touch the network,
and ``limits`` declares the platform's rate limits to the outbox governor. Platform differences
reach the rest of the code as ``Capability`` flags, never as platform names.

Each package under ``bot.adapters`` exposes one ``create(deps: AdapterDeps) -> dict[str,
Adapter]`` (an ``AdapterFactory``): the hub hands every enabled package the same ``AdapterDeps``
and gets its adapters by platform name (a package may serve several surfaces, like WeCom's app,
group robots and AI bot).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Flag, auto
from typing import ClassVar, Protocol

from aiohttp import web

from bot.access import Access
from bot.config import Settings
from bot.events import Address, Card, Inbound, Notice, Text
from bot.inbox import Inbox
from storage.db import Database
from storage.records import FeedEntry

__all__ = ["Adapter", "AdapterDeps", "AdapterFactory", "Capability", "RateLimit", "Sent"]


class Capability(Flag):
    NONE = 0
    BUTTONS = auto()  # cards can carry buttons that call back
    EDIT_CARD = auto()  # a sent card can be updated in place
    NOTICE = auto()  # a private answer to a presser (toast, ephemeral)
    VOICE = auto()  # voice notes can be downloaded
    LOCAL = auto()  # delivery is a row in a table of ours, written with the change it reports


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` messages per ``per`` seconds for everything sharing ``key``."""

    key: str
    count: int
    per: float


@dataclass(frozen=True, slots=True)
class Sent:
    platform_message_id: str | None


class Adapter(abc.ABC):
    platform: ClassVar[str]
    capabilities: ClassVar[Capability]

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    @abc.abstractmethod
    def routes(self) -> Sequence[web.RouteDef]:
        """The aiohttp routes this adapter serves (webhooks, pages)."""

    async def start(self) -> None:  # noqa: B027 (optional hook)
        """Open connections (socket mode, polling); called once the app runs."""

    async def stop(self) -> None:  # noqa: B027 (optional hook)
        """Close what ``start`` opened."""

    def limits(self, destination: Address) -> Sequence[RateLimit]:
        """Rate limits that apply to sending to ``destination``."""
        return ()

    def notice_limits(self, destination: Address) -> Sequence[RateLimit]:
        """Rate limits for a ``Notice`` (a toast may not count as a chat message)."""
        return self.limits(destination)

    def direct_address(self, user_id: str) -> Address:
        """Where a direct message to ``user_id`` goes."""
        return Address(self.platform, user_id)

    @abc.abstractmethod
    async def send(self, destination: Address, message: Text | Card, *, key: str) -> Sent:
        """Deliver a message; ``key`` is unique per outbox row (for platforms that dedupe)."""

    @abc.abstractmethod
    async def update(
        self, destination: Address, platform_message_id: str, card: Card
    ) -> Sent | None:
        """Replace a card already sent. Return ``Sent`` when the card had to be posted anew
        (e.g. WeCom once its update codes are spent): it lives at that message id now."""

    async def notify(self, destination: Address, notice: Notice, *, key: str) -> None:
        """Answer one presser privately; platforms without a private channel post text."""
        await self.send(destination, Text(notice.text), key=key)

    async def download(self, media_ref: str) -> bytes:
        raise NotImplementedError(f"{self.platform} has no media download")

    def inbound_entries(self, event: Inbound) -> Sequence[FeedEntry]:
        """Rows to write with the processing of each of this platform's events (a platform
        that keeps its own history, like the web chat, stores the user's message there)."""
        return ()

    def local_entry(
        self,
        destination: Address,
        message: Text | Card | Notice,
        *,
        key: str,
        at: datetime,
        message_id: str | None = None,
    ) -> FeedEntry:
        """``Capability.LOCAL`` adapters: the row that delivers ``message`` (``message_id``:
        the card it updates). Written in the transaction that decided the message."""
        raise NotImplementedError(f"{self.platform} does not deliver locally")

    def delivered(self) -> None:  # noqa: B027 (optional hook)
        """``Capability.LOCAL`` adapters: rows of theirs were just committed."""


@dataclass(frozen=True, slots=True)
class AdapterDeps:
    """What the hub hands every adapter package's ``create``: built once, shared by all."""

    inbox: Inbox
    """Where inbound events are stored before a platform gets its answer."""
    settings: Settings
    """All settings: a package reads its own section, ``people``, ``public_url``, ``locale``."""
    db: Database
    """The database (the web chat keeps its feed there)."""
    secret: bytes
    """The hub's secret key (the web chat signs its sessions with it)."""
    access: Access | None = None
    """Staff sign-in (the web chat's console); the hub's own, so that every surface shares
    its throttling."""


class AdapterFactory(Protocol):
    """A package's ``create``: its adapters by platform name, all built from ``deps``."""

    def __call__(self, deps: AdapterDeps) -> dict[str, Adapter]: ...
