"""What the adapter contract test needs from each platform: a driver.

A driver knows how its platform signs requests, what its real payloads look like (the samples
under ``tests/fixtures/payloads/<platform>/``, each with the normalized event it must parse to),
and how a press of a rendered card's button comes back. It runs the platform's fake API on a
loopback port and says which settings point the hub at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

FIXTURES = Path(__file__).parent.parent / "fixtures" / "payloads"


@dataclass
class Request:
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Sample:
    name: str
    request: Request
    #: ``inbound_to_json(event)`` of each event it must store, without ``received_at``
    expected: list[dict[str, Any]]


class Driver(Protocol):
    platform: str

    async def start(self) -> dict[str, Any]:
        """Start the fake platform API; return the settings overrides that enable the adapter."""

    async def stop(self) -> None: ...

    async def prepare(self, base_url: str) -> None:
        """Called once the hub runs (e.g. the web chat needs a session from it)."""

    def samples(self) -> list[Sample]:
        """Real payloads, correctly signed, with what they must parse to."""

    def forged(self) -> list[Request]:
        """Requests with a bad signature/token (or replayed): each refused with 401/403."""

    def unknown(self) -> Request:
        """A correctly signed event of a type we do not handle: answered 2xx, nothing stored."""

    def render(self, card: Any) -> Any:
        """The adapter's rendering of a neutral ``Card`` (pure)."""

    def click(self, rendered: Any, button: int) -> Request:
        """The platform's callback when someone presses button ``button`` of ``rendered``."""

    async def media(self) -> tuple[str, bytes]:
        """A media reference the fake API serves, and the bytes a download must return."""
