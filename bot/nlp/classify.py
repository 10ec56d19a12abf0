"""The intake's reading of a customer's chat message (Chinese and English): exact rules, then
a trained model.

``classify(text)`` runs on every incoming text and behind ``gongdan classify``. The text is
NFKC-normalised first (full-width ``３号``/``ＣＮＣ－０７`` become ASCII). ``read_rules`` finds
what can be found exactly: lexicon terms (``bot/nlp/lexicon.py``) with their negation scope,
and what the message names (``bot/nlp/extract.py``: tag, machine, alarm code, place). Its
findings are features of the trained model (``bot/nlp/intake_model.py``), and ``decide``
combines the two:

* a safety term that is not negated makes a P0 ``safety`` report whatever the model says
  (漏气 next to pneumatic equipment is an air leak, not gas);
* a message whose every symptom is denied is a report only if the model is very sure
  ("没漏油，也没冒烟"); a denied stop cannot be P0 ("isn't down, just noisy");
* otherwise the model decides: a report when it says so, P0 from ``P0_THRESHOLD`` up (a missed
  stop costs more than a second look), the likeliest of P1–P3 else; non-reports are P3. A
  message that says the machine still runs or the fault is slight (还在生产, 有点, still
  running: the lexicon's ``running`` cues), and affirms no stop, hazard or outage, needs
  ``RUNNING_P0_THRESHOLD`` to be P0.

Every field carries its confidence. The rules' own priority (the product's definitions: P0 a
stop, a hazard or an outage; P1 impaired, intermittent, a workaround, lost redundancy, or
urged; P2 a normal fault or a recovered incident; P3 the rest) and category are features, not
the answer.

Matching. Terms match case-insensitively, longest first, Latin terms as whole words only; a
one-character Chinese term (急, 门, 灯) counts only where jieba does not make it part of a
longer dictionary word (门卫, 部门, 刷卡).

Negation. A symptom, request or urgency term is void when, in the same clause, one of the 3
tokens before it is a negator (没 没有 无 未 不是 并非 不会 不再 …, no not never without
none and any ``…n't``; 不 only right before it, and not when it only stutters "不 不工作"). 没/
没有/无 before a noun deny the noun, not what follows it ("没气停了", "没蒸汽全停了" are stops),
so across a gap they reach a term only over adverbs (没有完全停机). Clauses end at punctuation
and at words such as 但(是) 就 导致 为什么 / but and so because, so "没有冒烟，但是空压机停机了"
keeps the stop.
Fault phrases that contain a negator (不转 不动 不启动 没反应 无法启动 won't start, doesn't
work, not working, no power) are terms of their own, matched before any negation test.

``title`` is the message without greetings, mentions, trailing 了/particles/thanks, ≤ 40
chars (cut after a whole clause, else at a word with "…"); ``language`` is "zh" when Han
characters are at least as many as English words; ``device`` the machine type named (a
machine before a part before 机器/设备).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from bot.nlp import extract, intake_model
from bot.nlp.lexicon import TERMS, Term
from bot.nlp.text import (
    detect_language,
    headline,
    is_word,
    normalize,
    token_spans,
    word_pattern,
)
from bot.tickets import Category, Priority

__all__ = ["Confidence", "Reading", "Rules", "classify", "decide", "read_rules"]

_SYMPTOMS = {"safety", "gas", "linestop", "down", "intermittent", "degraded"}
_NEGATABLE = _SYMPTOMS | {"urgent", "calm", "request", "question", "scope", "impact", "recovered",
                          "hazard"}  # fmt: skip
_IT = {Category.NETWORK_IT, Category.SOFTWARE_CONFIG}
#: kinds that affirm a stop, a hazard or an outage (a ``running`` cue does not outweigh them)
_STOPS = {"linestop", "scope", "down", "safety", "gas", "hazard"}
_PRIORITIES = (Priority.P0, Priority.P1, Priority.P2, Priority.P3)


#: A report is P0 when the model gives P0 at least this: the highest threshold at which 5-fold
#: cross-validation on train + dev (``gongdan train --cv``) keeps P0 recall at 0.97 or more,
#: with the running guard below (CV 0.971, macro-F1 0.828, P0 precision 0.756; README).
P0_THRESHOLD = 0.07
#: ... unless the message says the machine still runs or the fault is slight (a ``running``
#: cue) and affirms no stop, hazard or outage: then it takes this. P0 over-calls page people
#: and start 15-minute clocks; the guard keeps "A线输送带有点跑偏" from the low threshold.
RUNNING_P0_THRESHOLD = 0.25
#: A message whose every symptom is denied is a report only when the model is this sure.
NEGATED_REPORT = 0.9


@dataclass(frozen=True, slots=True)
class Confidence:
    """How sure the reader is of each field, 0..1 (the probability of what it chose)."""

    report: float
    priority: float
    category: float
    device_code: float
    followup: float

    def as_json(self) -> dict[str, float]:
        return {
            "is_fault_report": round(self.report, 3),
            "priority": round(self.priority, 3),
            "category": round(self.category, 3),
            "device_code": round(self.device_code, 3),
            "followup": round(self.followup, 3),
        }


@dataclass(frozen=True, slots=True)
class Reading:
    is_fault_report: bool
    priority: Priority
    category: Category
    device_code: str | None  # an explicit asset tag or serial, as written
    location: str | None
    device: str | None  # the machine's type: "注塑机"
    alarm_code: str | None
    title: str
    language: str
    device_name: str | None = None  # the machine as named with its number: "3号注塑机"
    evidence: bool = False  # the rules found a symptom, a request or a question in it
    followup: bool = False  # chases a fault already reported
    urgent: bool = False  # the customer asks for speed
    confidence: Confidence = Confidence(1.0, 1.0, 1.0, 1.0, 1.0)

    def as_json(self, id: str | int | None) -> dict[str, object]:
        return {
            "id": id,
            "is_fault_report": self.is_fault_report,
            "priority": self.priority.value,
            "category": self.category.value,
            "device_code": self.device_code,
            "location": self.location,
            "device": self.device,
            "device_name": self.device_name,
            "alarm_code": self.alarm_code,
            "title": self.title,
            "language": self.language,
            "followup": self.followup,
            "urgent": self.urgent,
            "confidence": self.confidence.as_json(),
        }


@dataclass(frozen=True, slots=True)
class _Hit:
    term: Term
    start: int
    negated: bool


def _words(spaced: str) -> set[str]:
    return set(spaced.split())


_MATCHER = re.compile(word_pattern(list(TERMS)), re.IGNORECASE)

_NEGATORS = frozenset(
    _words("没 没有 无 未 不 不是 并非 非 别 并没有 并没 并不 并无 毫无 暂无 尚未 从未 从没 从来没")
    | _words("从来没有 没再 不再 不会 未见 不曾 也没 也没有 都没 都没有 还没 还没有 无任何")
    | _words("no not never without none nothing nor neither cannot hardly")
    # a hazard or stop guarded against is not happening (防漏电的插座, 避免停机, 防爆电机)
    | _words("防 防止 预防 避免 以防 防范 prevent prevents preventing avoid avoiding")
)
_BREAKERS = frozenset(
    _words(", . ; : ! ? ， 。 ； ： ！ ？ … ~ ～ 但 但是 可是 不过 却 而是 而且 并且 导致 所以")
    | _words("因此 结果 然后 后来 之后 以后 现在 又 就 才 还是 只是 是 为什么 为啥 怎么 因为 由于")
    | _words("but however though although and so then now because after since until instead just")
)
_WINDOW = 3
#: 没/没有/无 name an absence: across a gap they deny a term only over these (没有完全停机)
_EXISTENTIAL = frozenset(_words("没 没有 无 也没 也没有 都没 都没有 还没 还没有"))
_ADVERBS = frozenset(
    _words("完全 全 全部 都 也 还 突然 真的 彻底 再 一直 直接 怎么 有 马上 立刻 及时 自动 当场")
    | _words("一下 过 出现 发生 任何 一台 一条 哪台 真")
)


def classify(text: str) -> Reading:
    """Read one chat message: fault or not, priority, category, what it is about, and how
    sure each of those is."""
    norm = normalize(text)
    spans = token_spans(norm)
    rules = read_rules(norm, spans)
    probs = intake_model.load().predict(
        intake_model.features(norm, (tok for tok, _, _ in spans), rules.facts)
    )
    return decide(norm, spans, rules, probs)


@dataclass(frozen=True, slots=True)
class Rules:
    """What the exact rules found in one message; ``facts`` are their features for the model."""

    facts: frozenset[str]
    is_report: bool
    only_negated: bool  # symptoms named, every one denied, nothing else wrong
    stop_denied: bool  # a stop named and denied, no stop or hazard affirmed
    running: bool  # still runs or slight (还在生产, 有点), no stop, hazard or outage affirmed
    level: int  # the rules' priority, 0..3
    category: Category
    safety: bool  # a safety term, not negated (gas next to pneumatics is air)
    urgent: bool
    calm: bool
    device_code: str | None
    code_confidence: float
    device: str | None
    device_name: str | None
    location: str | None
    alarm_code: str | None


def read_rules(norm: str, spans: list[tuple[str, int, int]]) -> Rules:
    """The rule reader: lexicon hits with negation scope, asset tags, alarm codes, places."""
    hits = _hits(norm, spans)
    pos = [h for h in hits if not h.negated]
    kinds = {h.term.kind for h in pos}
    subjects = [h.term for h in hits if h.term.kind in ("device", "topic")]
    location, line_place = extract.location(norm)
    device_code, code_confidence = extract.device_code(norm)
    named, code_type = extract.named_device(norm)
    if code_type is not None and "generic" not in code_type.flags:
        subjects.insert(0, code_type)  # 3号注塑机 → 注塑机; but 5号机台液压站 → 液压站
    alarm_code = extract.alarm(norm)
    air = any("air" in t.flags for t in subjects)

    has_symptom = bool(kinds & _SYMPTOMS) or alarm_code is not None
    info_question = "question" in kinds
    question = info_question or (bool(subjects) and ("?" in norm or "？" in norm))
    request = "request" in kinds
    is_report = has_symptom or request or question
    safety = "safety" in kinds or ("gas" in kinds and not air)

    # The product's definitions: P0 production stopped or a hazard; P1 impaired (intermittent,
    # a workaround, lost redundancy) or urged; P2 a normal fault or a recovered incident.
    level = 2 if alarm_code else 3  # a bare alarm code is a fault
    minor_only = bool(subjects) and all("minor" in t.flags for t in subjects)
    line_down = "scope" in kinds or (("line" in kinds or line_place) and not subjects)
    if has_symptom:
        for h in pos:
            match h.term.kind:
                case "safety" | "linestop":
                    level = 0
                case "gas":
                    level = min(level, 2 if air else 0)
                case "down":
                    stop = 2 if minor_only else 1 if "intermittent" in kinds else 0
                    level = min(level, 0 if line_down else stop)
                case "intermittent":
                    level = min(level, 1)
                case "degraded":
                    level = min(level, 2)
        if level == 2 and kinds & {"workaround", "redundancy", "impact"}:
            level = 1  # still running, but impaired
        if level < 2 and "recovered" in kinds and not kinds & {"safety", "chase"}:
            level = 2  # over now: a root cause is what is asked
    urgent = any(h.term.kind == "urgent" for h in pos)
    calm = any(
        (h.term.kind == "calm" and not h.negated) or (h.term.kind == "urgent" and h.negated)
        for h in hits
    )
    if is_report:
        level = min(level, 1) if urgent and level > 1 else level
        level = min(3, level + calm) if level > 0 else level

    if not is_report:
        category = Category.OTHER
    elif safety:
        category = Category.SAFETY
    elif not has_symptom and question and (info_question or not request):
        category = Category.CONSULTATION
    else:
        machine = alarm_code or device_code or named or "linestop" in kinds
        fallback = machine or (line_down and "down" in kinds)
        category = _weigh(hits, air) or (Category.EQUIPMENT_FAILURE if fallback else Category.OTHER)

    facts = {f"r:P{level}", f"r:{category.value}", f"r:report{int(is_report)}"}
    for h in hits:
        mark = "!" if h.negated else ""
        facts.add(f"k:{mark}{h.term.kind}")
        facts.update(f"f:{mark}{h.term.kind}:{flag}" for flag in h.term.flags)
        if h.term.hint is not None:
            facts.add(f"h:{mark}{h.term.hint.value}")
    facts.update(
        name
        for name, present in (
            ("x:safety", safety),
            ("x:air", air),
            ("x:line_down", line_down),
            ("x:minor_only", minor_only),
            ("x:alarm", alarm_code is not None),
            ("x:tag", device_code is not None),
            ("x:named", named is not None),
            ("x:place", location is not None),
            ("x:line_place", line_place),
            ("x:question", "?" in norm or "？" in norm),
            ("x:exclaim", "!" in norm or "！" in norm),
            ("x:urgent", urgent),
            ("x:calm", calm),
        )
        if present
    )
    negated = {h.term.kind for h in hits if h.negated}
    return Rules(
        facts=frozenset(facts),
        is_report=is_report,
        only_negated=bool(negated & _SYMPTOMS)
        and not has_symptom
        and not kinds & {"request", "question", "hazard", "chase", "cosmetic"},
        stop_denied=bool(negated & {"down", "linestop"})
        and not kinds & {"down", "linestop", "safety", "gas", "hazard", "scope"},
        running="running" in kinds and not kinds & _STOPS and level > 0,
        level=level,
        category=category,
        safety=safety,
        urgent=urgent,
        calm=calm,
        device_code=device_code,
        code_confidence=code_confidence,
        device=_device(subjects),
        device_name=named,
        location=location,
        alarm_code=alarm_code,
    )


def decide(
    norm: str,
    spans: list[tuple[str, int, int]],
    rules: Rules,
    probs: dict[str, dict[str, float]],
    p0_threshold: float = P0_THRESHOLD,
    running_threshold: float = RUNNING_P0_THRESHOLD,
) -> Reading:
    """The reading from the rules and the model's probabilities.

    The model decides whether this is a report, its priority and category; the exact rules
    win where they are exact: a safety term that is not negated is a P0 safety report. A
    report is P0 when the model gives P0 at least ``p0_threshold`` (a missed stoppage costs
    more than a manager's second look; cross-validation tries other thresholds), or
    ``running_threshold`` when the message says the machine still runs or the fault is slight
    and affirms no stop, hazard or outage."""
    p_report = probs["report"]["yes"]
    if rules.only_negated and p_report < NEGATED_REPORT:
        p_report = min(p_report, 0.49)  # "没漏油，也没冒烟": every symptom named is denied
    is_report = p_report >= 0.5 or rules.safety
    prio = dict(probs["priority"])
    if rules.stop_denied:  # "isn't down, just noisy": the stop is denied, so not P0
        prio["P0"] = 0.0
    if rules.safety:
        priority, p_priority = Priority.P0, max(prio["P0"], 0.9)
    elif not is_report:
        priority, p_priority = Priority.P3, 1.0 - p_report
    elif prio["P0"] >= (running_threshold if rules.running else p0_threshold):
        priority, p_priority = Priority.P0, prio["P0"]
    else:
        best = max(("P1", "P2", "P3"), key=prio.__getitem__)
        priority, p_priority = Priority(best), prio[best]
    cats = probs["category"]
    if rules.safety:
        category, p_category = Category.SAFETY, max(cats["safety"], 0.9)
    else:
        best = max(cats, key=cats.__getitem__)
        category, p_category = Category(best), cats[best]
    p_followup = probs["followup"]["yes"]
    return Reading(
        is_fault_report=is_report,
        priority=priority,
        category=category,
        device_code=rules.device_code,
        location=rules.location,
        device=rules.device,
        device_name=rules.device_name,
        alarm_code=rules.alarm_code,
        title=headline(norm, spans),
        language=detect_language(norm),
        evidence=rules.is_report or rules.safety,
        followup=is_report and p_followup >= 0.5,
        urgent=rules.urgent,
        confidence=Confidence(
            report=max(p_report, 1.0 - p_report) if not rules.safety else max(p_report, 0.9),
            priority=p_priority,
            category=p_category,
            device_code=rules.code_confidence,
            followup=max(p_followup, 1.0 - p_followup),
        ),
    )


def _hits(norm: str, spans: list[tuple[str, int, int]]) -> list[_Hit]:
    ends = [end for _, _, end in spans]
    hits: list[_Hit] = []
    for m in _MATCHER.finditer(norm):
        term = TERMS[m.group().lower()]
        i = bisect_right(ends, m.start())  # the token the match starts in
        if len(m.group()) == 1 and not m.group().isascii() and i < len(spans):
            tok = spans[i][0]
            if tok != m.group() and is_word(tok):  # 门 in 部门, 卡 in 刷卡
                continue
        negated = term.kind in _NEGATABLE and _negated(norm, spans, i, m.start())
        hits.append(_Hit(term, m.start(), negated))
    return hits


def _negated(norm: str, spans: list[tuple[str, int, int]], i: int, start: int) -> bool:
    if i < len(spans) and spans[i][1] < start and norm[spans[i][1] : start] in _NEGATORS:
        return True  # the negator is glued into the token, e.g. 没漏
    for dist, j in enumerate(range(i - 1, max(-1, i - 1 - _WINDOW), -1), 1):
        tok = spans[j][0].lower()
        if tok in _BREAKERS:
            return False
        if tok in _NEGATORS or tok.endswith("n't"):
            if tok == "不" and (dist > 1 or norm[start] == "不"):
                continue  # 不知道为什么停机: 不 negates only what follows it; 不 不工作 stutters
            if tok in _EXISTENTIAL and any(spans[g][0] not in _ADVERBS for g in range(j + 1, i)):
                continue  # 没蒸汽全停了: 没 denies the steam, not the stop
            if tok == "no" and j + 1 < len(spans) and spans[j + 1][0][:1] in "0123456789.":
                continue  # "No. 3 compressor" is a number
            return True
    return False


def _weigh(hits: list[_Hit], air: bool) -> Category | None:
    score: dict[Category, list[int]] = {}
    for h in hits:
        kind, hint = h.term.kind, h.term.hint
        if kind == "gas" and air:
            hint = Category.EQUIPMENT_FAILURE
        # IT symptoms (断网, 登录不了) name their field; 停机 or 漏水 could be anything
        symptom = 0 if h.negated else 2 if hint in _IT else 1
        weight = 2 if kind in ("device", "topic") else symptom
        if hint is not None and weight:
            entry = score.setdefault(hint, [0, -h.start])
            entry[0] += weight
    return max(score, key=lambda c: score[c]) if score else None


def _device(subjects: list[Term]) -> str | None:
    devices = [t for t in subjects if t.kind == "device"]
    ranked = sorted(devices, key=lambda t: ("part" in t.flags) + 2 * ("generic" in t.flags))
    return ranked[0].display if ranked else None  # sorted() is stable: earliest of a rank
