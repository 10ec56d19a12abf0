"""A structured diagnosis from an engineer's dictated field note (Chinese or English).

``diagnose(transcript)`` turns an already transcribed note ("三号空压机停机，排气温度八十五度，
怀疑冷却风扇坏了，已经换了保险丝，要订一个风扇电机") into the card the engineer confirms with one
tap. It is a rule reader over vocabularies in ``data/``: ``diagnosis_parts.tsv`` (components),
``diagnosis_units.tsv``, ``diagnosis_quantities.tsv`` and ``diagnosis_cues.tsv`` (cue words by
kind); symptom words also come from the intake's ``lexicon.tsv``; ``equipment`` is the intake's
own reading (``classify``). The note is normalised, cut into clauses at punctuation and at
但是/but, and segmented by jieba with the domain dictionary; a one-character Chinese cue (要 订
换) counts only as a token of its own.

Negation: a cue, symptom or fault word is void when one of the 3 tokens before it in its clause
is a negator (没 没有 无 未 不是 还没 …, no not never …n't; 不 only right before it) unless a
breaker (但 就 还是 but only still) comes first; 不需要/不用/无需/no need… void every need or
order after it in the clause. So "没有漏油" is no symptom and "不需要换件" needs no part.

Fields:
* ``equipment``: the numbered machine ("三号空压机" → "3号空压机", "2#空压机" → "2号空压机",
  "Compressor 3"), else the machine type ("冷水机", "conveyor").
* ``symptom``: the first fault phrase outside cause/action/plan clauses, with the component or
  quantity said right before it (主轴异响, 露点偏高, spindle noise), not the equipment itself.
* ``suspected_cause``: what follows a cause cue (怀疑 可能是 检查发现 suspect probably found);
  else the first other clause naming a component with a fault word (门机皮带松动, relay K3 is bad).
* ``actions_taken``: clauses that report work done: 已经/已 + …, a verb with 了/过 (换了保险丝),
  a verb with 后 (复位后… → 复位), an English past verb to the clause end (replaced the fuse).
* ``parts_needed``: components after a need or order cue (需要 要 订 采购 need order), or
  before one in the same clause (轴承两个需要换), with the quantity (两个, 3 pcs, 1 x, a) and a
  model number (6206轴承); not parts already replaced, nor parts sent out for repair.
* ``measurements``: a number (digits or Chinese: 八十五, 零点八, 一千二, 负六十) with a unit,
  named by the quantity word before it and the position word before that (排气温度, A相电流,
  discharge temperature); without a quantity word by the unit (八十五度 → 温度). A quantity word
  followed by a bare number takes its usual unit (电流为零 → 0 A). Ratings and usual values
  (额定 平时 设定 normally rated) are not readings. Units: 度/摄氏度/°C/C/degrees → ℃,
  兆帕 → MPa, 千帕 → kPa, 公斤 (only after a pressure word: kgf/cm²) → bar with the same value,
  安/安培/amps → A, 伏 → V, 转/转每分/r/min → rpm, 赫兹 → Hz, 千瓦 → kW, 百分之N → %,
  毫米 → mm, 丝 → 0.01 mm, 毫米每秒 → mm/s, 兆欧/megohm → MΩ.
* ``next_step``: the first clause with a plan, need, order or outside-service cue, without a
  leading modal (要订一个风扇电机 → 订一个风扇电机, need to order … → order …).

Suggested state, the first rule that applies:
1. ``third_party``: an outside-service cue (送检 送修 返厂 寄回 厂家来人/上门/工程师/售后 第三方
   委外, vendor manufacturer OEM outside lab/shop RMA), unless that clause orders something
   (buying from the vendor is waiting_parts).
2. ``waiting_parts``: an out-of-stock cue (仓库没有 没有库存 缺货 out of stock), or parts needed
   or an order/waiting cue (订 采购 下单 等配件 到货 on order) with no own-stock cue
   (仓库有 备件库有 有备件 in stock on hand).
3. ``resolved``: a fixed cue (修好 恢复正常 试机正常 运行正常 正常了 问题解决, fixed back to
   normal tested OK running normally back in service), unless temporary (临时 暂时 for now).
4. ``repairing``: an in-progress cue (正在 马上 现在去 抢修, now in progress), or parts needed
   that are in stock.
5. ``diagnosing``: otherwise.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

from bot.nlp.classify import LEXICON, _load_lexicon, classify
from bot.nlp.text import (
    cn_decimal,
    cn_number,
    detect_language,
    normalize,
    token_spans,
    word_pattern,
)
from bot.tickets import TicketState

__all__ = ["Diagnosis", "Measurement", "Part", "diagnose"]

_DATA = Path(__file__).with_name("data")


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    qty: int


@dataclass(frozen=True, slots=True)
class Measurement:
    quantity: str
    value: float
    unit: str


@dataclass(frozen=True, slots=True)
class Diagnosis:
    equipment: str | None
    symptom: str | None
    suspected_cause: str | None
    actions_taken: tuple[str, ...]
    parts_needed: tuple[Part, ...]
    measurements: tuple[Measurement, ...]
    next_step: str | None
    suggested_state: str  # repairing | waiting_parts | third_party | resolved | diagnosing

    def as_json(self) -> dict[str, object]:
        return {
            "equipment": self.equipment,
            "symptom": self.symptom,
            "suspected_cause": self.suspected_cause,
            "actions_taken": list(self.actions_taken),
            "parts_needed": [{"name": p.name, "qty": p.qty} for p in self.parts_needed],
            "measurements": [
                {"quantity": m.quantity, "value": m.value, "unit": m.unit}
                for m in self.measurements
            ],
            "next_step": self.next_step,
            "suggested_state": self.suggested_state,
        }


# --- vocabularies (data/diagnosis_*.tsv; symptoms also from the intake's lexicon.tsv) --------
_MATCHED = {"cause", "done", "verb", "need", "order", "negneed", "waiting", "nostock", "stock",
            "third", "resolved", "temporary", "repairing", "next", "reference"}  # fmt: skip
_LISTED = {"fault", "symptom", "nonsymptom", "negator", "breaker", "modal", "doneprefix"}
_LEXICON_SYMPTOMS = {"safety", "gas", "linestop", "down", "degraded"}
_PLAN = {"next", "need", "order", "third"}


def _rows(name: str, *widths: int) -> list[list[str]]:
    rows = []
    for lineno, raw in enumerate((_DATA / name).read_text(encoding="utf-8").splitlines(), 1):
        if raw.strip() and not raw.startswith("#"):
            cols = raw.split("\t")
            if len(cols) not in widths or not all(cols):
                raise ValueError(f"{name}:{lineno}: expected {widths} tab-separated columns")
            rows.append(cols)
    return rows


def _names(first: str, others: str) -> list[str]:
    return [first] + ([] if others == "-" else others.split("|"))


def _plural(word: str) -> str | None:
    if not word.isascii() or word.endswith("s"):
        return None
    if word.endswith(("x", "ch", "sh")):
        return word + "es"
    return word[:-1] + "ies" if word.endswith("y") else word + "s"


def _load_cues() -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    cues: dict[str, str] = {}
    lists: dict[str, set[str]] = {kind: set() for kind in _LISTED}
    for kind, terms in _rows("diagnosis_cues.tsv", 2):
        words = [normalize(t).lower() for t in terms.split("|")]
        if kind in _LISTED:
            lists[kind].update(words)
        elif kind in _MATCHED:
            for word in words:
                if word in cues:
                    raise ValueError(f"diagnosis_cues.tsv: {word!r} is listed twice")
                cues[word] = kind
        else:
            raise ValueError(f"diagnosis_cues.tsv: unknown kind {kind!r}")
    return cues, {kind: frozenset(words) for kind, words in lists.items()}


def _load_parts() -> dict[str, str]:
    parts: dict[str, str] = {}  # any name, lower-case -> canonical name
    for canonical, others in _rows("diagnosis_parts.tsv", 2):
        for name in _names(canonical, others):
            parts[name.lower()] = canonical
            if (many := _plural(name.lower())) is not None:
                parts.setdefault(many, canonical)
    return parts


_Kinds = dict[str, tuple[str, str, str]]  # kind -> (zh name, en name, unit of a bare number)


def _load_quantities() -> tuple[_Kinds, dict[str, tuple[str, str]], dict[str, str]]:
    kinds: _Kinds = {}
    bases: dict[str, tuple[str, str]] = {}  # quantity word -> (canonical, kind)
    positions: dict[str, str] = {}  # position word -> canonical
    for row in _rows("diagnosis_quantities.tsv", 4, 5):
        match row:
            case ["kind", kind, zh, en, unit]:
                kinds[kind] = (zh, en, unit)
            case ["base", kind, first, others]:
                bases.update({n.lower(): (first, kind) for n in _names(first, others)})
            case ["modifier", "-", first, others]:
                positions.update({n.lower(): first for n in _names(first, others)})
            case _:
                raise ValueError(f"diagnosis_quantities.tsv: bad row {row!r}")
    if {kind for _, kind in bases.values()} - set(kinds):
        raise ValueError("diagnosis_quantities.tsv: a base of an unknown kind")
    return kinds, bases, positions


def _load_units() -> dict[str, tuple[str, str, float, bool]]:
    units: dict[str, tuple[str, str, float, bool]] = {}  # form -> (unit, kind, scale, named)
    for unit, kind, scale, forms in _rows("diagnosis_units.tsv", 4):
        for form in forms.split("|"):
            units[form.rstrip("*")] = (unit, kind, float(scale), form.endswith("*"))
    return units


def _ending(words: list[str]) -> re.Pattern[str]:
    """A word of ``words`` that ends the searched text (the longest: leftmost start)."""
    return re.compile(rf"(?:{word_pattern(words)})\s?\Z", re.IGNORECASE)


def _alternation(words: frozenset[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_CUES, _WORDS = _load_cues()
_PARTS = _load_parts()
_KINDS, _BASES, _MODIFIERS = _load_quantities()
_POSITIONS = _PARTS | _MODIFIERS
_UNITS = _load_units()
_SYMPTOMS = (
    {k for k, t in _load_lexicon(LEXICON).items() if t.kind in _LEXICON_SYMPTOMS}
    | _WORDS["symptom"]
    | _WORDS["fault"]
) - _WORDS["nonsymptom"]

_CUE_RE = re.compile(word_pattern(list(_CUES)), re.IGNORECASE)
_PART_RE = re.compile(word_pattern(list(_PARTS)), re.IGNORECASE)
_SYMPTOM_RE = re.compile(word_pattern(list(_SYMPTOMS)), re.IGNORECASE)
_BASE_RE = re.compile(word_pattern(list(_BASES)), re.IGNORECASE)
_POSITION_END = _ending(list(_POSITIONS))
_SUBJECT_END = _ending(list(_POSITIONS | {k: v for k, (v, _) in _BASES.items()}))

_HAN_UNIT_GUARD = {
    "安": "装排全静",
    "转": "速动向换子让了",
    "赫": "兹",
    "丝": "杠锥攻",
    "度": "假过",
}


def _unit_form(form: str) -> str:
    if form[-1].isascii() and form[-1].isalnum():
        return re.escape(form) + "(?![A-Za-z0-9])"
    guard = _HAN_UNIT_GUARD.get(form)
    return re.escape(form) + (f"(?![{guard}])" if guard else "")


_CN_NUM = "[零〇一二两三四五六七八九十百千]+(?:点[零〇一二三四五六七八九]+)?"
_NUM = rf"(?P<neg>负|零下|-)?(?P<num>\d+(?:\.\d+)?|{_CN_NUM})"
_MEASURE_RE = re.compile(
    rf"百分之(?P<pct>{_CN_NUM})|(?<![A-Za-z0-9.]){_NUM}\s?(?:多|来|余)?\s?"
    rf"(?P<unit>{'|'.join(_unit_form(f) for f in sorted(_UNITS, key=len, reverse=True))})"
)
_LINK = (r"(?:是|为|有|在|到|约|大概|只有|才|降到|升到|回到|掉到|达到|高达|显示|[:：=]"
         r"|is|was|at|of|down to|up to|dropped to|rose to|to)")  # fmt: skip
_BARE_RE = re.compile(
    rf"\s*(?:{_LINK}\s*)?{_NUM}(?=\s*(?:$|[，,。;；!！?？、)]|左右|正常|偏高|偏低|了))", re.I
)
_GLUE_END = re.compile(r"(?:\s|是|为|有|只有|在)*\Z")
_SPLIT = re.compile(r"[，,。;；!！?？、\n]|\.(?!\d)|\b(?:but|however)\b|但是|可是|不过", re.I)
_DONE_PREFIX = re.compile(rf"^(?:{_alternation(_WORDS['doneprefix'])})")
_ZH_VERBS = frozenset(w for w, k in _CUES.items() if k == "verb")
_AFTER_RE = re.compile(rf"^(?:重新|再次|手动)?(?P<verb>{_alternation(_ZH_VERBS)})后")
_ZH_MODAL = re.compile(_alternation(_WORDS["modal"]))
_EN_MODAL = re.compile(
    r"^(?:need to|needs to|will|going to|plan to|have to|has to|must|then)\s+", re.I
)
_CAUSE_TRIM = re.compile(
    r"^(?:\s|[:：]|是|为|that\b|the\b|an?\b|it's\b|it is\b|is\b|to be\b)+"
    r"|(?:导致的|引起的|造成的|导致|引起|造成|所致)$",
    re.I,
)
_LEAD_TRIM = re.compile(r"^(?:然后|并且|并|又|也|再)")
_EN_COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
              "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}  # fmt: skip
_QTY_ZH = re.compile(
    r"(?P<n>\d+|[一二两三四五六七八九十]+)\s*(?:个|只|根|条|块|台|套|片|把|支|颗|组|副|件|卷|桶|瓶|盒|节)"
    r"(?:新的|新|备用的|备用|原装的|原装|同型号的|同型号)?\s*\Z"
)
_QTY_EN = re.compile(
    rf"(?<![A-Za-z0-9])(?P<n>\d+|{'|'.join(_EN_COUNTS)})\s+"
    r"(?:(?:x|pcs\.?|pc|pieces? of|pieces?|units? of|units?|sets? of|sets?)\s+)?"
    r"(?:(?:new|spare|replacement|extra|additional|more|original)\s+)?\Z",
    re.I,
)
_QTY_AFTER = re.compile(
    r"\s*(?:[x×*]\s*(?P<a>\d+)|(?P<b>\d+|[一二两三四五六七八九十]+)\s*(?:个|只|根|条|块|套|片|件|pcs|pieces))"
)
_MODEL = re.compile(r"(?<![A-Za-z0-9-])(?P<model>(?=[A-Za-z-]*\d)[A-Za-z0-9][A-Za-z0-9-]{2,})\s?\Z")


# --- reading a note -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Hit:
    kind: str
    start: int
    end: int
    negated: bool


@dataclass(slots=True)
class _Clause:
    start: int
    end: int
    text: str
    cues: list[_Hit] = field(default_factory=list)
    parts: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, canonical)
    faults: list[_Hit] = field(default_factory=list)  # symptom and fault words
    cause: str | None = None
    action: str | None = None
    plan: bool = False

    def live(self, kind: str) -> list[_Hit]:
        return [h for h in self.cues if h.kind == kind and not h.negated]


class _Note:
    """A normalised note: its jieba tokens, clauses and the vocabulary hits in each clause."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lang = detect_language(text)
        self.spans = token_spans(text)
        self.ends = [end for _, _, end in self.spans]
        self.clauses: list[_Clause] = []
        start = 0
        for m in [*_SPLIT.finditer(text), None]:
            end = m.start() if m else len(text)
            if text[start:end].strip():
                self.clauses.append(_Clause(start, end, text[start:end]))
            start = m.end() if m else end
        self._starts = [cl.start for cl in self.clauses]
        self.bases: list[tuple[int, int, str, str]] = []  # (start, end, canonical, kind)
        for m in _BASE_RE.finditer(text):
            self.bases.append((m.start(), m.end(), *_BASES[m.group().lower()]))
        for m in _CUE_RE.finditer(text):
            if self._token(m) and (cl := self.clause_at(m.start())):
                kind = _CUES[m.group().lower()]
                cl.cues.append(_Hit(kind, m.start(), m.end(), self.negated(m.start(), cl.start)))
        for m in _PART_RE.finditer(text):
            if self._token(m) and (cl := self.clause_at(m.start())):
                cl.parts.append((m.start(), m.end(), _PARTS[m.group().lower()]))
        for m in _SYMPTOM_RE.finditer(text):
            if self._token(m) and (cl := self.clause_at(m.start())):
                cl.faults.append(
                    _Hit("fault", m.start(), m.end(), self.negated(m.start(), cl.start))
                )
        for cl in self.clauses:  # 不需要/no need voids every need and order after it
            stop = min((h.start for h in cl.cues if h.kind == "negneed"), default=cl.end)
            cl.cues = [
                _Hit(h.kind, h.start, h.end, True)
                if h.kind in ("need", "order") and h.start > stop
                else h
                for h in cl.cues
            ]

    def clause_at(self, pos: int) -> _Clause | None:
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
        if i < len(self.spans) and self.spans[i][1] < start:
            if self.text[self.spans[i][1] : start].lower() in _WORDS["negator"]:
                return True  # glued into the token, e.g. 没漏
        for dist, j in enumerate(range(i - 1, max(-1, i - 4), -1), 1):
            tok, tok_start, _ = self.spans[j]
            tok = tok.lower()
            if tok_start < clause_start or tok in _WORDS["breaker"]:
                return False
            if tok in _WORDS["negator"] or tok.endswith("n't"):
                if tok == "不" and dist > 1:
                    continue  # 不知道为什么停机: 不 negates only what follows it
                return True
        return False

    def join(self, head: str, tail: str) -> str:
        return f"{head} {tail}" if head and self.lang == "en" else head + tail

    def position(self, lo: int, hi: int) -> str:
        """The canonical position word (排气, 电机, discharge) that ends ``text[lo:hi]``."""
        m = _POSITION_END.search(self.text, lo, hi)
        return _POSITIONS[m.group().strip().lower()] if m else ""


