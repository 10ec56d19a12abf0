"""Rate limits on what anonymous and signed-in people may ask of the hub.

Built on the ``limits`` package (moving windows; counters in memory per worker, or in Redis
shared by every worker: ``[limits] storage``). ``hit`` counts one request and says how long to
wait when it is over the limit; ``check`` only looks (sign-in counts failures, not tries).
Which client a request comes from, and which clients are exempt, is decided here too.
"""

from __future__ import annotations

import ipaddress
import math
import time

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

__all__ = ["Limiter", "per_hour", "per_minute", "per_minutes"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_KNOWN_MAX = 4096


def per_minute(amount: int) -> RateLimitItem:
    return RateLimitItemPerMinute(amount)


def per_hour(amount: int) -> RateLimitItem:
    return RateLimitItemPerHour(amount)


def per_minutes(amount: int, minutes: float) -> RateLimitItem:
    return RateLimitItemPerMinute(amount, max(1, math.ceil(minutes)))


class Limiter:
    def __init__(
        self, storage: str = "memory://", exempt: list[str] | tuple[str, ...] = ()
    ) -> None:
        uri = storage if storage.startswith("async+") else "async+" + storage
        self._window = MovingWindowRateLimiter(storage_from_string(uri))
        self._exempt: list[Network] = [ipaddress.ip_network(n, strict=False) for n in exempt]
        self._known: dict[str, bool] = {}  # client → exempt (parsing an address costs more)

    def exempt(self, client: str) -> bool:
        """A client no web chat limit applies to (``[limits] exempt``)."""
        if not self._exempt:
            return False
        known = self._known.get(client)
        if known is None:
            try:
                address = ipaddress.ip_address(client)
            except ValueError:
                known = False
            else:
                known = any(address in net for net in self._exempt)
            if len(self._known) >= _KNOWN_MAX:  # (bounded: clients are many, the answers two)
                self._known.clear()
            self._known[client] = known
        return known

    async def hit(self, rate: RateLimitItem, *key: str) -> float | None:
        """Count one request; None when it is within ``rate``, else seconds to wait."""
        if await self._window.hit(rate, *key):
            return None
        return await self._wait(rate, *key)

    async def check(self, rate: RateLimitItem, *key: str) -> float | None:
        """Whether one more would be within ``rate`` (None), without counting it."""
        if await self._window.test(rate, *key):
            return None
        return await self._wait(rate, *key)

    async def _wait(self, rate: RateLimitItem, *key: str) -> float:
        stats = await self._window.get_window_stats(rate, *key)
        return max(1.0, math.ceil(stats.reset_time - time.time()))
