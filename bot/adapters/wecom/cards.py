"""Which card is live, and which ``response_code``s can still change it (in memory).

WeCom lets a sent ``button_interaction`` card be changed only with a ``response_code``: one
comes back from ``message/send`` and one with every button press, each good for **one**
``update_template_card`` call within 72 hours. The ledger keeps, per card (``task_id``), the codes
not yet spent, and per card *handle* (the platform message id the outbox stores: the first
card's ``task_id``) which card currently stands for it, after a fresh card had to replace it.

The policy in the app adapter: with two or more codes the newest updates the card in place and
the oldest stays in reserve; with one left, that one marks the card stale and a fresh card is
posted; with none, a fresh card is posted (the old one cannot be touched; its buttons carry an
old card version, so a press on them is refused as out of date).

Kept in memory, bounded, per process: after a restart (or on another process) a card's codes
are unknown and the next change posts a fresh card — never a wrong one.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CODE_TTL_S", "CardLedger"]

#: 72 h validity, less a margin for clocks and queues.
CODE_TTL_S = 72 * 3600 - 600
_MAX_CARDS = 20_000


@dataclass
class _Card:
    codes: list[tuple[str, float]] = field(default_factory=list)  # (code, expires at), oldest first


class CardLedger:
    def __init__(self, clock: Callable[[], float] = time.time, ttl: float = CODE_TTL_S) -> None:
        self._clock = clock
        self._ttl = ttl
        self._cards: OrderedDict[str, _Card] = OrderedDict()
        self._moved: OrderedDict[str, str] = OrderedDict()  # handle → current task id

    def _card(self, task_id: str) -> _Card:
        card = self._cards.get(task_id)
        if card is None:
            card = self._cards[task_id] = _Card()
            while len(self._cards) > _MAX_CARDS:
                self._cards.popitem(last=False)
        self._cards.move_to_end(task_id)
        now = self._clock()
        card.codes = [(c, exp) for c, exp in card.codes if exp > now]
        return card

    def issued(self, task_id: str, code: str) -> None:
        """A new code for ``task_id`` (from ``message/send`` or a button press)."""
        if not task_id or not code:
            return
        card = self._card(task_id)
        if all(c != code for c, _ in card.codes):
            card.codes.append((code, self._clock() + self._ttl))

    def usable(self, task_id: str) -> int:
        return len(self._card(task_id).codes)

    def take_newest(self, task_id: str) -> str | None:
        codes = self._card(task_id).codes
        return codes.pop()[0] if codes else None

    def take_oldest(self, task_id: str) -> str | None:
        codes = self._card(task_id).codes
        return codes.pop(0)[0] if codes else None

    def current(self, handle: str) -> str:
        """The task id that now stands for ``handle``."""
        return self._moved.get(handle, handle)

    def moved(self, handle: str, task_id: str) -> None:
        """``handle``'s card was replaced by a fresh card ``task_id``."""
        self._moved[handle] = task_id
        self._moved.move_to_end(handle)
        while len(self._moved) > _MAX_CARDS:
            self._moved.popitem(last=False)

    def knows(self, handle: str) -> bool:
        """Whether this process has seen the card (else its codes are unknown here)."""
        return handle in self._cards or handle in self._moved