def diagnose(transcript: str) -> Diagnosis:
    """Read one transcribed field note (see the module docstring for the rules)."""
    note = _Note(normalize(transcript))
    reading = classify(note.text)
    device = (reading.device or "").lower()
    for cl in note.clauses:
        _roles(note, cl)
    symptom, symptom_clause = _symptom(note, device)
    parts = _parts_needed(note)
    return Diagnosis(
        equipment=_equipment(reading.device_code, reading.device),
        symptom=symptom,
        suspected_cause=next((cl.cause for cl in note.clauses if cl.cause), None)
        or _component_fault(note, symptom_clause),
        actions_taken=tuple(cl.action for cl in note.clauses if cl.action),
        parts_needed=parts,
        measurements=_measurements(note),
        next_step=next((_plan_text(note, cl) for cl in note.clauses if cl.plan), None),
        suggested_state=_state(note, parts),
    )


def _equipment(device_code: str | None, device: str | None) -> str | None:
    if device_code:
        return re.sub(r"(\d)\s*#\s*(?=[\u4e00-\u9fff])", r"\1号", device_code)  # 2#空压机
    return device


def _roles(note: _Note, cl: _Clause) -> None:
    if cause := cl.live("cause"):
        hit = cause[0]
        text = note.text[cl.start : hit.start] + note.text[hit.end : cl.end]
        cl.cause = _CAUSE_TRIM.sub("", text.strip()).strip() or None
    cl.action = _action(note, cl)
    cl.plan = not (cl.cause or cl.action) and any(cl.live(kind) for kind in _PLAN)


