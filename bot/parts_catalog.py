"""The parts catalog in memory, and which catalog part a spoken or written name means.

``match("轴承 6205", catalog)`` → the catalog's "深沟球轴承 6205" (``PartMatch`` with a
confidence from 0 to 1), or None. In order:

1. **Exactly**: the name equals a part's code, name or alias, ignoring case, width (６２０５),
   spaces, dashes, dots and × for x (``brg 6205`` is ``BRG-6205``) — or a part's code is
   written in it as a word of its own (``轴承 BRG-6205``). Confidence 1.
2. **By model and name**: both are split into their model numbers (``6205``, ``M8x20``,
   ``6205-2RS``, ``LC1D25``: a run of letters and digits with a digit in it) and the rest. The
   model numbers must be the same — ``M8x20`` is never ``M8x25``, and a name without one never
   matches a part named with one (``轴承`` alone could be any bearing). The rest then scores
   (0–100): equal 100; one ending the other 92 (a Chinese part name ends with what it is:
   深沟球轴承 is a 轴承, 电机碳刷 is no 电机); a model alone against a part named with it 90;
   else the better of rapidfuzz's ``ratio`` and, for names as long give or take a character,
   0.92 × the ratio of their pinyin (what speech recognition mishears: 走成 for 轴承). The
   best part must reach ``THRESHOLD`` and lead any other part by ``MARGIN``: a name two parts
   fit equally well matches neither.

A match costs no statement; it compares the name with every name and alias that has the same
model numbers (some 30 ms for 6,000 names without one; far fewer share a model number).

Pure: no I/O, no clock. ``load_catalog`` is the one read (a voice reader loads the catalog for
its session with it); the hub keeps one ``PartsCatalog`` in ``Env.parts``, reloaded when the
table changed (``bot.hub``, like the asset registry).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import parts as part_rows
from storage.parts import PartEntry

__all__ = [
    "MARGIN",
    "THRESHOLD",
    "PartMatch",
    "PartsCatalog",
    "load_catalog",
    "match",
    "with_codes",
]

#: Lowest score (0–100) that names a part; 轴承 ~ 轴承座 (a housing, not a bearing) scores 80.
THRESHOLD = 85.0
#: How far the best part must lead the next one.
MARGIN = 5.0

_TIMES = re.compile(r"(?<=[0-9a-z])\s*[×*✕✖]\s*(?=[0-9a-z])")
_MODEL = re.compile(r"[a-z0-9]*\d[a-z0-9]*(?:[x\-/.][a-z0-9]+)*")
_NOISE = re.compile(r"[\s\-_·.,，、/\\()（）\[\]【】#:：'\"“”]+")
_WORD = re.compile(r"(?<![a-z0-9])[a-z0-9][a-z0-9_\-./]{2,}(?![a-z0-9])")
_HAN = re.compile(r"[\u3400-\u9fff]")


@dataclass(frozen=True, slots=True)
class PartMatch:
    """A catalog part a name means, how sure (0–1), and by what (code, name, alias, fuzzy)."""

    entry: PartEntry
    confidence: float
    how: str


def _plain(text: str) -> str:
    return _TIMES.sub("x", unicodedata.normalize("NFKC", text).lower())


def exact_key(text: str) -> str:
    """A name or code as compared exactly: any case or width, no spaces or punctuation."""
    return _NOISE.sub("", _plain(text))


def name_key(text: str) -> tuple[frozenset[str], str]:
    """A name's model numbers (without their dashes, slashes and dots) and the rest."""
    plain = _plain(text)
    models = frozenset(re.sub(r"[\-/.]", "", m) for m in _MODEL.findall(plain))
    return models, _NOISE.sub("", _MODEL.sub(" ", plain))


@functools.lru_cache(maxsize=16384)
def _pinyin(text: str) -> str:
    """The reading of a name's Chinese characters, without tones ('' when it has none)."""
    if not _HAN.search(text):
        return ""
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(text))


