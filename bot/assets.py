"""The asset registry in memory: which asset a report is about, and signed per-asset links.

``AssetIndex`` holds every asset (a few thousand rows at most: machines, not messages), loaded
when the hub starts and again when the table changed (the hub compares a cheap fingerprint —
count and newest ``updated_at`` — every ``REFRESH_SECONDS``, so an import made by ``gongdan
assets import`` in another process is seen within that time). Matching a report therefore costs
no statement at all, however many assets there are.

How a report finds its asset (``resolve``):

1. an explicit tag (``device_code``) or the machine's name equals an asset's code or one of its
   aliases, ignoring case, width, spaces and dashes (``im003`` is ``IM-003``);
2. the machine's name matches a name or alias *fuzzily*: both are normalised (full-width
   characters, Chinese numerals → digits, 号/#/No./spaces/dashes dropped) into their numbers
   and the rest; the numbers must be the same (3号 is never 13号 or 4号), the rest is compared
   with rapidfuzz (``ratio``, or 0.9 × ``partial_ratio`` when both have at least two
   characters: 水泵 ~ 冷却塔水泵). The best score must reach ``THRESHOLD`` and beat any other
   asset's best by ``MARGIN`` — an ambiguous name resolves to nothing rather than to a guess;
3. a registered code or alias written anywhere in the message (at least three letters or
   digits standing apart: ``AC-A 停机了``), for tags the reader did not take for one.

``AssetLinks`` signs an asset id into a short token for a QR code (``/r/<token>``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from rapidfuzz import fuzz

from storage.assets import AssetEntry

__all__ = ["MARGIN", "REFRESH_SECONDS", "THRESHOLD", "AssetIndex", "AssetLinks", "name_key"]

#: Lowest fuzzy score (0–100) that names an asset; chosen on the labelled names in
#: ``tests/test_assets_resolve.py``: the right asset scores ≥ 88 there, a wrong one ≤ 67
#: (numbers that differ score 0; two assets within ``MARGIN`` resolve to nothing).
THRESHOLD = 80.0
#: How far the best asset must lead the next one.
MARGIN = 5.0
#: Seconds between the hub's checks whether the assets table changed.
REFRESH_SECONDS = 30.0

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9}  # fmt: skip
_CN_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百]+")
_NOISE = re.compile(r"no\.?(?=\d)|[号#＃\s\-_·.,，、/()（）]")
_NUMBER = re.compile(r"\d+")
_TAG = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9][A-Za-z0-9_\-]{2,}(?![A-Za-z0-9])")


def _cn_to_int(text: str) -> str:
    """三 → 3, 十二 → 12, 二十 → 20, 一百零五 → 105 (other text as it is)."""
    if "百" not in text and "十" not in text:
        return "".join(str(_CN_DIGITS[c]) for c in text)
    total, digit = 0, 0
    for c in text:
        if c == "百":
            total += (digit or 1) * 100
            digit = 0
        elif c == "十":
            total += (digit or 1) * 10
            digit = 0
        else:
            digit = _CN_DIGITS[c]
    return str(total + digit)


def name_key(name: str) -> tuple[tuple[int, ...], str]:
    """A name's numbers (in order) and the rest, normalised for comparison."""
    text = unicodedata.normalize("NFKC", name).lower()
    text = _CN_NUMBER.sub(lambda m: _cn_to_int(m.group()), text)
    text = _NOISE.sub("", text)
    numbers = tuple(int(n) for n in _NUMBER.findall(text))
    return numbers, _NUMBER.sub("", text)


def _exact_key(text: str) -> str:
    """A code as compared: any case and width, spaces, dashes and underscores ignored."""
    return re.sub(r"[\s\-_]+", "", unicodedata.normalize("NFKC", text)).lower()


def _score(query: str, candidate: str) -> float:
    if not query or not candidate:
        return 0.0
    score = fuzz.ratio(query, candidate)
    if min(len(query), len(candidate)) >= 2:
        score = max(score, 0.9 * fuzz.partial_ratio(query, candidate))
    return float(score)