def _action(note: _Note, cl: _Clause) -> str | None:
    text = cl.text.strip()
    if m := _AFTER_RE.match(text):
        return m.group("verb")  # 复位后恢复 → 复位
    if m := _DONE_PREFIX.match(text):
        rest = text[m.end() :].strip()
        if rest and not cl.live("resolved") and not _SYMPTOM_RE.match(rest):
            return rest  # 已经换了保险丝 → 换了保险丝
        return None
    for h in cl.cues:
        if h.negated:
            continue
        if h.kind == "verb" and note.text[h.end : h.end + 1] in ("了", "过"):
            return _LEAD_TRIM.sub("", text)
        word = note.text[h.start : h.end].lower()
        if h.kind == "done" or (h.kind == "order" and word.endswith("ed")):
            return note.text[h.start : cl.end].strip()
    return None


def _plan_text(note: _Note, cl: _Clause) -> str:
    text = cl.text.strip()
    if note.lang == "en":
        return _EN_MODAL.sub("", text, count=1)
    m = _ZH_MODAL.search(text)
    return (text[: m.start()] + text[m.end() :]).strip() if m else text


def _symptom(note: _Note, device: str) -> tuple[str | None, _Clause | None]:
    for cl in note.clauses:
        if cl.cause or cl.action or cl.plan or cl.live("resolved"):
            continue
        for h in cl.faults:
            inside = any(s <= h.start and h.end <= e and e - s > h.end - h.start
                         for s, e, _ in cl.parts)  # fmt: skip  # 漏电 in 漏电开关
            if h.negated or inside:
                continue
            head = note.text[cl.start : h.start]
            m = _SUBJECT_END.search(head[:-1] if head.endswith("有") else head)  # 油泵有异响
            subject = m.group().strip() if m else ""
            if device and subject.lower().startswith(device):
                subject = subject[len(device) :]  # the equipment itself, or 电梯门 → 门
            return note.join(subject, note.text[h.start : h.end]), cl
    return None, None


