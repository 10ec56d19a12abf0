"""The segmented note behind ``bot.nlp.diagnosis``, and what is counted or measured in it.

``Note`` normalises nothing itself: it takes normalised text, splits it into clauses, tokenizes it
with jieba (domain dictionary) and files every vocabulary hit (cues, components, symptom and
fault words, quantity words) under its clause, negated or not. ``parts_needed`` and
``measurements`` read the parts and readings; the rules are in ``bot.nlp.diagnosis``.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

from bot.nlp import _diagnosis_vocab as v
from bot.nlp.text import cn_decimal, cn_number, detect_language, token_spans

__all__ = [
    "Clause", "Hit",  "Measurement", "Note", "Part", "Reading", "done_clause", "measurements",
    "parts_needed",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    qty: int


@dataclass(frozen=True, slots=True)
class Measurement:
    quantity: str
    value: float
    unit: str
    high: float | None = None
    """The high end of a range (七十到八十度: value 70, high 80); None for one number."""
    approx: bool = False
    """Said as approximate (左右, 大概, 大约)."""


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str
    start: int
    end: int
    negated: bool


@dataclass(slots=True)
class Clause:
    index: int
    start: int
    end: int
    text: str
    cues: list[Hit] = field(default_factory=list)
    parts: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, canonical)
    faults: list[Hit] = field(default_factory=list)  # symptom and fault words
    cause: str | None = None
    action: str | None = None
    plan: bool = False

    def live(self, kind: str) -> list[Hit]:
        return [h for h in self.cues if h.kind == kind and not h.negated]


Reading = tuple[int, int, Measurement]  # a measurement with its span in the note


_NEEDS = ("need", "order", "replace")


class Note:
    """A normalised note: its jieba tokens, clauses and the vocabulary hits in each clause."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.device = ""  # the equipment's type word, lower-case
        self.equipment = ""  # the equipment as read (3号空压机)
        self.lang = detect_language(text)
        self.spans = token_spans(text)
        self.ends = [end for _, _, end in self.spans]
        self.clauses: list[Clause] = []
        start = 0
        for m in [*v.SPLIT.finditer(text), None]:
            end = m.start() if m else len(text)
            if text[start:end].strip():
                self.clauses.append(Clause(len(self.clauses), start, end, text[start:end]))
            start = m.end() if m else end
        self._starts = [cl.start for cl in self.clauses]
        self.bases = [
            (m.start(), m.end(), *v.BASES[m.group().lower()]) for m in all_matches(v.BASE_RE, text)
        ]
        for m in v.CUE_RE.finditer(text):
            if self._token(m) and (cl := self.clause_at(m.start())):
                kind = v.CUES[m.group().lower()]
                cl.cues.append(Hit(kind, m.start(), m.end(), self.negated(m.start(), cl.start)))
        for m in v.PART_RE.finditer(text):
            if self._token(m) and (cl := self.clause_at(m.start())):
                cl.parts.append((m.start(), m.end(), v.PARTS[m.group().lower()]))
        for m in v.SYMPTOM_RE.finditer(text):
            if self._token(m) and (cl := self.clause_at(m.start())):
                kind = "fault" if m.group().lower() in v.WORDS["fault"] else "symptom"
                cl.faults.append(Hit(kind, m.start(), m.end(), self.negated(m.start(), cl.start)))
        for cl in self.clauses:  # 不需要/no need voids every need, order and replacement after it
            stop = min((h.start for h in cl.cues if h.kind == "negneed"), default=cl.end)
            voided = {id(h) for h in cl.cues if h.kind in _NEEDS and h.start > stop}
            cl.cues = [Hit(h.kind, h.start, h.end, True) if id(h) in voided else h for h in cl.cues]

    def clause_at(self, pos: int) -> Clause | None:
        i = bisect_right(self._starts, pos) - 1
        return self.clauses[i] if i >= 0 and pos < self.clauses[i].end else None

    def _token(self, m: re.Match[str]) -> bool:
        """A one-character Chinese word must be a jieba token of its own (门 not in 部门)."""
        word = m.group()
        if len(word) > 1 or word.isascii():
            return True
        i = bisect_right(self.ends, m.start())
        return i < len(self.spans) and self.spans[i][0] == word

    def negated(self, start: int, clause_start: int) -> bool:
        i = bisect_right(self.ends, start)
        glued = self.text[self.spans[i][1] : start] if i < len(self.spans) else ""
        if glued and glued.lower() in v.WORDS["negator"]:
            return True  # glued into the token, e.g. 没漏
        for dist, j in enumerate(range(i - 1, max(-1, i - 4), -1), 1):
            tok, tok_start, _ = self.spans[j]
            tok = tok.lower()
            if tok_start < clause_start or tok in v.WORDS["breaker"]:
                return False
            if tok in v.WORDS["negator"] or tok.endswith("n't"):
                if tok == "不" and dist > 1:
                    continue  # 不知道为什么停机: 不 negates only what follows it
                return True
        return False

    def join(self, head: str, tail: str) -> str:
        return f"{head} {tail}" if head and self.lang == "en" else head + tail

    def position(self, lo: int, hi: int) -> str:
        """The position word (排气, 电机, discharge) ending ``text[lo:hi]``, not the equipment."""
        m = v.POSITION_END.search(self.text, lo, hi)
        word = v.POSITIONS[m.group().strip().lower()] if m else ""
        return "" if word.lower() == self.device else word


