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

__all__ = ["Reading", "classify"]

LEXICON = Path(__file__).with_name("data") / "lexicon.tsv"
_HINTS = {"equipment_failure", "network_it", "software_config", "facility"}
_KINDS = {"safety", "gas", "linestop", "scope", "line", "down", "intermittent", "degraded",
          "urgent", "calm", "request", "question", "greeting", "device", "topic"}  # fmt: skip
_SYMPTOMS = {"safety", "gas", "linestop", "down", "intermittent", "degraded"}
_NEGATABLE = _SYMPTOMS | {"urgent", "calm", "request", "question", "scope"}
_FLAGS = {"part", "generic", "minor", "air"}
_IT = {Category.NETWORK_IT, Category.SOFTWARE_CONFIG}
_PRIORITIES = (Priority.P0, Priority.P1, Priority.P2, Priority.P3)


@dataclass(frozen=True, slots=True)
class Reading:
    is_fault_report: bool
    priority: Priority
    category: Category
    device_code: str | None
    location: str | None
    device: str | None
    alarm_code: str | None
    title: str
    language: str

    def as_json(self, id: str | int | None) -> dict[str, object]:
        return {
            "id": id,
            "is_fault_report": self.is_fault_report,
            "priority": self.priority.value,
            "category": self.category.value,
            "device_code": self.device_code,
            "location": self.location,
            "device": self.device,
            "alarm_code": self.alarm_code,
            "title": self.title,
            "language": self.language,
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
_CODE_RES = (
    (re.compile(rf"(?<![A-Za-z0-9])(?P<num>{_NUM})\s*(?P<sep>号|#)\s*(?P<type>{_TYPE})", re.I),
     "numbered"),
    (re.compile(rf"(?P<type>{_TYPE})\s*(?P<num>\d{{1,4}})\s*(?P<sep>号|#)", re.I), "numbered"),
    (re.compile(rf"(?P<type>{_TYPE})\s*(?P<sep>#)\s*(?P<num>\d{{1,4}})(?!\d)", re.I), "numbered"),
    (re.compile(rf"(?<![a-z0-9])(?P<tag>{_EN_TYPE}\s*(?:#\s*|no\.?\s*)?\d{{1,4}})(?![a-z0-9])",
                re.I), "english"),
    (re.compile(rf"(?<![a-z0-9])(?P<tag>(?:#\s*|no\.?\s*)\d{{1,4}}\s+{_EN_TYPE})(?![a-z0-9])",
                re.I), "english"),
    (re.compile(r"(?<![A-Za-z0-9-])(?P<tag>[A-Za-z]{1,6}\d{0,3}(?:[-_][A-Za-z0-9]{1,6}){1,4}|"
                r"(?:CNC|PLC|AGV|UPS|VFD|AC)\d{1,4}[A-Z]?)(?![A-Za-z0-9-])", re.I), "tag"),
)  # fmt: skip
_NOT_TAG = re.compile(r"^(?:e|err|al|alm|alarm|flt|f|line|building|bldg|floor|room)[-_]", re.I)
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
    """Read one chat message: fault or not, priority, category and what it is about."""
    norm = normalize(text)
    spans = token_spans(norm)
    hits = _hits(norm, spans)
    pos = [h for h in hits if not h.negated]
    kinds = {h.term.kind for h in pos}
    subjects = [h.term for h in hits if h.term.kind in ("device", "topic")]
    location, line_place = _location(norm)
    device_code, code_type = _device_code(norm)
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

    level = 2 if alarm_code else 3  # a bare alarm code is a degraded machine
    minor_only = bool(subjects) and all("minor" in t.flags for t in subjects)
    calm_down = "intermittent" in kinds or minor_only
    line_down = "scope" in kinds or (("line" in kinds or line_place) and not subjects)
    if has_symptom:
        for h in pos:
            match h.term.kind:
                case "safety" | "linestop":
                    level = 0
                case "gas":
                    level = min(level, 2 if air else 0)
                case "down":
                    level = min(level, 0 if line_down else 2 if calm_down else 1)
                case "degraded" | "intermittent":
                    level = min(level, 2)
    if is_report:
        urgent = any(h.term.kind == "urgent" for h in pos)
        calm = any(
            (h.term.kind == "calm" and not h.negated) or (h.term.kind == "urgent" and h.negated)
            for h in hits
        )
        level = max(0, min(3, level - urgent + calm))

    if not is_report:
        category = Category.OTHER
    elif safety:
        category = Category.SAFETY
    elif not has_symptom and question and (info_question or not request):
        category = Category.CONSULTATION
    else:
        machine = alarm_code or device_code or "linestop" in kinds
        fallback = machine or (line_down and "down" in kinds)
        category = _weigh(hits, air) or (Category.EQUIPMENT_FAILURE if fallback else Category.OTHER)

    return Reading(
        is_fault_report=is_report,
        priority=_PRIORITIES[level],
        category=category,
        device_code=device_code,
        location=location,
        device=_device(subjects),
        alarm_code=alarm_code,
        title=headline(norm, spans),
        language=detect_language(norm),
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


def _device_code(norm: str) -> tuple[str | None, _Term | None]:
    """(the first numbered machine or asset tag, its machine type when the lexicon knows it)."""
    found: list[tuple[int, str, _Term | None]] = []
    for rx, mode in _CODE_RES:
        for m in rx.finditer(norm):
            if mode == "numbered":
                num, kind = cn_number(m.group("num")), m.group("type")
                if num is None:
                    continue
                code = f"{num}{m.group('sep')}{kind}"
            else:
                code = m.group("tag")
                if mode == "tag":
                    if not any(c.isdigit() for c in code) or _NOT_TAG.match(code):
                        continue
                    code = code.upper()
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