def _component_fault(note: _Note, symptom_clause: _Clause | None) -> str | None:
    """The first other clause where a named component has a fault: 门机皮带松动."""
    for cl in note.clauses:
        if cl is symptom_clause or cl.action or cl.plan or cl.live("resolved"):
            continue
        if any(not h.negated and any(s < h.start for s, _, _ in cl.parts) for h in cl.faults):
            return cl.text.strip()
    return None


def _parts_needed(note: _Note) -> tuple[Part, ...]:
    needed: dict[str, int] = {}
    for cl in note.clauses:
        if cl.live("third") and not cl.live("order"):
            continue  # 驱动板要寄回厂家: sent out for repair, not ordered
        marks = [(cl.start, False)] if _DONE_PREFIX.match(cl.text.lstrip()) else []
        for h in cl.cues:
            if h.kind in ("need", "order"):
                marks.append((h.start, not h.negated))
            elif h.kind == "negneed" or (h.kind == "done" and not h.negated):
                marks.append((h.start, False))
            elif h.kind == "verb" and note.text[h.end : h.end + 1] in ("了", "过", "后"):
                marks.append((h.start, False))
        marks.sort()
        for start, end, canonical in cl.parts:
            before = [need for pos, need in marks if pos < start]
            after = [need for pos, need in marks if pos >= end]
            if before[-1] if before else after[0] if after else False:
                name, qty = _part(note, cl, start, end, canonical)
                needed.setdefault(name, qty)
    return tuple(Part(name, qty) for name, qty in needed.items())