def all_matches(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    """Matches at every start, where a later-ending one replaces one it overlaps: 出水温度 is
    出水 + 温度, not 出 + 水温 + 度."""
    kept: list[re.Match[str]] = []
    for i in range(len(text)):
        m = pattern.match(text, i)
        if m is None or (kept and m.end() <= kept[-1].end()):
            continue
        if kept and m.start() < kept[-1].end():
            kept.pop()
        kept.append(m)
    return kept


def done_clause(cl: Clause) -> bool:
    """已经换了… but not 已经安排明天换… (a plan)."""
    text = cl.text.strip()
    m = v.DONE_PREFIX.match(text)
    return m is not None and not v.PLAN_START.match(text[m.end() :].strip())


def parts_needed(note: Note) -> tuple[tuple[Part, ...], bool]:
    """The parts needed, and whether one is being fitted right now (正在更换皮带)."""
    needed: dict[str, int] = {}
    fitting = False
    iffy = _conditional(note)
    listing = False  # the clause before named needed parts: a bare count goes on with the list
    for cl in note.clauses:
        if cl.start and note.text[cl.start - 1] in "。！？!?":
            listing = False
        if (cl.live("third") and not supplied(note, cl)) or cl.index in iffy:
            listing = False
            continue  # 驱动板要寄回厂家: sent out for repair, not ordered; 如果…就换: only if
        marks = _need_marks(note, cl)
        if not marks and listing and note.lang != "en" and v.CONTINUES.match(cl.text):
            marks = [(cl.start, True)]  # 准备一个油分芯，一个空气滤芯；…，还有一个门锁
        if not any(need for _, need in marks):
            listing = False
            continue
        found = _candidates(note, cl)
        listing = False
        for start, end, name, qty in found:
            before = [need for pos, need in marks if pos < start]
            after = [need for pos, need in marks if pos >= end] if _topic(note, cl, start) else []
            if before[-1] if before else after[0] if after else False:
                if (model := v.MODEL_AFTER.search(note.text, end, _next_end(note, cl))) and not (
                    name[:1].isascii() and name[:1].isalnum()
                ):
                    name = note.join(model.group("model"), name)  # 两个轴承，型号6310
                needed.setdefault(name, qty)
                listing = True
                fitting = fitting or bool(cl.live("repairing"))
        if note.lang != "en":
            for m in v.ELIDED_ZH.finditer(note.text, cl.start, cl.end):
                before = [need for pos, need in marks if pos < m.start()]
                taken = any(s <= m.start() < e for s, e, _, _ in found)
                if before and before[-1] and not taken and (last := _last_part(note, cl, needed)):
                    needed[last] = _count(m.group("n"))  # 跟供应商订两个: the last part named
                    listing = True
    return tuple(Part(name, qty) for name, qty in needed.items()), fitting


def supplied(note: Note, cl: Clause) -> bool:
    """A vendor named in the clause supplies a part (厂家订, 让厂家带一套…过来, 厂家说下周到货),
    rather than doing the work."""
    return bool(
        cl.live("order") or cl.live("waiting") or any(_brings(note, cl, h) for h in cl.cues)
    )


def _next_end(note: Note, cl: Clause) -> int:
    """The end of the clause after ``cl`` (型号 may follow in it), else of ``cl``."""
    return note.clauses[cl.index + 1].end if cl.index + 1 < len(note.clauses) else cl.end


def _topic(note: Note, cl: Clause, start: int) -> bool:
    """Whether a part opens its clause (油封需要更换, 电机轴承要换), so a need after it is about
    it; not in 下午停泵更换."""
    head = note.text[cl.start : start].strip()
    return not head or ((m := v.POSITION_END.search(head)) is not None and m.start() == 0)


def _need_marks(note: Note, cl: Clause) -> list[tuple[int, bool]]:
    """Where a clause says a part is needed (True) or not (False): 需要 订 need order and a
    replacement still to do (明天换) say yes; 不需要, and work already done (换了, 已换) say no."""
    done = done_clause(cl)
    marks = [(cl.start, False)] if done else []
    for h in cl.cues:
        if h.kind in ("need", "order", "fetch") or _brings(note, cl, h):
            marks.append((h.start, not h.negated))
        elif h.kind == "negneed" or (h.kind == "done" and not h.negated):
            marks.append((h.start, False))
        elif h.kind in ("verb", "replace"):
            if v.COMPLETE.match(note.text, h.end) or note.text.startswith("后", h.end):
                marks.append((h.start, False))
            elif h.kind == "replace" and not done and not h.negated:
                marks.append((h.start, True))
    return sorted(marks)


def _brings(note: Note, cl: Clause, h: Hit) -> bool:
    """叫供应商送一个…过来, 让厂家带两个来: a ``bring`` cue with 来 or 到 after it (送去维修 is
    sent out, not brought)."""
    return h.kind == "bring" and any(c in note.text[h.start : cl.end] for c in "来到")


def _conditional(note: Note) -> set[int]:
    """Clauses under 如果/要是/到时候… up to the sentence's end: what they need is only if."""
    out: set[int] = set()
    on = False
    for cl in note.clauses:
        if cl.start and note.text[cl.start - 1] in "。！？!?;；":
            on = False
        on = on or bool(cl.live("conditional"))
        if on:
            out.add(cl.index)
    return out


def _last_part(note: Note, cl: Clause, needed: dict[str, int]) -> str | None:
    """The part named last before this clause's end (for 订两个 with the noun left out)."""
    best: tuple[int, str] | None = None
    for other in note.clauses[: cl.index + 1]:
        for start, _, canonical in other.parts:
            if best is None or start > best[0]:
                best = (start, canonical)
    named = best[1] if best else None
    for name in needed:  # a counted thing the vocabulary does not know (导电嘴)
        if named is None or name.endswith(named):
            named = name
    return named


def _candidates(note: Note, cl: Clause) -> list[tuple[int, int, str, int]]:
    """(start, end, name, qty) of each counted thing (两个6206轴承, a new peel plate) and each
    other known component in the clause."""
    out: list[tuple[int, int, str, int]] = []
    pattern = v.NP_EN if note.lang == "en" else v.NP_ZH
    for m in pattern.finditer(note.text, cl.start, cl.end):
        head, _, name = m.group("name").strip().rpartition("的")  # 六百三十安的断路器
        if re.fullmatch(r"[A-Za-z]*\d[A-Za-z0-9-]*", head.strip()):
            name = head.strip() + name  # M8x20的螺栓 → M8x20螺栓
        name = name.strip()
        first = name.split()[0].lower() if name else ""
        if not first or len(name) > 24 or any(first.startswith(w) for w in v.NP_STOP):
            continue  # 两个人, 3 days
        if len(name) == 1 and not name.isascii() and name.lower() not in v.PARTS:
            continue  # 五米长: a length, not a part
        qty = _count(m.group("n")) * (2 if m.groupdict().get("cls") == "对" else 1)  # 一对闸瓦
        out.append((m.start("name"), m.end("name"), _part_name(name, note), qty))
    for start, end, canonical in cl.parts:
        if not any(s <= start and end <= e for s, e, _, _ in out):
            out.append((start, end, *_part(note, cl, start, end, canonical)))
    return out


def _part_name(name: str, note: Note) -> str:
    """The canonical name of a counted thing: 马达 → 电机, 6205 bearings → 6205 bearing; a known
    part followed by words that name no part (热电偶这边先拆外罩: a transcript without commas)
    is that part."""
    if note.lang != "en":
        if name.lower() not in v.PARTS and (m := v.PART_RE.match(name)):
            rest = name[m.end() :]
            if len(rest) >= 2 and not v.PART_RE.search(rest):
                name = m.group()
        return v.PARTS.get(name.lower(), name)
    words = name.lower().split()
    for k in range(len(words)):
        if (known := v.PARTS.get(" ".join(words[k:]))) is not None:
            return " ".join([*words[:k], known])
    last = words[-1]
    if last.endswith("s") and not last.endswith("ss"):
        words[-1] = last[:-3] + "y" if last.endswith("ies") else last[:-1]
    return " ".join(words)


def _part(note: Note, cl: Clause, start: int, end: int, canonical: str) -> tuple[str, int]:
    head = note.text[cl.start : start]
    if model := v.MODEL.search(head):
        head = head[: model.start()]
        canonical = note.join(model.group("model"), canonical)
    if m := v.QTY_ZH.search(head) or v.QTY_EN.search(head):
        return canonical, _count(m.group("n"))
    if m := v.QTY_AFTER.match(note.text, end, cl.end):
        return canonical, _count(m.group("a") or m.group("b"))
    return canonical, 1


def _count(word: str) -> int:
    return v.EN_COUNTS.get(word.lower()) or cn_number(word) or 1


def measurements(note: Note) -> list[Reading]:
    """The readings in a note with their spans, in order (see ``bot.nlp.diagnosis``)."""
    found: list[Reading] = []
    matches: list[tuple[re.Match[str], str]] = [
        *((m, m.group("unit") or "") for m in v.MEASURE_RE.finditer(note.text)),
        *((m, m.group("what") + "每" + m.group("per")) for m in v.PER_TIME_RE.finditer(note.text)),
    ]
    for m, form in sorted(matches, key=lambda mf: mf[0].start()):
        cl = note.clause_at(m.start())
        if cl is None or any(s <= m.start() < e for s, e, _ in found):
            continue
        low = None
        if m.group("pct") is not None if "pct" in m.re.groupindex else False:
            unit, kind, scale, named = "%", "percent", 1.0, False
            value = cn_decimal(m.group("pct"))
        else:
            form = form if form in v.UNITS else form.replace("钟", "")
            if form not in v.UNITS:
                continue  # 每秒三次: no unit of ours
            unit, kind, scale, named = v.UNITS[form]
            value = _number(m)
            if "low" in m.re.groupindex and m.group("low") is not None:
                low = cn_decimal(m.group("low"))
                low = -low if low is not None and m.group("lneg") else low
        lo = max([cl.start] + [e for s, e, _ in found if s >= cl.start])
        rating = any(lo <= h.start < m.start() for h in cl.cues if h.kind == "reference")
        if value is None or rating or v.NOT_READING.match(note.text, m.end()):
            continue  # 额定九十安, normally 7 bar, 40 A rated, 六百三十安的: not a reading
        if form == "度" and _other_kind(note, cl, m.start(), kind):
            continue  # 角度误差一度: an angle, not a temperature
        name = _quantity(note, cl, lo, m.start(), kind, named)
        if name is None:
            continue
        approx = bool(
            v.APPROX_BEFORE.search(note.text, cl.start, m.start())
            or v.APPROX_AFTER.match(note.text, m.end())
        )
        value = round(value * scale, 9)
        if found and found[-1][0] >= cl.start and found[-1][2].unit == unit and low is None:
            prev_start, prev_end, prev = found[-1]
            if note.text[prev_end : m.start()].strip() in ("到", "至", "~", "～", "-", "—"):
                found[-1] = (
                    prev_start,
                    m.end(),
                    Measurement(prev.quantity, prev.value, unit, value, prev.approx or approx),
                )
                continue  # 七十度到八十度: one range
        high = None
        if low is not None:
            value, high = round(low * scale, 9), value
        found.append((m.start(), m.end(), Measurement(name, value, unit, high, approx)))
    for start, end, canonical, kind in note.bases:  # 电流为零 → 0 A
        bare_unit = v.KINDS[kind][2]
        bare = v.BARE_RE.match(note.text, end)
        cl = note.clause_at(start)
        if bare_unit == "-" or bare is None or cl is None or bare.end() > cl.end:
            continue
        if any(s <= bare.start("num") < e for s, e, _ in found) or (value := _number(bare)) is None:
            continue
        name = note.join(note.position(cl.start, start), canonical)
        found.append((bare.start("num"), bare.end(), Measurement(name, value, bare_unit)))
    return sorted(found, key=lambda f: f[0])


def _other_kind(note: Note, cl: Clause, num: int, kind: str) -> bool:
    """Whether the quantity word nearest before ``num`` in its clause is of another kind."""
    before = [b for b in note.bases if cl.start <= b[0] and b[1] <= num]
    return bool(before) and before[-1][3] != kind and num - before[-1][1] <= 8


#: Tokens that never name what a quantity is of (位置词): fillers, verbs of measuring.
_NOT_MODIFIER = frozenset(
    [
        "只有",
        "现在",
        "还是",
        "检查",
        "测量",
        "测了",
        "显示",
        "实际",
        "平时",
        "正常",
        "大概",
        "大约",
        "目前",
        "当前",
        "已经",
        "然后",
        "发现",
        "都是",
        "就是",
        "但是",
        "所以",
        "而且",
        "还有",
        "另外",
        "结果",
        "一下",
        "看看",
        "这个",
        "那个",
        "我们",
        "今天",
        "明天",
        "早上",
        "下午",
        "晚上",
        "时候",
        "时间",
        "之后",
        "以后",
        "以前",
        "之前",
        "开始",
        "后来",
        "一直",
        "测得",
        "测到",
        "量得",
        "实测",
        "读数",
    ]
)


def _modifier(note: Note, lo: int, at: int, verbs: bool = False) -> str:
    """The jieba word right before ``at`` (吸气 in 吸气压力, 三区 in 三区温度, 上层 in 上层二百一十
    度) when it can name what is measured: 2–3 Han characters, not a filler, not a quantity word,
    not the equipment itself, no cue word (调整到…), except, with ``verbs``, a verb that leads a
    component (润滑+泵)."""
    i = bisect_right(note.ends, at) - 1
    if i < 0 or note.spans[i][2] != at:
        return ""
    word = note.spans[i][0]
    # jieba (no HMM) leaves an unknown word in single characters: 启停 平衡缸 模温机
    while (
        len(word) == 1
        and i > 0
        and note.spans[i - 1][2] == note.spans[i][1]
        and (len(note.spans[i - 1][0]) == 1 and note.spans[i - 1][1] >= lo and len(word) < 3)
    ):
        i -= 1
        if note.spans[i][0] in _FUNCTION or not _HAN.fullmatch(note.spans[i][0]):
            break
        word = note.spans[i][0] + word
    if note.spans[i][1] < lo or not (2 <= len(word) <= 3 and _HAN.fullmatch(word)):
        return ""
    if word in _NOT_MODIFIER or word.lower() in v.BASES or word.lower() == note.device:
        return ""
    if note.equipment.endswith(word) or any(word == zh for zh, _, _ in v.KINDS.values()):
        return ""  # 1号冷库温度 is the equipment's 温度
    if any(c in _FUNCTION for c in word):
        return ""
    cue = v.CUES.get(word.lower())
    return "" if cue is not None and not (verbs and cue == "verb") else word  # 润滑泵; 调整到…


_HAN = re.compile(r"[\u4e00-\u9fff]+")
#: Characters that are never part of a position word: grammar, numerals, 号.
_FUNCTION = frozenset("的了是在有和与跟也都就还又把被给让很不没已要号到为约只才")


def _position(note: Note, lo: int, at: int) -> str:
    """A known position word ending at ``at`` (排气, 电机), led by the word before it when it is
    only one character (润滑+泵); else a word that can name what is measured (``_modifier``)."""
    known = note.position(lo, at)
    if len(known) == 1 and note.lang != "en":
        known = _modifier(note, lo, at - 1, verbs=True) + known
    found = known or (_modifier(note, lo, at) if note.lang != "en" else "")
    return "" if found and note.equipment.endswith(found) else found  # 加药泵流量: the equipment's


def _number(m: re.Match[str]) -> float | None:
    value = cn_decimal(m.group("num"))
    return -value if value is not None and m.group("neg") else value


def _quantity(note: Note, cl: Clause, lo: int, num: int, kind: str, named: bool) -> str | None:
    """What a number measures: the quantity word before it in its clause, with its position word
    (排气温度); else a position word right before it with the unit's quantity (A相十二安 →
    A相电流, outlet water 7 C → outlet water temperature); else the same kind of quantity word
    in the two clauses before (封口温度上不来，实际只有140度 → 封口温度); else the unit's
    quantity (八十五度 → 温度)."""
    reach = 24 if note.lang == "en" else 8
    before = [b for b in note.bases if b[1] <= num]
    start, end, canonical, base_kind = before[-1] if before else (0, 0, "", "")
    if base_kind == kind and start >= lo and num - end <= reach:
        return note.join(_position(note, lo, start), canonical)
    glue = v.GLUE_END.search(note.text, lo, num)
    zh, en, _ = v.KINDS[kind]
    if position := _position(note, lo, glue.start() if glue else num):
        if note.lang != "en" and position.endswith(zh[0]):
            return position  # 模温只有四十度: 模温 is itself the quantity
        return note.join(position, en if note.lang == "en" else zh)
    home = note.clause_at(start) if before else None
    if base_kind == kind and home is not None and home.index >= cl.index - 2:
        return note.join(_position(note, home.start, start), canonical)
    if named:
        return None  # 五公斤 without a pressure word is a weight, not a gauge reading
    return en if note.lang == "en" else zh
