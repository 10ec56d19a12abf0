"""Similar past cases: BM25 (``bm25s``) over jieba tokens of resolved and closed tickets.

A past case is a ticket in ``CASE_STATES`` that was not merged into another and says what the
cause was (its written root cause, else the confirmed diagnosis's suspected cause). Its text
is the title, description, alarm code, root cause and the confirmed diagnosis (symptom,
suspected cause, actions taken, parts); ``case_tokens`` turns text into lowercase jieba tokens
without stop words and punctuation, in Chinese and English alike.

``SimilarCases`` keeps every case in memory as token ids. Searches go to a ``bm25s`` index
(the *base*, built in a thread) plus the few cases added since it was built (*pending*,
scored in Python with the base's statistics); a case that changed or left (reopened) is
masked out of the base. ``compact`` rebuilds the base when pending or masked cases grow.
Until the first build is done, ``ready`` is False and ``similar`` finds nothing.

Everything here runs on the event loop except ``prepare`` (tokenising) and the base's build,
which may run in a thread: token ids are handed out under a lock.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from bot.nlp.text import normalize, tokens

if TYPE_CHECKING:
    import bm25s

__all__ = [
    "CASE_STATES",
    "STOP_WORDS",
    "CaseSource",
    "Match",
    "SimilarCases",
    "case_text",
    "case_tokens",
    "cause_of",
    "query_text",
]

#: States in which a ticket is a past case (``bot.tickets.TicketState`` values).
CASE_STATES = frozenset({"resolved", "closed"})

#: Words that say nothing about which fault it is (chosen on the dev queries only).
_STOP_TEXT = (
    "的 了 是 在 有 和 与 及 或 也 都 就 还 又 很 太 好像 一直 经常 老是 时 后 前 会 能 不 没 没有 "
    "一 个 这 那 我 我们 你 您 他 她 它 们 吗 吧 呢 啊 呀 请 帮 麻烦 一下 现在 今天 刚才 "
    "号 台 边 那边 这边 里 上 下 出现 问题 故障 情况 设备 机器 显示 提示 报 后来 然后 但 但是 "
    "a an the and or of to in on at by for with from is are was were be been it its this that "
    "these those as not no when after before then than there here we our you your they their "
    "i me my please can could would should will has have had do does did so very now again "
    "just still keeps keep seems seem some any all one two"
)
STOP_WORDS = frozenset(_STOP_TEXT.split())

K1 = 1.2
B = 0.75


class CaseSource(Protocol):
    """What the index reads of a ticket (``records.Ticket`` and ``storage.cases.CaseRow``)."""

    @property
    def id(self) -> int: ...
    @property
    def number(self) -> str | None: ...
    @property
    def title(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def alarm_code(self) -> str | None: ...
    @property
    def root_cause(self) -> str | None: ...
    @property
    def diagnosis(self) -> dict[str, Any] | None: ...
    @property
    def state(self) -> str: ...
    @property
    def merged_into(self) -> int | None: ...
    @property
    def version(self) -> int: ...
    @property
    def updated_at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Match:
    """A past case found similar: its ticket, number, cause and score."""

    ticket_id: int
    number: str
    cause: str
    score: float


@dataclass(frozen=True, slots=True)
class _Doc:
    number: str
    cause: str
    stamp: tuple[int, datetime]  # (version, updated_at): a row seen again is skipped
    terms: array  # type: ignore[type-arg]  # token ids, with repeats


@dataclass(frozen=True, slots=True)
class _Base:
    """A ``bm25s`` index over the cases that existed when it was built."""

    retriever: bm25s.BM25
    ids: np.ndarray  # row → ticket id
    rows: dict[int, int]  # ticket id → row
    stamps: dict[int, tuple[int, datetime]]
    n_vocab: int  # token ids below this are known to the retriever
    df: np.ndarray  # documents per token id
    avgdl: float


def case_tokens(text: str) -> list[str]:
    """Lowercase tokens of ``text`` that may tell one fault from another."""
    found = []
    for token in tokens(normalize(text).lower()):
        if token in STOP_WORDS or not (token[0].isalnum() or token[-1].isalnum()):
            continue
        if token.isascii():
            found.append(_stem(token))
        else:
            found.append(token)
            if len(token) >= 3:  # a long word also matches its parts: 冷却塔 → 冷却
                found += [token[i : i + 2] for i in range(len(token) - 1)]
    return found


@functools.lru_cache(maxsize=8192)
def _query_tokens(text: str) -> tuple[str, ...]:
    """``case_tokens`` of a ticket's query (a ticket's card asks again on every change; the
    answers are forgotten whenever a case changes, the words need not be)."""
    return tuple(case_tokens(text))


def _stem(word: str) -> str:
    """English plurals and third persons folded ("jams" → "jam"), nothing more."""
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss") and word.isalpha():
        return word[:-1]
    return word


def cause_of(ticket: CaseSource) -> str | None:
    """What the case teaches: the written root cause, else the diagnosis's suspected cause."""
    if ticket.root_cause and ticket.root_cause.strip():
        return ticket.root_cause.strip()
    cause = (ticket.diagnosis or {}).get("suspected_cause")
    return str(cause).strip() or None if cause else None