def _part(note: _Note, cl: _Clause, start: int, end: int, canonical: str) -> tuple[str, int]:
    head = note.text[cl.start : start]
    model = _MODEL.search(head)
    if model:
        head = head[: model.start()]
        canonical = note.join(model.group("model"), canonical)
    m = _QTY_ZH.search(head) or _QTY_EN.search(head)
    if m is None:
        m = _QTY_AFTER.match(note.text, end, cl.end)
    count = (m.group("n") if "n" in m.groupdict() else m.group("a") or m.group("b")) if m else "1"
    qty = _EN_COUNTS.get(count.lower()) or cn_number(count) or 1
    return canonical, qty


def _measurements(note: _Note) -> tuple[Measurement, ...]:
    found: list[tuple[int, int, Measurement]] = []
    for m in _MEASURE_RE.finditer(note.text):
        cl = note.clause_at(m.start())
        if cl is None:
            continue
        if m.group("pct") is not None:
            unit, kind, scale, named = "%", "percent", 1.0, False
            value = cn_decimal(m.group("pct"))
        else:
            unit, kind, scale, named = _UNITS[m.group("unit")]
            value = _number(m)
        lo = max([cl.start] + [e for s, e, _ in found if s >= cl.start])
        if value is None or any(
            lo <= h.start < m.start() for h in cl.cues if h.kind == "reference"
        ):
            continue  # 额定九十安, normally 7 bar: not a reading
        name = _quantity(note, lo, m.start(), kind, named)
        if name is not None:
            found.append((m.start(), m.end(), Measurement(name, round(value * scale, 9), unit)))
    for start, end, canonical, kind in note.bases:  # 电流为零 → 0 A
        bare_unit = _KINDS[kind][2]
        m = _BARE_RE.match(note.text, end)
        cl = note.clause_at(start)
        if bare_unit == "-" or m is None or cl is None or m.end() > cl.end:
            continue
        if any(s <= m.start("num") < e for s, e, _ in found) or (value := _number(m)) is None:
            continue
        name = note.join(note.position(cl.start, start), canonical)
        found.append((m.start("num"), m.end(), Measurement(name, value, bare_unit)))
    return tuple(x for _, _, x in sorted(found, key=lambda f: f[0]))


