"""What a message names: an asset tag or serial, a numbered machine, an alarm code, a place.

- ``device_code``: an explicit tag or serial as written, after a label (``SN: KX2024-0087``,
  ``设备编号ZJ-0312``, ``asset tag HVAC-2F-07``) or standing alone with letters, digits and a
  dash (``CNC-07``, ``AC-3F-02``); never an alarm code, an order, ticket or phone number, a
  line name or an ordinal name. Its confidence is how often such a find was right on the
  labelled data.
- ``named_device``: the first machine named with a number ("三号注塑机" → "3号注塑机",
  "2#空压机", "注塑机3号" → "3号注塑机", "compressor 2"), with its lexicon type.
- ``alarm``: the code after 报警/故障码/alarm/error, or a bare E102/ALM-21/F0001 (upper-case).
- ``location``: the first run of adjacent places ("二车间B线", "B栋3楼", "A区", "Line 2",
  "Building 5"), and whether that run names a production line.
"""

from __future__ import annotations

import re

from bot.nlp.lexicon import TERMS, Term
from bot.nlp.text import cn_number, word_pattern

__all__ = [
    "BARE_CODE_CONFIDENCE",
    "LABELLED_CODE_CONFIDENCE",
    "NO_CODE_CONFIDENCE",
    "alarm",
    "device_code",
    "location",
    "named_device",
]

#: How often a tag found after a label (SN:, 编号), standing alone, or no tag at all was right
#: on the train and dev splits: the device code's confidence.
LABELLED_CODE_CONFIDENCE = 0.98
BARE_CODE_CONFIDENCE = 0.9
NO_CODE_CONFIDENCE = 0.97

_NUM = r"(?:\d{1,4}|[零〇一二两三四五六七八九十百]{1,4})"
_DEVICES = [key for key, t in TERMS.items() if t.kind == "device"]
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


def device_code(norm: str) -> tuple[str | None, float]:
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


def named_device(norm: str) -> tuple[str | None, Term | None]:
    """(the first machine named with a number, "3号注塑机" / "compressor 2", its lexicon type)."""
    found: list[tuple[int, str, Term | None]] = []
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
            term = TERMS.get(kind.lower())
            found.append((m.start(), code, term if term and term.kind == "device" else None))
            break
    if not found:
        return None, None
    _, code, term = min(found, key=lambda f: f[0])
    return code, term


def alarm(norm: str) -> str | None:
    for rx in _ALARM_RES:
        m = rx.search(norm)
        if m:
            return m.group("code").upper()
    return None


def location(norm: str) -> tuple[str | None, bool]:
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
