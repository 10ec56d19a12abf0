"""Reading what an engineer types about spare parts: which parts, how many, and when they come.

``read_parts("轴承 6205 ×2、密封圈 x3 和两个接触器")`` → three ``PartLine``s. A part is written as
"name ×qty" (×, x, X, *), "name qty unit" (轴承2个, 密封圈 三套), "qty unit name" (2个轴承,
两个接触器) or "qty name" in English (2 bearings); several are separated by 、，,;； or a new
line, or joined by 和/跟/以及/还有/and. A name alone counts one. An "x" right after a digit is
part of a name (M8x20), and a bare number after a name is a model (轴承 6205), never a count.

``read_date("12月8日", today)`` → a day: 今天/明天/后天, N天内/N天后, 一周内, 周五/星期五/下周一,
12月8日, 12-08, 12/8, 2026-12-08, 8号, and English (today, tomorrow, in 3 days, Friday, Dec 8,
8 Dec). A day already past this year means next year's.

Both are pure: no clock of their own, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from bot.nlp.text import cn_number

__all__ = ["MAX_QTY", "PartLine", "read_date", "read_parts", "split_answer"]

MAX_QTY = 9999
_NAME_MAX = 60

_NUM = r"(?:\d{1,4}|[零〇一二两三四五六七八九十百]{1,4})"
_UNITS = (
    r"(?:个|只|套|件|台|根|条|块|片|盒|包|米|卷|组|把|颗|支|对|副|瓶|桶|箱|张|节"
    r"|pcs|pc|sets?|units?)"
)
_SEPARATORS = re.compile(r"[、，,;；\n]+|\s*(?:和|跟|以及|还有|及)\s*|\s+(?:and|&|\+)\s+", re.I)
# Parts written one after another without a separator ("轴承 ×2 密封圈 ×3", "轴承 两个 密封圈
# 三个"): a count, after a name, followed by a space ends a part.
_RUN_ON = re.compile(
    rf"((?:(?:[×*✕✖]|(?<=\s)[xX])\s*{_NUM}\s*{_UNITS}?|(?<=\S)\s*{_NUM}\s*{_UNITS}))\s+"
    r"(?=\S)(?!(?:and|&|\+|和|跟|以及|还有|及)(?:\s|$))",
    re.I,
)
_LEAD = re.compile(
    r"^(?:我们|还)?(?:需要|要|需|换|更换|准备|订|订购|采购|申请|备件|配件|parts?|need|needs|"
    r"replace|order)\s*[:：]?\s*",
    re.I,
)
# "轴承 6205 ×2": × * ✕ always multiply; an x only after a space or a non-alphanumeric
# (轴承x2, bearing x2), never right after a digit or letter (M8x20 is a name).
_NAME_TIMES_QTY = re.compile(
    rf"^(?P<name>.+?)(?:\s*[×*✕✖]|\s+[xX]|(?<=[^\dA-Za-z\s])[xX])\s*(?P<qty>{_NUM})\s*{_UNITS}?$",
    re.I,
)
_NAME_QTY_UNIT = re.compile(rf"^(?P<name>.+?)\s*(?P<qty>{_NUM})\s*{_UNITS}$", re.I)
_QTY_UNIT_NAME = re.compile(rf"^(?P<qty>{_NUM})\s*{_UNITS}\s*(?P<name>.+)$", re.I)
_QTY_NAME_EN = re.compile(r"^(?P<qty>\d{1,4})\s+(?P<name>[A-Za-z].*)$")
_QTY_TIMES_NAME = re.compile(r"^(?P<qty>\d{1,4})\s*(?:[×*]\s*|[xX]\s+)(?P<name>.+)$")


@dataclass(frozen=True, slots=True)
class PartLine:
    name: str
    qty: int

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "qty": self.qty}


def _qty(text: str) -> int | None:
    n = cn_number(text)
    return n if n is not None and 1 <= n <= MAX_QTY else None


def _clean(name: str) -> str:
    name = re.sub(r"\s+", " ", name).strip(" 　:：.。!！?？-—")
    return name[:_NAME_MAX]


def _one(segment: str) -> PartLine | None:
    text, before = segment.strip(" 　。.!！"), ""
    while text != before:  # 还需要换…: every leading verb goes
        before, text = text, _LEAD.sub("", text).strip()
    if not text:
        return None
    for pattern in (_NAME_TIMES_QTY, _NAME_QTY_UNIT, _QTY_UNIT_NAME, _QTY_TIMES_NAME, _QTY_NAME_EN):
        m = pattern.match(text)
        if m is None:
            continue
        name, qty = _clean(m["name"]), _qty(m["qty"])
        if name and qty is not None and not name.isdigit():
            return PartLine(name, qty)
    name = _clean(text)
    return PartLine(name, 1) if name and not name.isdigit() else None


def split_answer(text: str) -> tuple[list[str], list[str]]:
    """The segments of an answer: those naming parts, and those naming a day (an answer may
    carry both: "轴承 6205 ×2，明天到")."""
    parts: list[str] = []
    days: list[str] = []
    for segment in _SEPARATORS.split(_RUN_ON.sub(r"\1、", text)):
        segment = segment.strip()
        if not segment:
            continue
        (days if _is_day(segment) else parts).append(segment)
    return parts, days


def read_parts(text: str) -> list[PartLine]:
    """The parts an answer names, in order; the same name twice counts once, with the sum."""
    found: dict[str, int] = {}
    names: dict[str, str] = {}
    segments, _ = split_answer(text)
    for segment in segments:
        line = _one(segment)
        if line is None:
            continue
        key = line.name.casefold()
        names.setdefault(key, line.name)
        found[key] = min(MAX_QTY, found.get(key, 0) + line.qty)
    return [PartLine(names[k], q) for k, q in found.items()]


# ---------------------------------------------------------------------------- days

_WEEKDAYS_ZH = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5}
_WEEKDAYS_EN = {
    "mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6,
}  # fmt: skip
_MONTHS_EN = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
_RELATIVE = {
    "今天": 0, "今日": 0, "today": 0, "明天": 1, "明日": 1, "tomorrow": 1, "后天": 2,
    "大后天": 3,
}  # fmt: skip
_DAY_WORDS = re.compile(
    r"今天|今日|明天|明日|后天|天[内后]|周[内后]|星期|礼拜|周[一二三四五六日天末]|\d{1,2}\s*月|"
    r"\d{1,2}\s*[号日]|\b\d{1,2}[-/]\d{1,2}\b|\d{4}[-/]\d{1,2}[-/]\d{1,2}|到货|"
    r"\btoday\b|\btomorrow\b|\bin \d+ (?:day|week)s?\b|\b(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\b|"
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2}\b|"
    r"\b\d{1,2} (?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)",
    re.I,
)


def _is_day(segment: str) -> bool:
    return bool(_DAY_WORDS.search(segment))


def _on_or_after(today: date, month: int, day: int) -> date | None:
    for year in (today.year, today.year + 1):
        try:
            d = date(year, month, day)
        except ValueError:
            return None
        if d >= today:
            return d
    return None


def _weekday(today: date, weekday: int, *, next_week: bool) -> date:
    if next_week:
        monday = today - timedelta(days=today.weekday()) + timedelta(days=7)
        return monday + timedelta(days=weekday)
    return today + timedelta(days=(weekday - today.weekday()) % 7)


def read_date(text: str, today: date) -> date | None:
    """The day ``text`` names, counted from ``today`` (local), or None."""
    t = text.strip().lower()
    for word in sorted(_RELATIVE, key=len, reverse=True):  # 大后天 before 后天
        if word in t:
            return today + timedelta(days=_RELATIVE[word])
    m = re.search(rf"(?P<n>{_NUM})\s*(?P<u>天|周|个?星期|个?礼拜)[内后以之]?", t)
    if m and (n := cn_number(m["n"])) is not None:
        return today + timedelta(days=n * (1 if m["u"] == "天" else 7))
    m = re.search(r"\bin (?P<n>\d{1,3}) (?P<u>day|week)s?\b", t)
    if m:
        return today + timedelta(days=int(m["n"]) * (1 if m["u"] == "day" else 7))
    m = re.search(r"(?P<y>\d{4})[-/.年](?P<m>\d{1,2})[-/.月](?P<d>\d{1,2})", t)
    if m:
        try:
            return date(int(m["y"]), int(m["m"]), int(m["d"]))
        except ValueError:
            return None
    m = re.search(r"(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*[日号]?", t) or re.search(
        r"(?<![\d.])(?P<m>\d{1,2})[-/](?P<d>\d{1,2})(?![\d-])", t
    )
    if m:
        return _on_or_after(today, int(m["m"]), int(m["d"]))
    m = re.search(r"(?P<next>下个?)?(?:周|星期|礼拜)(?P<w>[一二三四五六日天末])", t)
    if m:
        return _weekday(today, _WEEKDAYS_ZH[m["w"]], next_week=bool(m["next"]))
    m = re.search(r"(?P<next>next )?\b(?P<w>mon|tue|wed|thu|fri|sat|sun)[a-z]*\b", t)
    if m:
        return _weekday(today, _WEEKDAYS_EN[m["w"]], next_week=bool(m["next"]))
    m = re.search(
        r"\b(?P<mon>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? (?P<d>\d{1,2})\b", t
    ) or re.search(r"\b(?P<d>\d{1,2}) (?P<mon>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)", t)
    if m:
        return _on_or_after(today, _MONTHS_EN[m["mon"]], int(m["d"]))
    m = re.search(r"(?<![\d月])(?P<d>\d{1,2})\s*[号日]", t)
    if m:
        day = int(m["d"])
        month = today if day >= today.day else (today.replace(day=1) + timedelta(days=32))
        try:
            return date(month.year, month.month, day)
        except ValueError:
            return None
    return None
