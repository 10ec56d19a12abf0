"""A structured diagnosis from an engineer's dictated field note (Chinese or English).

``diagnose(transcript)`` turns a transcribed note ("三号空压机停机，排气温度八十五度，怀疑冷却风扇
坏了，已经换了保险丝，要订一个风扇电机") into the card the engineer confirms with one tap. It is a
rule reader, not a model. Its words live in ``data/diagnosis_{parts,units,quantities,cues}.tsv``
(``_diagnosis_vocab``); symptom words also come from the intake's ``lexicon.tsv`` and the machine
from the intake's reading (``classify``). The note is NFKC-normalised, cut into clauses at
punctuation and 但是/but, and segmented by jieba with the domain dictionary; a one-character
Chinese cue (要 订 换 门) counts only as a jieba token of its own (``_diagnosis_note``).

Negation: a cue, symptom or fault word is void when one of the 3 tokens before it in its clause
is a negator (没 没有 无 未 不是 还没 …, no not never …n't; 不 only right before it), unless a
breaker (但 就 还是, but only still) comes first; 不需要/不用/无需/no need void every need, order
and replacement after them in the clause. So 没有漏油 is no symptom and 不需要换件 needs no part.

Fields:
* ``equipment``: the numbered machine (三号空压机 → 3号空压机, 2#空压机 → 2号空压机,
  Compressor 3), else its type (冷水机, 冷水机组, conveyor), else a jieba word ending in 机 that
  is no component (封口机); never a component (sensor, 电机).
* ``symptom``: the first fault phrase outside cause, action and plan clauses, led by the component,
  quantity or reading right before it (主轴异响, 露点偏高, 排烟温度二百一十度偏高 → 排烟温度偏高,
  spindle noise), never by the equipment itself. After the first clause a component with a fault
  (门机皮带松动) is taken as a cause, not as the complaint, when anything else qualifies.
* ``suspected_cause``: the clause of a cause cue (怀疑 可能是 检查发现 查到是, suspect probably
  found) without the cue and without the effect (油分堵塞导致负载高 → 油分堵塞); else the first
  other clause with a component and a fault word (门机皮带松动, relay K3 is bad); else a short
  clause ending in a fault word (blade loose).
* ``actions_taken``: clauses reporting work done: 已经/已 + … (not 已经安排…, a plan), a verb with
  了/过 (换了保险丝, 接好了), a verb with 后 (复位后恢复 → 复位), from an English past verb to the
  clause end (replaced the fuse, ordered from supplier); not passive clauses (节流阀被人调过).
* ``parts_needed``: what a need, order or still-to-do replacement cue (需要 要 订 采购 明天换,
  need order replace) points at in its clause: a counted thing (两个6206轴承, 一对闸瓦 = 2,
  2 pcs 6205 bearings, a new peel plate) or a known component (需要换电机 → 电机 × 1), or a
  component opening the clause before the cue (油封需要更换). Not parts already replaced or
  sent out for repair, nor people or time (两个人).
* ``measurements``: a number (85, 0.8, 八十五, 零点八, 一千二 = 1200, 负六十, 零下五) with a unit,
  named by the quantity word before it in its clause plus the position word before that
  (排气温度, A相电流, discharge temperature); else by a position word right before the number
  plus the unit's quantity (A相十二安 → A相电流, outlet water 7 C → outlet water temperature);
  else by the same kind of quantity word up to two clauses back (封口温度上不来，实际只有140度);
  else by the unit (八十五度 → 温度). A quantity word followed by a bare number takes its usual
  unit (电流为零 → 0 A, 振动降到二点三 → 2.3 mm/s). Ratings, usual values, set points and specs
  are not readings (额定九十安, 平时5 bar, 设定180度, 40 A rated, 六百三十安的断路器).
  Units: 度/摄氏度/°C/C/degrees → ℃; 兆帕 → MPa; 千帕 → kPa; bar, and 公斤 only after a pressure
  word (the gauge's kgf/cm², ≈ 0.98 bar, kept as the same number in bar; 五公斤油 is no
  reading); 安/安培/amps → A; 毫安 → mA; 伏 → V; 千伏 → kV; 转/转每分/r/min → rpm; 赫兹 → Hz;
  千瓦 → kW; 百分之N/percent → %; 毫米 → mm; 丝 → 0.01 mm; 毫米每秒 → mm/s; 兆欧/megohm → MΩ.
* ``next_step``: the first clause, not under way, with a plan, need, order, replacement or
  outside-service cue, without a leading modal (要订一个风扇电机 → 订一个风扇电机, need to
  order … → order …; 需要一根油管 keeps its 需要).

Suggested state, the first rule that applies:
1. ``third_party``: an outside-service cue (送检 送修 返厂 寄回 厂家 第三方 委外 公司来, vendor
   manufacturer OEM outside lab/shop RMA), unless its clause orders or asks a price (联系厂家订一个
   主板, 联系厂家报价: buying is waiting_parts).
2. ``waiting_parts``: an out-of-stock cue (仓库没有 没有库存 缺货 out of stock); or an order or
   waiting cue (订 采购 下单 已报采购 等配件 到货 厂家有货 on order ordered), or parts needed that
   are not being fitted right now (正在更换皮带), with no own-stock cue (仓库有 备件库有 有备件,
   in stock on hand stores have).
3. ``resolved``: a fixed cue (修好 恢复正常 试机正常 运行正常 正常了 问题解决 都没问题, fixed back
   to normal tested OK running normally back in service), or a clause ending in 正常 that is no
   reading (试焊正常, but not 油位正常 or 电压三百八十伏正常); never when temporary (暂时 临时
   for now).
4. ``repairing``: an in-progress cue (正在 马上 现在去 抢修, now in progress), or parts needed that
   are in stock.
5. ``diagnosing``: otherwise.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

from bot.nlp import _diagnosis_vocab as v
from bot.nlp._diagnosis_note import (
    Clause,
    Hit,
    Measurement,
    Note,
    Part,
    Reading,
    done_clause,
    measurements,
    parts_needed,
    supplied,
)
from bot.nlp.classify import classify
from bot.nlp.text import normalize
from bot.tickets import TicketState

__all__ = ["LOW_CONFIDENCE", "Diagnosis", "Measurement", "Part", "diagnose"]

#: Below this a field is shown with a "?" on the voice card: the reader is unsure.
LOW_CONFIDENCE = 0.6

_PLAN = ("next", "need", "order", "third", "replace")


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
    confidence: dict[str, float] = field(default_factory=dict, compare=False)
    """Per field, 0–1: how sure the rules are (see ``_confidence``); not part of equality."""

    def as_json(self) -> dict[str, object]:
        return {
            "equipment": self.equipment,
            "symptom": self.symptom,
            "suspected_cause": self.suspected_cause,
            "actions_taken": list(self.actions_taken),
            "parts_needed": [{"name": p.name, "qty": p.qty} for p in self.parts_needed],
            "measurements": [_measurement_json(m) for m in self.measurements],
            "next_step": self.next_step,
            "suggested_state": self.suggested_state,
            "confidence": dict(self.confidence),
            "unsure": [name for name, c in self.confidence.items() if c < LOW_CONFIDENCE],
        }


def _measurement_json(m: Measurement) -> dict[str, object]:
    out: dict[str, object] = {"quantity": m.quantity, "value": m.value, "unit": m.unit}
    if m.high is not None:
        out["high"] = m.high
    if m.approx:
        out["approx"] = True
    return out


def diagnose(transcript: str) -> Diagnosis:
    """Read one transcribed field note (see the module docstring for the rules)."""
    text = normalize(transcript)
    reading = classify(text)
    note = Note(text)
    equipment, note.device = _equipment(
        note, reading.device_name or reading.device_code, reading.device
    )
    note.equipment = equipment or ""
    for cl in note.clauses:
        _roles(note, cl)
    found = measurements(note)
    symptom, symptom_clause = _symptom(note, found)
    parts, fitting = parts_needed(note)
    cause = next((cl.cause for cl in note.clauses if cl.cause), None)
    state, state_confidence = _state(note, parts, fitting, found)
    d = Diagnosis(
        equipment=equipment,
        symptom=symptom,
        suspected_cause=cause or _component_fault(note, symptom_clause),
        actions_taken=tuple(cl.action for cl in note.clauses if cl.action),
        parts_needed=parts,
        measurements=tuple(m for _, _, m in found),
        next_step=next((_plan_text(note, cl) for cl in note.clauses if cl.plan), None),
        suggested_state=state,
    )
    d.confidence.update(_confidence(note, d, cause is not None, state_confidence))
    return d


def _confidence(note: Note, d: Diagnosis, cued_cause: bool, state: float) -> dict[str, float]:
    """How sure each field is, from how it was found (rules of thumb, not calibrated odds):

    * equipment: 0.9 a numbered machine (3号空压机), 0.7 a type, 0.5 none;
    * symptom 0.75, next step 0.7, actions 0.8 when found; a cause after a cue word (怀疑, 可能是)
      0.8, a component with a fault word 0.55; any of them 0.5 when none is found;
    * parts: the least sure part: 0.85 a part in the vocabulary (diagnosis_parts.tsv), 0.6 a
      counted thing it does not know (its name's edges may be off); no part: 0.85, or 0.5 when
      the note says something is needed, ordered or fetched;
    * measurements: the least sure reading: 0.9 named by a quantity word (排气温度), 0.7 by a
      position word or a modifier before the number (上层温度), 0.55 by its unit alone (温度);
      none: 0.85, or 0.5 when the note has a number with a unit that was not read;
    * suggested state: 0.9 a cue word decided it (厂家来修, 缺货, 订, 修好了), 0.7 parts decided
      it, 0.6 a clause ending in 正常, 0.5 nothing did (diagnosing).
    """
    asked = any(cl.live(k) for cl in note.clauses for k in ("need", "order", "fetch", "bring"))
    kind_names = {zh for zh, _, _ in v.KINDS.values()} | {en for _, en, _ in v.KINDS.values()}
    canonical = set(v.PARTS.values())

    def reading(quantity: str) -> float:
        if quantity in kind_names:
            return 0.55
        named = any(quantity.lower().endswith(base) for base in v.BASES)
        return 0.9 if named else 0.7

    def part(name: str) -> float:
        return 0.85 if any(name.endswith(c) for c in canonical) else 0.6

    numbers = bool(v.MEASURE_RE.search(note.text))
    return {
        "equipment": 0.5 if d.equipment is None else 0.9 if re.search(r"\d", d.equipment) else 0.7,
        "symptom": 0.75 if d.symptom else 0.5,
        "suspected_cause": (0.8 if cued_cause else 0.55) if d.suspected_cause else 0.5,
        "actions_taken": 0.8 if d.actions_taken else 0.5,
        "parts_needed": min((part(p.name) for p in d.parts_needed), default=0.5 if asked else 0.85),
        "measurements": min(
            (reading(m.quantity) for m in d.measurements), default=0.5 if numbers else 0.85
        ),
        "next_step": 0.7 if d.next_step else 0.5,
        "suggested_state": state,
    }


def _equipment(note: Note, code: str | None, device: str | None) -> tuple[str | None, str]:
    """The intake's machine (classify), as 3号空压机; else the first word naming a machine
    (封口机: a jieba word ending in 机 that is no component)."""
    text = note.text
    term = v.LEXICON_TERMS.get((device or "").lower())
    if term is not None and "part" in term.flags:
        device = None  # a sensor or a motor is not the machine
    if device is None and not code:
        device = next(
            (t for t, _, _ in note.spans if len(t) >= 3 and t.endswith("机") and t not in v.PARTS),
            None,
        )
    kind = (device or "").lower()
    if code:
        return re.sub(r"(\d)\s*#\s*(?=[\u4e00-\u9fff])", r"\1号", code), kind  # 2#空压机
    if device and (at := text.lower().find(kind)) >= 0 and text[at + len(kind) :].startswith("组"):
        return device + "组", kind  # 冷水机组
    return device, kind


def _roles(note: Note, cl: Clause) -> None:
    if cause := cl.live("cause"):
        text = note.text[cl.start : cause[0].start] + note.text[cause[0].end : cl.end]
        text = v.CAUSE_EFFECT.split(text.strip(), maxsplit=1)[0]  # X导致Y → X
        cl.cause = v.CAUSE_LEAD.sub("", text).strip() or None
    cl.action = _action(note, cl)
    busy = cl.cause or cl.action or cl.live("repairing")  # 正在换 is under way, not a plan
    cl.plan = not busy and any(cl.live(kind) for kind in _PLAN)


def _action(note: Note, cl: Clause) -> str | None:
    text = cl.text.strip()
    if "被" in text:
        return None  # 节流阀被人调过: done to it by someone, a cause rather than our action
    if m := v.DONE_PREFIX.match(text):
        rest = text[m.end() :].strip()
        if not rest or not done_clause(cl) or cl.live("resolved"):
            return None
        return None if v.SYMPTOM_RE.fullmatch(rest.rstrip("了")) else rest  # not 已经停机了
    if m := v.AFTER_RE.match(text):  # 复位后恢复 → 复位; 拆下顶针打磨后装回 stays whole
        return text if v.VERB_START.match(text, m.end()) else m.group("head")
    for h in cl.cues:
        if h.negated:
            continue
        if h.kind in ("verb", "replace") and v.COMPLETE.match(note.text, h.end):
            return v.LEAD_TRIM.sub("", text)  # 调整了张紧轮
        word = note.text[h.start : h.end].lower()
        if h.kind == "done" or (h.kind == "order" and word.endswith("ed")):
            return note.text[h.start : cl.end].strip()  # replaced the fuse
    if note.lang == "en" and not cl.live("resolved") and (m := v.EN_PAST_START.match(text)):
        word = m.group(1).lower()
        if word not in v.SYMPTOMS and word not in v.CUES:
            return text  # parked the truck
    return None


def _plan_text(note: Note, cl: Clause) -> str:
    text = v.DONE_PREFIX.sub("", cl.text.strip()).strip()  # 已经安排明天…
    if note.lang == "en":
        return v.EN_MODAL.sub("", text, count=1)
    m = v.ZH_MODAL.search(text)
    if m is None or v.NP_ZH.match(text, m.end()):
        return text  # 需要一根油管 stays as it is
    return (text[: m.start()] + text[m.end() :]).strip()


def _symptom(note: Note, found: list[Reading]) -> tuple[str | None, Clause | None]:
    # First pass: after the first clause, "component + fault" (门机皮带松动) is a cause, not
    # the complaint; second pass: anything.
    for strict in (True, False):
        for cl in note.clauses:
            if cl.cause or cl.action or cl.plan or cl.live("resolved"):
                continue
            for h in cl.faults:
                inside = any(s <= h.start and h.end <= e and e - s > h.end - h.start
                             for s, e, _ in cl.parts)  # fmt: skip  # 漏电 in 漏电开关
                after_part = any(s < h.start for s, _, _ in cl.parts)
                if h.negated or inside or (strict and cl.index and after_part):
                    continue
                return note.join(_subject(note, cl, h, found), note.text[h.start : h.end]), cl
    return None, None


def _subject(note: Note, cl: Clause, h: Hit, found: list[Reading]) -> str:
    """What a symptom is about: a reading right before it (排烟温度二百一十度偏高 → 排烟温度),
    else a component or quantity word right before it (主轴异响, 油泵有异响, 露点偏高)."""
    for start, end, reading in found:
        if cl.start <= start and end <= h.start and not note.text[end : h.start].strip():
            return reading.quantity
    head = note.text[cl.start : h.start]
    m = v.SUBJECT_END.search(head[:-1] if head.endswith("有") else head)
    subject = m.group().strip() if m else _machine_word(note, h.start - head.endswith("有"))
    if note.device and subject.lower().startswith(note.device):
        subject = subject[len(note.device) :]  # the equipment itself, or 电梯门 → 门
    return subject


def _machine_word(note: Note, end: int) -> str:
    i = bisect_right(note.ends, end) - 1
    word = note.spans[i][0] if i >= 0 and note.spans[i][2] == end else ""
    return word if len(word) >= 2 and word.endswith(("机", "器", "泵", "阀")) else ""


def _component_fault(note: Note, symptom_clause: Clause | None) -> str | None:
    """The first other clause where a named component has a fault (门机皮带松动); else a short
    one ending in a fault word (blade loose, suction strainer blocked)."""
    rest = [
        cl
        for cl in note.clauses
        if cl is not symptom_clause and not (cl.action or cl.plan or cl.live("resolved"))
    ]
    for cl in rest:
        if any(not h.negated and any(s < h.start for s, _, _ in cl.parts) for h in cl.faults):
            return cl.text.strip()
    for cl in rest:
        text = cl.text.strip()
        last = cl.faults[-1] if cl.faults else None
        short = len(text.split()) <= 5 if note.lang == "en" else len(text) <= 12
        at_end = last is not None and not note.text[last.end : cl.end].strip()
        if last and at_end and last.kind == "fault" and not last.negated and short:
            return text
    return None


def _resolved(note: Note, cl: Clause, found: list[Reading]) -> bool:
    if cl.live("temporary"):
        return False  # 暂时恢复
    if cl.live("resolved"):
        return True
    text = cl.text.rstrip().removesuffix("了")
    if not text.endswith("正常") or text[:-2].endswith(("不", "没", "非")):
        return False
    observed = (
        any(cl.start <= s < cl.end for s, _, _ in found)
        or cl.parts
        or any(cl.start <= b[0] < cl.end for b in note.bases)
    )
    return not observed  # 试焊正常 is a fix; 油位正常, 电压三百八十伏正常 are readings


def _state(
    note: Note, parts: tuple[Part, ...], fitting: bool, found: list[Reading]
) -> tuple[str, float]:
    kinds = {h.kind for cl in note.clauses for h in cl.cues if not h.negated}
    if any(cl.live("third") and not supplied(note, cl) for cl in note.clauses):
        return TicketState.THIRD_PARTY.value, 0.9
    brought = any(h.kind == "bring" and cl.text.find("来", h.start - cl.start) >= 0
                  for cl in note.clauses for h in cl.cues if not h.negated)  # fmt: skip
    ordered = bool(kinds & {"order", "waiting"}) or brought
    stock = bool(kinds & {"stock", "fetch"})  # 仓库有, 去领两个: our own stores
    if "nostock" in kinds or (
        not stock and (ordered or (parts and not fitting))
    ):  # a part being fitted right now (正在更换皮带) is at hand
        return TicketState.WAITING_PARTS.value, 0.9 if ordered or "nostock" in kinds else 0.7
    if any(_resolved(note, cl, found) for cl in note.clauses):
        cued = any(cl.live("resolved") and not cl.live("temporary") for cl in note.clauses)
        return TicketState.RESOLVED.value, 0.9 if cued else 0.6
    if "repairing" in kinds or parts:
        return TicketState.REPAIRING.value, 0.9 if "repairing" in kinds else 0.7
    return TicketState.DIAGNOSING.value, 0.5
