"""Rate limits on what anonymous and signed-in people may ask of the hub.

Built on the ``limits`` package (moving windows; counters in memory per worker, or in Redis
shared by every worker: ``[limits] storage``). ``hit`` counts one request and says how long to
wait when it is over the limit; ``check`` only looks (sign-in counts failures, not tries).
Which client a request comes from, and which clients are exempt, is decided here too.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

__all__ = ["Limiter", "per_hour", "per_minute", "per_minutes"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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
        # Whether a client is exempt, remembered (parsing an address costs more than a look-up).
        self.exempt = functools.lru_cache(maxsize=4096)(self._exempt_now)

    def _exempt_now(self, client: str) -> bool:
        """A client no web chat limit applies to (``[limits] exempt``)."""
        if not self._exempt:
            return False
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in net for net in self._exempt)

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