def _number(m: re.Match[str]) -> float | None:
    value = cn_decimal(m.group("num"))
    return -value if value is not None and m.group("neg") else value


def _quantity(note: _Note, lo: int, num: int, kind: str, named: bool) -> str | None:
    """The quantity a number measures: the quantity word before it in its clause, with its
    position word (排气温度); else a position word right before it with the unit's quantity
    (outlet water → outlet water temperature); else the unit's quantity (度 → 温度)."""
    reach = 24 if note.lang == "en" else 8
    for start, end, canonical, base_kind in reversed(note.bases):
        if lo <= start and end <= num and num - end <= reach:
            if base_kind == kind:
                return note.join(note.position(lo, start), canonical)
            break
    if named:
        return None  # 五公斤 without a pressure word is a weight, not a gauge reading
    zh, en, _ = _KINDS[kind]
    glue = _GLUE_END.search(note.text, lo, num)
    position = note.position(lo, glue.start() if glue else num)
    return note.join(position, en if note.lang == "en" else zh)


def _state(note: _Note, parts: tuple[Part, ...]) -> str:
    kinds = {h.kind for cl in note.clauses for h in cl.cues if not h.negated}
    if any(cl.live("third") and not cl.live("order") for cl in note.clauses):
        return TicketState.THIRD_PARTY.value
    if "nostock" in kinds or ((parts or kinds & {"order", "waiting"}) and "stock" not in kinds):
        return TicketState.WAITING_PARTS.value
    if any(cl.live("resolved") and not cl.live("temporary") for cl in note.clauses):
        return TicketState.RESOLVED.value
    if "repairing" in kinds or parts:
        return TicketState.REPAIRING.value
    return TicketState.DIAGNOSING.value