def case_text(ticket: CaseSource) -> str:
    """The words a past case is found by."""
    diagnosis = ticket.diagnosis or {}
    parts = "、".join(str(p.get("name", "")) for p in diagnosis.get("parts_needed") or [])
    actions = diagnosis.get("actions_taken") or []
    bits = [ticket.title, ticket.description, ticket.alarm_code, ticket.root_cause,
            diagnosis.get("symptom"), diagnosis.get("suspected_cause"),
            "、".join(str(a) for a in actions) if isinstance(actions, list) else str(actions),
            parts]  # fmt: skip
    return "\n".join(str(b) for b in bits if b)


def query_text(ticket: CaseSource) -> str:
    """The words a ticket looks for its past cases with."""
    symptom = (ticket.diagnosis or {}).get("symptom")
    bits = [ticket.title, ticket.description, ticket.alarm_code, symptom]
    return "\n".join(str(b) for b in bits if b)


class SimilarCases:
    """The in-memory index of past cases (one per worker process)."""

    def __init__(self, *, top_k: int = 3, min_score: float = 0.0) -> None:
        self.top_k = top_k
        self.min_score = min_score
        self.ready = False
        self._vocab: dict[str, int] = {}
        self._lock = threading.Lock()  # token ids are handed out in threads too
        self._docs: dict[int, _Doc] = {}
        self._gone: dict[int, tuple[int, datetime]] = {}  # no longer a case, as of this stamp
        self._base: _Base | None = None
        self._pending: set[int] = set()  # cases the base does not have (or has older)
        self._postings: dict[int, dict[int, int]] = {}  # pending: token id → {ticket: tf}
        self._lengths: dict[int, int] = {}  # pending: ticket → tokens
        self._masked: set[int] = set()  # base rows changed or gone since it was built
        self._building: asyncio.Lock | None = None
        # Lookups as answered since the index last changed: a ticket's cards (the engineer's,
        # the team's, each language) are drawn together and ask the same question.
        self._answers: dict[tuple[int, str, int | None, tuple[int, ...]], list[Match]] = {}

    def __len__(self) -> int:
        return len(self._docs)

    # --- keeping it current

    def prepare(self, tickets: Iterable[CaseSource]) -> list[tuple[int, _Doc | None, Any]]:
        """Tokenise ``tickets`` (safe in a thread): for each, its id, its document (None: not a
        case) and its stamp. Hand the result to ``offer``."""
        prepared: list[tuple[int, _Doc | None, Any]] = []
        for ticket in tickets:
            stamp = (ticket.version, ticket.updated_at)
            cause = cause_of(ticket)
            if ticket.state not in CASE_STATES or ticket.merged_into is not None or not cause:
                prepared.append((ticket.id, None, stamp))
                continue
            terms = array("i", self._ids(case_tokens(case_text(ticket)), grow=True))
            doc = _Doc(ticket.number or f"#{ticket.id}", cause, stamp, terms)
            prepared.append((ticket.id, doc, stamp))
        return prepared

    def offer(self, prepared: Iterable[tuple[int, _Doc | None, Any]]) -> int:
        """Take prepared tickets into the index (older news than it has is ignored); returns
        how many changed it."""
        changed = 0
        for ticket_id, doc, stamp in prepared:
            current = self._docs.get(ticket_id)
            known = current.stamp if current is not None else self._gone.get(ticket_id)
            if known is not None and known >= stamp:
                continue
            if doc is None:
                if current is None:
                    continue
                del self._docs[ticket_id]
                self._gone[ticket_id] = stamp
            else:
                self._docs[ticket_id] = doc
                self._gone.pop(ticket_id, None)
            self._make_pending(ticket_id, current, doc)
            changed += 1
        if changed:
            self._answers.clear()
        return changed

    def _make_pending(self, ticket_id: int, old: _Doc | None, new: _Doc | None) -> None:
        """Search ``new`` outside the base (and no longer the base's copy)."""
        if self._base is None:
            return  # nothing is searched before the first build, which takes every case
        if old is not None and ticket_id in self._lengths:
            for term in set(old.terms):
                self._postings[term].pop(ticket_id, None)
            del self._lengths[ticket_id]
        if new is not None:
            for term, tf in Counter(new.terms).items():
                self._postings.setdefault(term, {})[ticket_id] = tf
            self._lengths[ticket_id] = len(new.terms)
        self._pending.add(ticket_id)
        row = self._base.rows.get(ticket_id) if self._base is not None else None
        if row is not None:
            self._masked.add(row)

    def observe(self, tickets: Iterable[CaseSource]) -> int:
        """What a committed unit of work left: cases added, changed or reopened."""
        wanted = [t for t in tickets if t.state in CASE_STATES or t.id in self._docs]
        fresh = [t for t in wanted if self._stamp(t.id) != (t.version, t.updated_at)]
        return self.offer(self.prepare(fresh)) if fresh else 0

    def stale(self) -> bool:
        """Whether enough changed since the base was built to build it again."""
        if self._base is None:
            return True
        return len(self._pending) > max(200, len(self._base.ids) // 50)

    async def compact(self, *, force: bool = False) -> None:
        """Build the base again, in a thread, from every case known now; then the index is
        ready. Cases that arrive meanwhile stay pending."""
        if self._building is None:
            self._building = asyncio.Lock()
        async with self._building:
            if not force and not self.stale():
                return
            snapshot = list(self._docs.items())
            base = await asyncio.to_thread(_build, snapshot, len(self._vocab))
            # Searched meanwhile as before; from now on only what changed during the build
            # is pending.
            self._base = base
            self._pending, self._postings, self._lengths, self._masked = set(), {}, {}, set()
            for ticket_id, doc in self._docs.items():
                if base.stamps.get(ticket_id) != doc.stamp:
                    self._make_pending(ticket_id, None, doc)
            for ticket_id in base.rows:
                if ticket_id not in self._docs:
                    self._make_pending(ticket_id, None, None)
            self._answers.clear()
            self.ready = True

    # --- looking up

    def similar(self, ticket: CaseSource, *, exclude: Iterable[int] = ()) -> list[Match]:
        """The ``top_k`` past cases most like ``ticket`` (never itself, nor ``exclude``, nor
        the ticket it was merged into); empty until the index is ready."""
        if not self.ready or self._base is None:
            return []
        key = (ticket.id, query_text(ticket), ticket.merged_into, tuple(sorted(exclude)))
        answer = self._answers.get(key)
        if answer is None:
            if len(self._answers) >= 8192:
                self._answers.clear()
            answer = self._answers[key] = self._lookup(self._base, ticket, key[3])
        return list(answer)

    def _lookup(self, base: _Base, ticket: CaseSource, exclude: tuple[int, ...]) -> list[Match]:
        query = sorted(set(self._ids(_query_tokens(query_text(ticket)), grow=False)))
        if not query:
            return []
        skip = {ticket.id, *exclude}
        if ticket.merged_into is not None:
            skip.add(ticket.merged_into)
        known = [t for t in query if t < base.n_vocab]
        scores = (
            base.retriever.get_scores_from_ids(known)
            if known
            else np.zeros(len(base.ids), dtype=np.float32)
        )
        masked = list(self._masked) + [r for i in skip if (r := base.rows.get(i)) is not None]
        if masked:  # changed or gone since the build, or left out
            scores[masked] = 0.0
        want = self.top_k + len(skip)
        found: list[tuple[float, int]] = []
        if len(scores):
            top = np.argpartition(-scores, min(want, len(scores) - 1))[: want + 1]
            found = [(float(scores[r]), int(base.ids[r])) for r in top]
        found += self._pending_scores(base, query, skip)
        found.sort(key=lambda pair: (-pair[0], pair[1]))
        matches = []
        for score, ticket_id in found:
            doc = self._docs.get(ticket_id)
            if score <= self.min_score or doc is None or ticket_id in skip:
                continue
            matches.append(Match(ticket_id, doc.number, doc.cause, score))
            if len(matches) == self.top_k:
                break
        return matches

    def _pending_scores(
        self, base: _Base, query: list[int], skip: set[int]
    ) -> list[tuple[float, int]]:
        """BM25 of the cases added since the base was built, with the base's statistics."""
        n = len(base.ids) + len(self._lengths)
        avgdl = max(base.avgdl, 1.0)
        scores: dict[int, float] = {}
        for term in query:
            posting = self._postings.get(term)
            if not posting:
                continue
            df = (int(base.df[term]) if term < base.n_vocab else 0) + len(posting)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            for ticket_id, tf in posting.items():
                if ticket_id in skip:
                    continue
                norm = K1 * (1 - B + B * self._lengths[ticket_id] / avgdl)
                scores[ticket_id] = scores.get(ticket_id, 0.0) + idf * tf / (tf + norm)
        return [(score, ticket_id) for ticket_id, score in scores.items()]

    def _ids(self, words: Sequence[str], *, grow: bool) -> list[int]:
        vocab = self._vocab
        if not grow:
            return [vocab[w] for w in words if w in vocab]
        with self._lock:
            return [vocab.setdefault(w, len(vocab)) for w in words]

    def _stamp(self, ticket_id: int) -> tuple[int, datetime] | None:
        doc = self._docs.get(ticket_id)
        return doc.stamp if doc is not None else self._gone.get(ticket_id)


def _build(snapshot: list[tuple[int, _Doc]], n_vocab: int) -> _Base:
    """A ``bm25s`` index over ``snapshot`` (token ids below ``n_vocab``)."""
    import bm25s  # (250 ms to import: only where an index is built)

    retriever = bm25s.BM25(k1=K1, b=B, method="lucene", backend="numpy", csc_backend="numpy")
    corpus = [doc.terms for _, doc in snapshot]  # (bm25s only iterates them: no copies)
    vocab = {i: i for i in range(n_vocab)}  # bm25s maps "tokens" to ids: ours are ids already
    df = np.zeros(1, dtype=np.int64)
    if snapshot and n_vocab:
        retriever.index((corpus, vocab), show_progress=False)
        df = np.diff(retriever.scores["indptr"])  # documents per token id
    ids = np.fromiter((i for i, _ in snapshot), dtype=np.int64, count=len(snapshot))
    lengths = sum(len(t) for t in corpus)
    return _Base(
        retriever=retriever,
        ids=ids,
        rows={int(i): r for r, i in enumerate(ids)},
        stamps={i: doc.stamp for i, doc in snapshot},
        n_vocab=n_vocab if snapshot else 0,
        df=df,
        avgdl=lengths / len(corpus) if corpus else 1.0,
    )