def _score(query: str, candidate: str) -> float:
    if query == candidate:
        return 100.0
    if not query or not candidate:
        return 90.0  # the model alone: the model numbers are equal already
    if min(len(query), len(candidate)) >= 2 and (
        query.endswith(candidate) or candidate.endswith(query)
    ):
        return 92.0
    score = fuzz.ratio(query, candidate)
    if abs(len(query) - len(candidate)) <= 1:  # a misheard word has (about) as many syllables
        heard, written = _pinyin(query), _pinyin(candidate)
        if heard and written:
            score = max(score, 0.92 * fuzz.ratio(heard, written))
    return float(score)


class PartsCatalog:
    """Every catalog part: by code, by exact name or alias, and by model numbers for scoring."""

    def __init__(self, entries: Iterable[PartEntry] = ()) -> None:
        self.fingerprint: tuple[int, str] | None = None
        self.load(entries)

    def load(
        self, entries: Iterable[PartEntry], fingerprint: tuple[int, str] | None = None
    ) -> None:
        """Replace what the catalog holds (built aside, then swapped in at once)."""
        by_code: dict[str, PartEntry] = {}
        exact: dict[str, PartEntry | None] = {}  # None: two parts share the name
        names: dict[frozenset[str], list[tuple[str, str, PartEntry]]] = defaultdict(list)
        for e in entries:
            by_code[exact_key(e.code)] = e
            for how, name in (("name", e.name), *(("alias", a) for a in e.aliases)):
                key = exact_key(name)
                if key:
                    exact[key] = e if exact.get(key, e) is e else None
                models, rest = name_key(name)
                names[models].append((how, rest, e))
        self._by_code, self._exact, self._names = by_code, exact, dict(names)
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self._by_code)

    @property
    def entries(self) -> list[PartEntry]:
        return list(self._by_code.values())

    def by_code(self, code: str) -> PartEntry | None:
        return self._by_code.get(exact_key(code))

    def exact(self, name: str) -> PartMatch | None:
        key = exact_key(name)
        found = self._by_code.get(key)
        if found is not None:
            return PartMatch(found, 1.0, "code")
        named = self._exact.get(key)
        if named is not None:
            how = "name" if exact_key(named.name) == key else "alias"
            return PartMatch(named, 1.0, how)
        for word in _WORD.findall(_plain(name)):
            found = self._by_code.get(exact_key(word))
            if found is not None:
                return PartMatch(found, 1.0, "code")
        return None

    def scored(self, name: str) -> list[PartMatch]:
        """Every part with the same model numbers, best score first (one per part; ``how``
        is "fuzzy", or the name or alias that scored 100 — the same words in another order)."""
        models, rest = name_key(name)
        best: dict[str, PartMatch] = {}
        for how, candidate, entry in self._names.get(models, ()):
            if not rest and not candidate and not models:
                continue
            score = _score(rest, candidate) / 100
            if entry.code not in best or score > best[entry.code].confidence:
                best[entry.code] = PartMatch(entry, round(score, 3), how if score == 1 else "fuzzy")
        return sorted(best.values(), key=lambda m: m.confidence, reverse=True)


def match(name: str, catalog: PartsCatalog) -> PartMatch | None:
    """The catalog part a spoken or written part name means, or None (see the module)."""
    if not name.strip() or not len(catalog):
        return None
    found = catalog.exact(name)
    if found is not None:
        return found
    ranked = catalog.scored(name)
    if not ranked or ranked[0].confidence * 100 < THRESHOLD:
        return None
    if len(ranked) > 1 and (ranked[0].confidence - ranked[1].confidence) * 100 < MARGIN:
        return None
    return ranked[0]


def with_codes(diagnosis: dict[str, Any], catalog: PartsCatalog) -> dict[str, Any]:
    """A voice diagnosis whose needed parts carry the catalog ``code`` each matched (and the
    match's ``code_confidence``); parts that match nothing, or name a code already, as read."""
    parts = diagnosis.get("parts_needed") or []
    if not len(catalog) or not parts:
        return diagnosis
    coded = []
    for part in parts:
        found = None if part.get("code") else match(str(part.get("name", "")), catalog)
        if found is not None:
            part = {**part, "code": found.entry.code, "code_confidence": found.confidence}
        coded.append(part)
    return {**diagnosis, "parts_needed": coded}


async def load_catalog(conn: AsyncConnection) -> PartsCatalog:
    """The whole catalog, read now (two statements)."""
    return PartsCatalog(await part_rows.entries(conn))
