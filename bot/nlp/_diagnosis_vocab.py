"""Vocabularies and patterns for ``bot.nlp.diagnosis``, built once at import.

The words live in ``data/diagnosis_*.tsv`` (each file's header explains its columns); symptom
words also come from the intake's ``lexicon.tsv``. A malformed file raises ``ValueError`` naming
the file and line, at import, so a bad edit fails every test at once.
"""

from __future__ import annotations

import re
from pathlib import Path

from bot.nlp.lexicon import TERMS
from bot.nlp.text import normalize, word_pattern

__all__ = [
    "AFTER_RE",
    "APPROX_AFTER",
    "APPROX_BEFORE",
    "BARE_RE",
    "BASES",
    "BASE_RE",
    "CAUSE_EFFECT",
    "CAUSE_LEAD",
    "COMPLETE",
    "CONTINUES",
    "CUES",
    "CUE_RE",
    "DONE_PREFIX",
    "ELIDED_ZH",
    "EN_COUNTS",
    "EN_MODAL",
    "EN_PAST_START",
    "GLUE_END",
    "KINDS",
    "LEAD_TRIM",
    "LEXICON_TERMS",
    "MEASURE_RE",
    "MODEL",
    "MODEL_AFTER",
    "NOT_READING",
    "NP_EN",
    "NP_STOP",
    "NP_ZH",
    "PARTS",
    "PART_RE",
    "PER_TIME_RE",
    "PLAN_START",
    "POSITIONS",
    "POSITION_END",
    "QTY_AFTER",
    "QTY_EN",
    "QTY_ZH",
    "SPLIT",
    "SUBJECT_END",
    "SYMPTOMS",
    "SYMPTOM_RE",
    "UNITS",
    "VERB_START",
    "WORDS",
    "ZH_MODAL",
]  # fmt: skip

DATA = Path(__file__).with_name("data")
_MATCHED = {"cause", "done", "verb", "replace", "need", "order", "negneed", "waiting",
            "nostock", "stock", "third", "resolved", "temporary", "repairing", "next",
            "reference", "fetch", "bring", "conditional"}  # fmt: skip
_LISTED = {"fault", "symptom", "nonsymptom", "negator", "breaker", "modal", "doneprefix"}
_LEXICON_SYMPTOMS = {"safety", "gas", "linestop", "down", "degraded"}


def _rows(name: str, *widths: int) -> list[list[str]]:
    rows = []
    for lineno, raw in enumerate((DATA / name).read_text(encoding="utf-8").splitlines(), 1):
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


def _load_quantities() -> tuple[
    dict[str, tuple[str, str, str]], dict[str, tuple[str, str]], dict[str, str]
]:
    kinds: dict[str, tuple[str, str, str]] = {}  # kind -> (zh name, en name, bare-number unit)
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
    """A word of ``words`` that ends the searched text (the longest one: leftmost start)."""
    return re.compile(rf"(?:{word_pattern(words)})\s?\Z", re.IGNORECASE)


