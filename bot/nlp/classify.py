"""First, negation-aware keyword reading of a customer's chat message (Chinese and English).

``classify(text)`` runs on every incoming text and behind ``gongdan classify``. It is a rule
reader, not a model: the vocabulary lives in ``data/lexicon.tsv`` (kind, hint, terms) and the
rules below. The text is NFKC-normalised first (full-width ``３号``/``ＣＮＣ－０７`` become ASCII).

Matching. Terms match case-insensitively, longest first, Latin terms as whole words only; a
one-character Chinese term (急, 门, 灯) counts only where jieba does not make it part of a
longer dictionary word (门卫, 部门, 刷卡).

Negation. A symptom, request or urgency term is void when, in the same clause, one of the 3
tokens before it is a negator (没 没有 无 未 不是 并非 不会 不再 …, no not never without
none and any ``…n't``; 不 only right before it). Clauses end at punctuation and at words such
as 但(是) 就 导致 为什么 / but and so because, so "没有冒烟，但是空压机停机了" keeps the stop.
Fault phrases that contain a negator (不转 不动 不启动 没反应 无法启动 won't start, doesn't
work, not working, no power) are terms of their own, matched before any negation test.

Priority (most severe positive term wins, then urgency):

* P0: safety (fire, 冒烟/起火/着火, 漏电/触电, 受伤, 燃气/漏气, explosion) or a whole line or
  plant stopped (停产, 停线, 全线停产, line down; a down term with 全线/整条线/全厂/whole
  plant; or a down term about a line such as "3号线"/"产线"/"Line 2" with no machine named).
  漏气 next to pneumatic equipment (空压机, 气缸, air hose) is an air leak, P2, not gas.
* P1: down (停机 停了 不转 宕机 死机 坏了 跳闸 断网 停电, down stopped broken won't start…).
  Down is only P2 when intermittent (偶尔 时好时坏 sometimes) or when every asset named is a
  minor office/comfort one (打印机 电脑 空调 灯 门, printer, laptop, lights).
* P2: degraded but working (异响 漏油 漏水 过热 振动 慢 报警 故障 连不上, noisy leaking
  overheating alarm error intermittent).
* P3: questions, service requests, minor things, and everything that is not a fault report.
* Urgency (紧急 马上 急 尽快, urgent asap immediately) raises one level, never above P0; calm
  words (不急 有空 慢慢来, not urgent, no rush) and negated urgency lower one, never below P3.

Category: ``safety`` whenever a positive safety term is present. Otherwise a pure question is
``consultation``: no symptom, and a question word (请问 怎么 多久 how what), or a "?" after
something named without a request word (a polite "能不能派人来看看3号机？" is a request). Otherwise
the category with the most weight wins, earliest mention on a tie: every device or topic
named weighs 2 (注塑机/CNC → equipment_failure; 交换机 服务器 打印机 网络 wifi VPN email →
network_it; 系统 软件 参数 账号 密码 MES ERP login → software_config; 空调 灯 门 电梯 水管
toilet HVAC → facility), a positive symptom with a hint weighs 1 (停机 → equipment, 漏水 →
facility) or 2 for IT symptoms, whose words name their field (断网 → network, 登录不了 →
software). Nothing weighed: ``other``, or ``equipment_failure`` when there is a device code,
an alarm code or a stopped line ("3号机停了", "E102", "3号线停了").

``is_fault_report`` is True for anything to ticket: a positive symptom (an alarm code alone
counts as P2), a service request (保养 维修 派人 安装 重置, repair, install …) or a question
as above. It is False for empty text,
greetings, thanks and acknowledgements (你好 谢谢 收到 好的 ok), and for text that names no
problem at all ("3号注塑机", "没有漏油"); such readings are always P3 / ``other``.

Extraction: ``device_code`` is the first numbered machine ("三号注塑机" → "3号注塑机",
"2#空压机", "注塑机3号" → "3号注塑机", "compressor 2") or asset tag ("CNC-07", "AC-3F-02");
``location`` the first run of adjacent places ("二车间B线", "B栋3楼", "A区", "Line 2",
"Building 5"); ``device`` the machine type (a machine before a part before 机器/设备);
``alarm_code`` the code after 报警/故障码/alarm/error or a bare E102/ALM-21/F0001 (upper-case);
``title`` the message without greetings, mentions, trailing 了/particles/thanks, ≤ 40 chars
(cut after a whole clause, else at a word with "…").
``language`` is "zh" when Han characters are at least as many as English words.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

from bot.nlp import intake_model
from bot.nlp.text import (
    cn_number,
    detect_language,
    headline,
    is_word,
    normalize,
    token_spans,
    word_pattern,
)
from bot.tickets import Category, Priority

__all__ = ["Confidence", "Reading", "Rules", "classify", "decide", "read_rules"]

LEXICON = Path(__file__).with_name("data") / "lexicon.tsv"
_HINTS = {"equipment_failure", "network_it", "software_config", "facility"}
_KINDS = {"safety", "gas", "linestop", "scope", "line", "down", "intermittent", "degraded",
          "urgent", "calm", "request", "question", "greeting", "device", "topic",
          "recovered", "workaround", "redundancy", "impact", "fyi", "cosmetic", "chase",
          "business", "hotline", "hazard"}  # fmt: skip
_SYMPTOMS = {"safety", "gas", "linestop", "down", "intermittent", "degraded"}
_NEGATABLE = _SYMPTOMS | {"urgent", "calm", "request", "question", "scope", "impact", "recovered",
                          "hazard"}  # fmt: skip
_FLAGS = {"part", "generic", "minor", "air"}
_IT = {Category.NETWORK_IT, Category.SOFTWARE_CONFIG}
_PRIORITIES = (Priority.P0, Priority.P1, Priority.P2, Priority.P3)


#: A report is P0 when the model gives P0 at least this (chosen by 5-fold cross-validation on
#: train + dev: recall of P0 against macro-F1).
P0_THRESHOLD = 0.25
#: A message whose every symptom is denied is a report only when the model is this sure.
NEGATED_REPORT = 0.9
#: How often a tag found after a label (SN:, 编号), standing alone, or no tag at all was right
#: on the train and dev splits: the device code's confidence.
LABELLED_CODE_CONFIDENCE = 0.98
BARE_CODE_CONFIDENCE = 0.9
NO_CODE_CONFIDENCE = 0.97


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
class _Term:
    kind: str
    display: str
    hint: Category | None
    flags: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Hit:
    term: _Term
    start: int
    negated: bool


def _load_lexicon(path: Path) -> dict[str, _Term]:
    terms: dict[str, _Term] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        kind, attrs, words = raw.split("\t")
        flags = frozenset(a for a in attrs.split(",") if a != "-")
        hints = flags & _HINTS
        if kind not in _KINDS or len(hints) > 1 or flags - _HINTS - _FLAGS:
            raise ValueError(f"{path.name}:{lineno}: bad kind or attributes")
        hint = Category(next(iter(hints))) if hints else None
        for word in words.split("|"):
            key = normalize(word).lower()
            if not key or key in terms:
                raise ValueError(f"{path.name}:{lineno}: empty or repeated term {word!r}")
            terms[key] = _Term(kind, word, hint, flags - _HINTS)
    return terms


def _words(spaced: str) -> set[str]:
    return set(spaced.split())


_TERMS = _load_lexicon(LEXICON)
_MATCHER = re.compile(word_pattern(list(_TERMS)), re.IGNORECASE)

_NEGATORS = frozenset(
    _words("没 没有 无 未 不 不是 并非 非 别 并没有 并没 并不 并无 毫无 暂无 尚未 从未 从没 从来没")
    | _words("从来没有 没再 不再 不会 未见 不曾 也没 也没有 都没 都没有 还没 还没有 无任何")
    | _words("no not never without none nothing nor neither cannot hardly")
)
_BREAKERS = frozenset(
    _words(", . ; : ! ? ， 。 ； ： ！ ？ … ~ ～ 但 但是 可是 不过 却 而是 而且 并且 导致 所以")
    | _words("因此 结果 然后 后来 之后 以后 现在 又 就 才 还是 只是 是 为什么 为啥 怎么 因为 由于")
    | _words("but however though although and so then now because after since until instead just")
)
_WINDOW = 3

_NUM = r"(?:\d{1,4}|[零〇一二两三四五六七八九十百]{1,4})"
_DEVICES = [key for key, t in _TERMS.items() if t.kind == "device"]
_ZH_TYPES = [k for k in _DEVICES if not k.isascii()] + ["cnc", "plc", "agv", "ups", "机台"]
_TYPE = "(?:" + word_pattern(_ZH_TYPES) + "|机(?![房场构关会器])|炉)"
_EN_TYPE = word_pattern([k for k in _DEVICES if k.isascii()])
_NAMED_RES = (
    (re.compile(rf"(?<![A-Za-z0-9])(?P<num>{_NUM})\s*(?P<sep>号|#)\s*(?P<type>{_TYPE})", re.I),
     "numbered"),
    (re.compile(rf"(?P<type>{_TYPE})\s*(?P<num>\d{{1,4}})\s*(?P<sep>号|#)", re.I), "numbered"),
    (re.compile(rf"(?P<type>{_TYPE})\s*(?P<sep>#)\s*(?P<num>\d{{1,4}})(?!\d)", re.I), "numbered"),
    (re.compile(rf"(?<![a-z0-9])(?P<tag>{_EN_TYPE}\s*(?:#\s*|no\.?\s*)?\d{{1,4}})(?![a-z0-9])",
                re.I), "english"),
    (re.compile(rf"(?<![a-z0-9])(?P<tag>(?:#\s*|no\.?\s*)\d{{1,4}}\s+{_EN_TYPE})(?![a-z0-9])",
                re.I), "english"),
)  # fmt: skip
# An asset tag or serial: after a label (SN: KX2024-0087, 设备编号ZJ-0312, asset tag HVAC-2F-07)…
_CODE = r"[A-Za-z0-9](?:[A-Za-z0-9]|[-_/.](?=[A-Za-z0-9]))*"
_LABELLED_CODE = re.compile(
    r"(?:(?<![A-Za-z0-9])(?:s\s*/\s*n|sn|p/n|serial(?:\s*(?:no\.?|number|num|#))?|asset(?:\s*(?:tag|no\.?|"
    r"number|id|code|#))?|tag(?:\s*(?:no\.?|#))?|equipment\s*(?:id|no\.?|code)|device\s*(?:id|"
    r"no\.?|code)|machine\s*(?:id|no\.?|code)|unit\s*(?:id|no\.?))|序列号|出厂编号|机身编号|出厂号"
    r"|设备编号|资产编号|资产号|资产标签|设备号|设备码|机器编号|机台编号|铭牌号|机号|编号|编码|SN码|S/N码)"
    rf"\s*(?:是|为|:|：|#|=)?\s*(?P<code>{_CODE})",
    re.I,
)
# … or standing alone with letters, digits and a dash (CNC-07, AC-3F-02, HVAC-2F-07).
_BARE_CODE = re.compile(
    r"(?<![A-Za-z0-9_/.#-])(?P<code>[A-Za-z]{1,8}\d*(?:[-_][A-Za-z0-9]{1,10}){1,4})"
    r"(?![A-Za-z0-9_/#-]|\.[A-Za-z0-9])"
)
_NOT_CODE = re.compile(
    r"^(?:e|er|err|error|al|alm|alarm|alert|flt|fault|f|code|gd|po|so|wo|pr|rma|inv|order|ticket"
    r"|case|line|building|bldg|floor|room|rev|ver|v|iso|rs|cat|usb|wi|e-mail|covid|sars|ip|tel"
    r"|mob|no|mp|pm|am|p|g|h|k|ip|ie|ex|ul|ce|gb|din|en|iec|jis)[-_]",
    re.I,
)
_CODE_CONTEXT = re.compile(
    r"(?:报警|警报|告警|故障码|故障代码|错误码|错误代码|报错|代码|提示|显示|订单|单号|工单|采购单|合同|电话"
    r"|手机|alarm|error|err|fault|code|order|po|ticket|case|ref|phone|tel|call)\s*(?:号|码)?\s*"
    r"(?:是|为|:|：|#|no\.?)?\s*$",
    re.I,
)
_ALARM_RES = (
    re.compile(r"(?:报警|警报|告警|故障码|故障代码|错误码|错误代码|报错|代码|alarm|error|err|fault|code)"
               r"\s*(?:code|码|代码|号|信息|提示)?\s*[:#]?\s*(?:是|为|显示)?\s*"
               r"(?P<code>[A-Za-z]{0,5}-?\d{1,5}[A-Za-z]?)(?![A-Za-z0-9号#])", re.I),
    re.compile(r"(?<![A-Za-z0-9-])(?P<code>(?:ERR|ALM|ALARM|FLT|AL|E|F)-?\d{2,5}[A-Za-z]?)"
               r"(?![A-Za-z0-9-])", re.I),
)  # fmt: skip
_PLACE_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:第?(?:\d{1,3}|[一二三四五六七八九十两]{1,3})|[A-Za-z])\s*号?"
    r"(?:车间|厂房|厂区|仓库|库房|栋|幢|楼|区|产线|线|工段|工位)"
    r"|(?<![A-Za-z0-9-])\d{1,2}F(?![A-Za-z0-9-])"
    r"|(?:注塑|冲压|焊装|焊接|总装|装配|机加|喷涂|涂装|包装|组装|成型|压铸|锻造|铸造|热处理|电镀"
    r"|成品|原料|原材料|半成品|备件|配件|五金|模具|SMT|加工)(?:车间|仓库|厂房|线|区)"
    r"|(?<![A-Za-z0-9])(?:line|building|bldg\.?|workshop|plant|hall|warehouse|floor|zone|area"
    r"|bay|dock|room|cell|block)\s*(?:no\.?\s*|#\s*)?(?:\d{1,3}|(?-i:[A-Z]))(?![A-Za-z0-9])"
    r"|(?<![A-Za-z0-9])(?:\d{1,2}(?:st|nd|rd|th)|ground|first|second|third|top)\s+floor\b",
    re.I,
)  # fmt: skip
_BARE_PLACE_RE = re.compile(
    r"车间|厂房|厂区|仓库|库房|机房|配电房|配电室|办公室|会议室|食堂|宿舍|实验室|质检室"
    r"|\b(?:workshop|warehouse|server room|office)\b", re.I
)  # fmt: skip
_PLACE_GAP = re.compile(r"[\s,，]{0,2}")


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
    location, line_place = _location(norm)
    device_code, code_confidence = _device_code(norm)
    named, code_type = _named_device(norm)
    if code_type is not None and "generic" not in code_type.flags:
        subjects.insert(0, code_type)  # 3号注塑机 → 注塑机; but 5号机台液压站 → 液压站
    alarm_code = _alarm(norm)
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
) -> Reading:
    """The reading from the rules and the model's probabilities.

    The model decides whether this is a report, its priority and category; the exact rules
    win where they are exact: a safety term that is not negated is a P0 safety report. A
    report is P0 when the model gives P0 at least ``P0_THRESHOLD`` (a missed stoppage costs
    more than a manager's second look)."""
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
    elif prio["P0"] >= P0_THRESHOLD:
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
        term = _TERMS[m.group().lower()]
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
            if tok == "不" and dist > 1:
                continue  # 不知道为什么停机: 不 negates only what follows it
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


def _device(subjects: list[_Term]) -> str | None:
    devices = [t for t in subjects if t.kind == "device"]
    ranked = sorted(devices, key=lambda t: ("part" in t.flags) + 2 * ("generic" in t.flags))
    return ranked[0].display if ranked else None  # sorted() is stable: earliest of a rank


def _device_code(norm: str) -> tuple[str | None, float]:
    """(the first explicit asset tag or serial as written, how sure that is).

    Not alarm codes, order, ticket or phone numbers, line names or ordinal names (3号线,
    2号空压机): those are places and names, not tags."""
    labelled = [
        m
        for m in _LABELLED_CODE.finditer(norm)
        if any(c.isdigit() for c in m.group("code"))
        and not _NOT_CODE.match(m.group("code"))
        and not _CODE_CONTEXT.search(norm, max(0, m.start() - 12), m.start())
    ]
    bare = [
        m
        for m in _BARE_CODE.finditer(norm)
        if any(c.isdigit() for c in m.group("code"))
        and not _NOT_CODE.match(m.group("code"))
        and not _CODE_CONTEXT.search(norm, max(0, m.start() - 12), m.start())
    ]
    found = sorted(
        [(m.start("code"), m.group("code"), LABELLED_CODE_CONFIDENCE) for m in labelled]
        + [(m.start("code"), m.group("code"), BARE_CODE_CONFIDENCE) for m in bare],
        key=lambda f: (f[0], -f[2]),  # a labelled tag over the same tag standing alone
    )
    if not found:
        return None, NO_CODE_CONFIDENCE
    _, code, confidence = found[0]
    return code.rstrip("._-/"), confidence


def _named_device(norm: str) -> tuple[str | None, _Term | None]:
    """(the first machine named with a number, "3号注塑机" / "compressor 2", its lexicon type)."""
    found: list[tuple[int, str, _Term | None]] = []
    for rx, mode in _NAMED_RES:
        for m in rx.finditer(norm):
            if mode == "numbered":
                num, kind = cn_number(m.group("num")), m.group("type")
                if num is None:
                    continue
                code = f"{num}{m.group('sep')}{kind}"
            else:
                code = m.group("tag")
                kind = re.split(r"[-_\s#\d]", code, maxsplit=1)[0]
            term = _TERMS.get(kind.lower())
            found.append((m.start(), code, term if term and term.kind == "device" else None))
            break
    if not found:
        return None, None
    _, code, term = min(found, key=lambda f: f[0])
    return code, term


def _alarm(norm: str) -> str | None:
    for rx in _ALARM_RES:
        m = rx.search(norm)
        if m:
            return m.group("code").upper()
    return None


def _location(norm: str) -> tuple[str | None, bool]:
    """(the first run of adjacent places, whether that run names a production line)."""
    places = list(_PLACE_RE.finditer(norm))
    if not places:
        bare = _BARE_PLACE_RE.search(norm)
        return (bare.group(), False) if bare else (None, False)
    start, end = places[0].span()
    for m in places[1:]:
        if not _PLACE_GAP.fullmatch(norm, end, m.start()):
            break
        end = m.end()
    text = norm[start:end]
    is_line = any(
        p.group().endswith("线") or p.group().lower().startswith("line")
        for p in places
        if p.end() <= end
    )
    return text, is_line