class AssetIndex:
    """Every active asset, by id, by exact code/alias, and by the numbers in its names."""

    def __init__(self, assets: Iterable[AssetEntry] = ()) -> None:
        self.fingerprint: tuple[int, str] | None = None
        self.load(assets)

    def load(
        self, assets: Iterable[AssetEntry], fingerprint: tuple[int, str] | None = None
    ) -> None:
        """Replace what the index holds (built aside, then swapped in at once)."""
        by_id: dict[int, AssetEntry] = {}
        exact: dict[str, int] = {}
        names: dict[tuple[int, ...], list[tuple[str, int]]] = defaultdict(list)
        for a in assets:
            if not a.active:
                continue
            by_id[a.id] = a
            exact.setdefault(_exact_key(a.code), a.id)
            for name in (a.name, *a.aliases):
                exact.setdefault(_exact_key(name), a.id)
                numbers, rest = name_key(name)
                names[numbers].append((rest, a.id))
        self.by_id, self._exact, self._names = by_id, exact, dict(names)
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, asset_id: int | None) -> AssetEntry | None:
        return self.by_id.get(asset_id) if asset_id is not None else None

    def by_code(self, code: str) -> AssetEntry | None:
        found = self._exact.get(_exact_key(code))
        return self.by_id.get(found) if found is not None else None

    def match(self, name: str) -> tuple[AssetEntry | None, float]:
        """The asset a spoken or written name means (fuzzy), with its score; None when no
        asset reaches ``THRESHOLD`` or two are too close to tell."""
        numbers, rest = name_key(name)
        best: dict[int, float] = {}
        for candidate, asset_id in self._names.get(numbers, ()):
            score = _score(rest, candidate)
            if score > best.get(asset_id, -1.0):
                best[asset_id] = score
        ranked = sorted(best.items(), key=lambda kv: kv[1], reverse=True)
        if not ranked or ranked[0][1] < THRESHOLD:
            return None, ranked[0][1] if ranked else 0.0
        if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < MARGIN:
            return None, ranked[0][1]
        return self.by_id[ranked[0][0]], ranked[0][1]

    def resolve(
        self, code: str | None, name: str | None, text: str | None = None
    ) -> AssetEntry | None:
        """The asset a report names: by code or alias exactly, else by name fuzzily, else a
        registered code written anywhere in ``text`` (``AC-A 停机了``: tags the reader does
        not take for one)."""
        for given in (code, name):
            if given:
                found = self.by_code(given)
                if found is not None:
                    return found
        found = self.match(name)[0] if name else None
        if found is None and text:
            for token in _TAG.findall(unicodedata.normalize("NFKC", text)):
                found = self.by_code(token)
                if found is not None:
                    break
        return found


def out_of_warranty(asset: AssetEntry, today: date) -> bool:
    return asset.warranty_end is not None and asset.warranty_end < today


class AssetLinks:
    """Short signed tokens naming an asset: ``base64url(varint id | HMAC[:8])``."""

    MAC_LEN = 8

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"gongdan/asset-link/v1", hashlib.sha256).digest()

    def sign(self, asset_id: int) -> str:
        body = asset_id.to_bytes(max(1, (asset_id.bit_length() + 7) // 8), "big")
        mac = hmac.digest(self._key, body, "sha256")[: self.MAC_LEN]
        return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()

    def verify(self, token: object) -> int | None:
        """The asset id a token names, or None when it is malformed or forged."""
        if not isinstance(token, str) or not 4 <= len(token) <= 40 or not token.isascii():
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            return None
        body, mac = raw[: -self.MAC_LEN], raw[-self.MAC_LEN :]
        if not body or len(body) > 8:
            return None
        good = hmac.digest(self._key, body, "sha256")[: self.MAC_LEN]
        return int.from_bytes(body, "big") if hmac.compare_digest(mac, good) else None

    def url(self, public_url: str, asset_id: int) -> str:
        return f"{public_url.rstrip('/')}/r/{self.sign(asset_id)}"