def _alternation(words: frozenset[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


CUES, WORDS = _load_cues()
PARTS = _load_parts()
KINDS, BASES, _MODIFIERS = _load_quantities()
POSITIONS = PARTS | _MODIFIERS
UNITS = _load_units()
LEXICON_TERMS = TERMS  # the intake's lexicon, loaded once for both readers
SYMPTOMS = (
    {word for word, term in LEXICON_TERMS.items() if term.kind in _LEXICON_SYMPTOMS}
    | WORDS["symptom"]
    | WORDS["fault"]
) - WORDS["nonsymptom"]

CUE_RE = re.compile(word_pattern(list(CUES)), re.IGNORECASE)
PART_RE = re.compile(word_pattern(list(PARTS)), re.IGNORECASE)
SYMPTOM_RE = re.compile(word_pattern(list(SYMPTOMS)), re.IGNORECASE)
BASE_RE = re.compile(word_pattern(list(BASES)), re.IGNORECASE)
POSITION_END = _ending(list(POSITIONS))
SUBJECT_END = _ending(list(POSITIONS | {word: name for word, (name, _) in BASES.items()}))

# --- numbers and units: 八十五度, 0.8兆帕, 零下五度, 负六十千帕, 3 bar, 220V, 百分之八十五 ---
_HAN_UNIT_GUARD = {
    "安": "装排全静",
    "转": "速动向换子让了",
    "赫": "兹",
    "丝": "杠锥攻",
    "度": "假过",
    "瓦": "斯片",
}


def _unit_form(form: str) -> str:
    if form[-1].isascii() and form[-1].isalnum():
        return re.escape(form) + "(?![A-Za-z0-9])"
    guard = _HAN_UNIT_GUARD.get(form)
    behind = "(?<![千兆])" if form in ("帕", "瓦") else ""  # 六十千帕 is 60 kPa, not 六十千 Pa
    return behind + re.escape(form) + (f"(?![{guard}])" if guard else "")


_CN_NUM = "[零〇一二两三四五六七八九十百千]+(?:点[零〇一二三四五六七八九]+)?"
_NUM = rf"(?P<neg>负|零下|-)?(?P<num>\d+(?:\.\d+)?|{_CN_NUM})"
#: The low end of a range (七十到八十度, 10-12 MPa, 160~170度): kept as value and high.
_LOW = rf"(?:(?P<lneg>负|零下|-)?(?P<low>\d+(?:\.\d+)?|{_CN_NUM})\s?(?:到|至|~|～|-|—)\s?)?"
_UNIT_FORMS = "|".join(_unit_form(f) for f in sorted(UNITS, key=len, reverse=True))
MEASURE_RE = re.compile(
    rf"百分之(?P<pct>{_CN_NUM})|(?<![A-Za-z0-9.]){_LOW}{_NUM}\s?(?:多|来|余)?\s?"
    rf"(?P<unit>{_UNIT_FORMS})"
)
#: 每分钟八十升, 每小时断二十次, 每分钟才九百转: a per-time reading with the period first.
PER_TIME_RE = re.compile(
    rf"每\s?(?P<per>分钟|分|小时|秒钟|秒)[^\d，,。;；、零〇一二两三四五六七八九十百千负]{{0,3}}?"
    rf"{_NUM}\s?(?P<what>转|次|升|立方米|立方|方)(?![\u4e00-\u9fff]*每)"
)
#: Words around a number that make it approximate (大约八十度, 五十五安左右).
APPROX_BEFORE = re.compile(
    r"(?:大概|大约|约|差不多|将近|接近|估计|around|about|approx\.?|~)\s*\Z", re.I
)
APPROX_AFTER = re.compile(r"\s*(?:左右|上下|多|来|出头|or so)")
_LINK = (r"(?:是|为|有|在|到|约|大概|只有|才|降到|升到|回到|掉到|达到|高达|显示|[:：=]|is|was"
         r"|at|of|down to|up to|back to|dropped to|rose to|to)")  # fmt: skip
#: A quantity word's own number without a unit (电流为零, 振动降到二点三).
BARE_RE = re.compile(
    rf"\s*(?:{_LINK}\s*)?{_NUM}(?=\s*(?:$|[，,。;；!！?？、)]|左右|正常|偏高|偏低|了))", re.I
)
#: Right after a number and unit: a specification (六百三十安的断路器) or a rating (40 A rated).
NOT_READING = re.compile(r"\s*(?:的(?!时)|以下|以上|rated\b|nominal\b|setpoint\b|spec\b)", re.I)
GLUE_END = re.compile(rf"(?:\s|{_LINK}|只有)*\Z", re.I)

# --- clauses, actions, plans, causes ---
SPLIT = re.compile(r"[，,。;；!！?？、\n]|\.(?!\d)|\b(?:but|however)\b|但是|可是|不过", re.I)
DONE_PREFIX = re.compile(rf"^(?:{_alternation(WORDS['doneprefix'])})")
_ZH_VERBS = _alternation(
    frozenset(w for w, k in CUES.items() if k in ("verb", "replace") and not w.isascii())
)
_RESULT = "(?:好|完|掉|上|下|回|通|紧|开)?"  # 接好, 换上, 拆下: a verb's result complement
VERB_START = re.compile(rf"(?:{_ZH_VERBS})")
#: The verb is done (换了, 换上过).
COMPLETE = re.compile(rf"{_RESULT}(?:了|过)")
#: 复位后恢复 → 复位; 拆下顶针打磨后装回.
AFTER_RE = re.compile(rf"^(?P<head>.{{0,4}}?(?:{_ZH_VERBS}).{{0,6}}?)(?<![售之然以最前])后")
PLAN_START = re.compile(
    rf"^(?:{_alternation(frozenset(w for w, k in CUES.items() if k == 'next') | WORDS['modal'])})"
)
ZH_MODAL = re.compile(_alternation(WORDS["modal"]))
EN_MODAL = re.compile(
    r"^(?:need to|needs to|will|going to|plan to|have to|has to|must|then)\s+", re.I
)
EN_PAST_START = re.compile(r"(?!(?:speed|bleed|breed)\b)([A-Za-z]{3,}ed)\b", re.I)
CAUSE_LEAD = re.compile(
    r"^(?:\s|[:：]|是|为|that\b|the\b|an?\b|it's\b|it is\b|is\b|to be\b)+", re.I
)
CAUSE_EFFECT = re.compile(r"导致|引起|造成|从而|所致|\bcausing\b|\bleading to\b|\bwhich\b", re.I)
LEAD_TRIM = re.compile(r"^(?:然后|并且|并|又|也|再)")

# --- parts and how many ---
EN_COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
             "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}  # fmt: skip
_CLASSIFIER = "(?P<cls>个|只|根|条|块|台|套|片|把|支|颗|组|副|件|卷|桶|瓶|盒|节|对|米|升|包|箱|粒)"
_ZH_ADJ = "(?:新的|新|备用的|备用|原装的|原装|同型号的|同型号)?"
_EN_UNIT = r"(?:(?:x|pcs\.?|pc|pieces? of|pieces?|units? of|units?|sets? of|sets?)\s+)?"
_EN_ADJ = r"(?:(?:new|spare|replacement|extra|additional|more|original)\s+)?"
_EN_N = rf"(?<![A-Za-z0-9])(?P<n>\d+|{'|'.join(EN_COUNTS)})\s+"
QTY_ZH = re.compile(rf"(?P<n>\d+|[一二两三四五六七八九十]+)\s*{_CLASSIFIER}{_ZH_ADJ}\s*\Z")
QTY_EN = re.compile(rf"{_EN_N}{_EN_UNIT}{_EN_ADJ}\Z", re.I)
QTY_AFTER = re.compile(
    r"\s*(?:[x×*]\s*(?P<a>\d+)|(?P<b>\d+|[一二两三四五六七八九十]+)\s*(?:个|只|根|条|块|套|片|件|对|pcs|pieces))"
)
MODEL = re.compile(r"(?<![A-Za-z0-9-])(?P<model>(?=[A-Za-z-]*\d)[A-Za-z0-9][A-Za-z0-9-]{2,})\s?\Z")
#: 两个6206轴承, 1个接触器和1个热继电器: a count, a classifier and what is counted.
NP_ZH = re.compile(
    rf"(?P<n>\d+|[一二两三四五六七八九十]+)\s*{_CLASSIFIER}{_ZH_ADJ}"
    r"(?!马上|今天|明天|下午|上午|过来|来|备用|吧|就行)(?P<name>[A-Za-z0-9\u4e00-\u9fff-]+?)"
    r"(?=和|及|与|跟|还有|以及|过来|带来|送来|寄来|回来|来|备用|马上|今天|明天|下午|上午|我|等|先|再"
    r"|就|请|麻烦|然后|顺便|仓库|$)"
)
#: A count with no name after a need (跟供应商订两个, 我去领一根马上换): of the last part named.
ELIDED_ZH = re.compile(
    rf"(?P<n>\d+|[一二两三四五六七八九十]+)\s*{_CLASSIFIER}\s*"
    r"(?=$|过来|来|备用|吧|就行|马上|今天|明天|下午|上午)"
)
#: A clause that goes on with the parts list of the one before (，还有一个门锁；、一个空气滤芯).
CONTINUES = re.compile(
    r"^\s*(?:还有|另外还要|另外|以及|和|跟|再加|加上|外加)?\s*(?=\d|[一二两三四五六七八九十])"
)
#: 型号6310 after a part: its model number.
MODEL_AFTER = re.compile(
    r"型号\s*(?:是|为|:|：)?\s*(?P<model>[A-Za-z0-9][A-Za-z0-9-]{2,})(?![A-Za-z0-9\u4e00-\u9fff])"
)
NP_EN = re.compile(
    rf"{_EN_N}{_EN_UNIT}{_EN_ADJ}(?P<name>[A-Za-z0-9][A-Za-z0-9-]*(?:\s+[A-Za-z][A-Za-z-]*){{0,2}}?)"
    r"(?=\s*(?:$|\b(?:and|for|from|to|today|tomorrow|now|it|with|at|on|in|asap|needed)\b))",
    re.I,
)
#: What a count can be of that is no part: 两个人, 3 days.
NP_STOP = frozenset(
    ["人", "人手", "师傅", "电工", "小时", "天", "班", "次", "遍", "周", "分钟", "people", "person",
     "men", "hours", "hour", "days", "day", "minutes", "times", "guys", "technicians"]
)  # fmt: skip
