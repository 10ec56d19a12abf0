"""Transcript clean-up: script, punctuation, the domain lexicon's homophones, numerals.

``normalize_transcript(raw, language, lexicon)`` runs, for Chinese:

1. ``bot.nlp.text.normalize`` (NFKC: full-width digits and letters to ASCII);
2. Traditional → Simplified with OpenCC (``t2s``): Whisper base often prints Traditional;
3. ASCII ``, ? ! ; :`` next to Chinese → full-width (Whisper mixes them);
4. the homophone pass (``Lexicon.correct``): on 8 kHz AMR most errors sound like the right word
   (变频器 heard as 便评器, 断网 as 段网). A stretch that matches a lexicon term by toneless pinyin,
   allowing the confusions of narrow-band audio (zh/z, n/l, in/ing, j/q …) within a budget
   that grows with the term's length, is replaced by the term, unless that would change text
   jieba (with the domain dictionary) reads as words: a stretch never starts or ends inside a
   dictionary word, never changes a character of a common word (机械避 → 机械臂 keeps 机械;
   只是等 stays), is not itself a two-character word (意想 stays), and never changes a
   grammatical character (处理过了 stays);
5. Chinese numerals → digits where they are quantities: before a unit (八十五度 → 85度,
   零点八兆帕 → 0.8兆帕, 三号机 → 3号机), after 第, in 百分之…, decimals, and multi-character
   numbers. Single 一/两 before a classifier stay (一个, 两个小时), and words such as 一下,
   一直, 统一, 万一 are never touched.

English transcripts only get step 1. Nothing here does I/O after the first call (OpenCC's
tables, pypinyin's and jieba's dictionaries load lazily, once).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.nlp import text as nlp_text

__all__ = [
    "BUILTIN_LEXICON",
    "Lexicon",
    "cer",
    "load_lexicon",
    "normalize_transcript",
    "numerals_to_digits",
    "to_simplified",
]

BUILTIN_LEXICON = Path(__file__).with_name("data") / "lexicon_asr.txt"
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")

# --- script and punctuation -------------------------------------------------------------------

_opencc_lock = threading.Lock()
_opencc: Any = None


def to_simplified(text: str) -> str:
    """Traditional → Simplified Chinese (OpenCC ``t2s``); other text passes unchanged."""
    global _opencc
    if _opencc is None:
        with _opencc_lock:
            if _opencc is None:
                import opencc

                _opencc = opencc.OpenCC("t2s")
    converted: str = _opencc.convert(text)
    return converted


_FULL = {",": "，", "?": "？", "!": "！", ";": "；", ":": "："}
_ASCII_PUNCT = re.compile(r"(?<=[\u3400-\u9fff])\s*([,?!;:])\s*|\s*([,?!;:])\s*(?=[\u3400-\u9fff])")
_END_DOT = re.compile(r"(?<=[\u3400-\u9fff])\.(?=\s|$)")
_END = re.compile(r"(?<=[\u3400-\u9fff])，+$")  # a note that ends on a comma ends


_BROKEN = re.compile("\ufffd+")


#: A space Whisper leaves between Chinese phrases (电流65A 油分芯堵了) is a pause: a comma.
_PAUSE = re.compile(r"(?<=[\u3400-\u9fff%A-Za-z])[ \t]+(?=[\u3400-\u9fff])")


def _cjk_punctuation(text: str) -> str:
    # Whisper's byte-level tokens sometimes stop half-way through "，" (EF BC …): the stray
    # bytes decode as U+FFFD. A comma is what was meant; at the end, nothing.
    text = _PAUSE.sub("，", _BROKEN.sub("，", text))
    text = _ASCII_PUNCT.sub(lambda m: _FULL[m.group(1) or m.group(2)], text)
    return _END.sub("。", _END_DOT.sub("。", text))


# --- numerals ---------------------------------------------------------------------------------

_NUM_CHARS = "零〇一二两三四五六七八九十百千万"
_NUMERAL = re.compile(rf"[{_NUM_CHARS}]+(?:点[{_NUM_CHARS}]+)?")
#: Units of measure: a numeral before one is a quantity (八十五度, 三号, 两小时 → 2小时).
_UNIT_WORDS = (
    "号 度 摄氏度 兆帕 千帕 帕 巴 兆欧 欧 千伏 伏 毫安 安 千瓦 瓦 赫兹 转 公斤 千克 克 吨 "
    "公里 米 厘米 毫米 丝 公分 升 毫升 小时 分钟 秒 天 周 倍 寸 楼 层"
)
#: Classifiers: a multi-character numeral before one is converted (十二个), 一/两 stay (一个).
_CLASSIFIER_WORDS = "个 次 台 根 条 块 片 只 套 组 件 遍 把 桶 箱 卷 盒 包 袋 颗 支 排 处"
_CLASSIFIERS = frozenset(_CLASSIFIER_WORDS.split())
_AFTER = re.compile("|".join(sorted({*_UNIT_WORDS.split(), *_CLASSIFIERS}, key=len, reverse=True)))
#: Characters that make a numeral part of a word when they stand right before it.
_WORD_BEFORE = frozenset("统唯之万专单均同划整某逐星礼周初")


def _numeral_value(numeral: str) -> str | None:
    import cn2an

    try:
        value = cn2an.cn2an(numeral, "normal")
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if isinstance(value, float) and "点" not in numeral:
        value = int(value)
    return str(value)


def numerals_to_digits(text: str) -> str:
    """Convert Chinese numerals that are quantities to digits; leave words alone."""

    def convert(m: re.Match[str]) -> str:
        numeral, start, end = m.group(), m.start(), m.end()
        before = text[start - 1] if start else ""
        unit = _AFTER.match(text, end)
        percent = text.endswith("百分之", 0, start)
        if before in _WORD_BEFORE and not percent:
            return numeral
        single = len(numeral) == 1
        if percent or before == "第" or "点" in numeral:
            pass
        elif unit is not None:
            if single and numeral in "一两" and unit.group() not in ("号", "楼", "层"):
                return numeral  # 一个, 两个小时 read as words; 一号机 does not
            if single and unit.group() in _CLASSIFIERS:
                return numeral
        elif single or not any(c in numeral for c in "十百千万"):
            return numeral  # 一二线 and a bare 三 stay words
        value = _numeral_value(numeral)
        if value is None:
            return numeral
        return value + "%" if percent else value

    converted = _NUMERAL.sub(convert, text)
    return re.sub(r"百分之(\d+(?:\.\d+)?%)", r"\1", converted)


# --- lexicon and homophones -------------------------------------------------------------------

_Syllable = tuple[str, str]  # (initial, final), toneless
_Targets = dict[int, list[tuple[str, tuple[_Syllable, ...]]]]
_FUZZY_INITIALS = {
    frozenset(p)
    for p in (("z", "zh"), ("c", "ch"), ("s", "sh"), ("n", "l"), ("f", "h"), ("j", "q"),
              ("z", "c"), ("zh", "ch"), ("b", "p"), ("d", "t"), ("g", "k"))
}  # fmt: skip
_FUZZY_FINALS = {
    frozenset(p)
    for p in (("an", "ang"), ("en", "eng"), ("in", "ing"), ("ian", "iang"), ("uan", "uang"),
              ("eng", "ong"), ("o", "uo"))
}  # fmt: skip
#: Grammatical characters: a stretch is never corrected by changing one of them.
_FUNCTION_CHARS = frozenset("了的地得着过吗呢吧啊呀是在也都就还又和与或把被给让很")
#: Largest total cost accepted for a term of each length (fuzzy = 0.5, other = 1 per part).
_BUDGET = {2: 0.5, 3: 1.0, 4: 1.5, 5: 2.0, 6: 2.0}


def _part_cost(a: str, b: str, fuzzy: set[frozenset[str]]) -> float:
    if a == b:
        return 0.0
    return 0.5 if frozenset((a, b)) in fuzzy else 1.0


def _syllable_cost(readings: Iterable[_Syllable], target: _Syllable) -> float:
    best = 2.0
    for initial, final in readings:
        cost = _part_cost(initial, target[0], _FUZZY_INITIALS) + _part_cost(
            final, target[1], _FUZZY_FINALS
        )
        best = min(best, cost)
    return best


def _readings(run: str) -> list[tuple[_Syllable, ...]]:
    """Per character of a Han run: its reading in context (pypinyin's phrase dictionary) and
    its usual reading alone. Rare readings are left out: they match too much (受 as dao)."""
    in_context = _term_syllables(run)
    return [tuple(dict.fromkeys((s, _usual(ch)))) for s, ch in zip(in_context, run, strict=True)]


@functools.lru_cache(maxsize=8192)
def _usual(char: str) -> _Syllable:
    return _term_syllables(char)[0]


def _term_syllables(term: str) -> tuple[_Syllable, ...]:
    from pypinyin import Style, lazy_pinyin

    initials = lazy_pinyin(term, style=Style.INITIALS, strict=False)
    finals = lazy_pinyin(term, style=Style.FINALS, strict=False)
    return tuple(zip(initials, finals, strict=True))


_index_lock = threading.Lock()


@dataclass(frozen=True)
class Lexicon:
    """Domain terms, most important first (the order decides what goes into the prompt)."""

    terms: tuple[str, ...]
    extra_targets: tuple[str, ...] = ()
    """More correction targets that are not prompted (the jieba domain dictionary)."""
    _index: _Targets = field(default_factory=dict, init=False, repr=False, compare=False)

    def prompt(self, max_terms: int) -> str:
        """Whisper's initial prompt: Simplified Chinese, listing the first terms."""
        if max_terms <= 0:
            return ""
        han = [t for t in self.terms if _HAN.search(t)][:max_terms]
        return "设备维修语音记录：" + "，".join(han) + "。" if han else ""

    def _targets(self) -> _Targets:
        with _index_lock:  # worker threads share a lexicon; build its index once
            if not self._index:
                built: _Targets = {}
                for term in dict.fromkeys((*self.terms, *self.extra_targets)):
                    if _HAN_RUN.fullmatch(term) and 2 <= len(term) <= 6:
                        built.setdefault(len(term), []).append((term, _term_syllables(term)))
                self._index.update(built)
            return self._index

    def correct(self, text: str) -> str:
        """Replace stretches that sound like a term but are not words (see module doc)."""
        targets = self._targets()
        if not targets or not _HAN.search(text):
            return text
        words = _word_structure(text)
        out: list[str] = []
        pos = 0
        for run in _HAN_RUN.finditer(text):
            out.append(text[pos : run.start()])
            out.append(self._correct_run(run.group(), run.start(), targets, words))
            pos = run.end()
        out.append(text[pos:])
        return "".join(out)

    def _correct_run(
        self, run: str, offset: int, targets: _Targets, words: tuple[set[int], set[int]]
    ) -> str:
        readings = _readings(run)
        out: list[str] = []
        i = 0
        while i < len(run):
            best = self._best_at(run, i, offset, readings, targets, words)
            out.append(best or run[i])
            i += len(best) if best else 1
        return "".join(out)

    @staticmethod
    def _best_at(
        run: str,
        i: int,
        offset: int,
        readings: list[tuple[_Syllable, ...]],
        targets: _Targets,
        words: tuple[set[int], set[int]],
    ) -> str | None:
        inside, locked = words
        if offset + i in inside:
            return None  # never start in the middle of a word
        for length in sorted(targets, reverse=True):  # longest term first
            end = i + length
            if end > len(run) or offset + end in inside:
                continue
            fixed = [k - i for k in range(i, end) if offset + k in locked]
            window, budget = run[i:end], _BUDGET[length]
            if length == 2 and nlp_text.is_word(window):  # 意想 (in 意想不到) stays
                continue
            best: tuple[float, str] | None = None
            for term, syllables in targets[length]:
                if term == window:
                    return None  # already right
                if any(window[k] != term[k] for k in fixed):
                    continue  # 只是等 must not become 指示灯; 机械避 may become 机械臂
                if any(a != b and a in _FUNCTION_CHARS for a, b in zip(window, term, strict=True)):
                    continue  # 处理过了 must not become 处理过热
                cost = 0.0
                for k, target in enumerate(syllables):
                    part = _syllable_cost(readings[i + k], target)
                    cost += part
                    if part > 1.0 or cost > budget:
                        break
                else:
                    if best is None or cost < best[0]:
                        best = (cost, term)
            if best is not None:
                return best[1]
        return None


#: No character of a word jieba knows this well (its dictionary frequency) is ever changed;
#: a two-character stretch that is a dictionary word at all is left alone too.
_COMMON_WORD = 100


def _word_structure(text: str) -> tuple[set[int], set[int]]:
    """(offsets inside a multi-character dictionary word, offsets of characters that belong
    to a common word) by jieba with the domain dictionary."""
    frequency = nlp_text._load().FREQ  # the shared tokenizer's dictionary, loaded once
    inside: set[int] = set()
    locked: set[int] = set()
    for token, start, end in nlp_text.token_spans(text):
        if len(token) >= 2:
            inside.update(range(start + 1, end))
            if frequency.get(token, 0) >= _COMMON_WORD:
                locked.update(range(start, end))
    return inside, locked


def _read_terms(path: Path) -> list[str]:
    terms = []
    for line in path.read_text(encoding="utf-8").splitlines():
        term = line.split("\t")[0].split("#")[0].strip()
        if term:
            terms.append(term)
    return terms


def _domain_dict_words() -> list[str]:
    words = []
    for line in nlp_text.DOMAIN_DICT.read_text(encoding="utf-8").splitlines():
        word = line.split(" ")[0].strip()
        if _HAN_RUN.fullmatch(word):
            words.append(word)
    return words


@functools.lru_cache(maxsize=8)
def load_lexicon(extra: Path | None = None) -> Lexicon:
    """The built-in lexicon, with a deployment's own file (if any) in front of it."""
    terms = [*(_read_terms(extra) if extra is not None else []), *_read_terms(BUILTIN_LEXICON)]
    return Lexicon(tuple(dict.fromkeys(terms)), tuple(_domain_dict_words() + _diagnosis_words()))


def _diagnosis_words() -> list[str]:
    """The diagnosis reader's Chinese parts and quantity words (data/diagnosis_parts.tsv,
    diagnosis_quantities.tsv): what a field note names, so what a homophone most likely was."""
    data = BUILTIN_LEXICON.parent
    words: list[str] = []
    for name in ("diagnosis_parts.tsv", "diagnosis_quantities.tsv"):
        for line in (data / name).read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                continue
            for col in line.split("\t"):
                words += [w for w in col.split("|") if _HAN_RUN.fullmatch(w) and 2 <= len(w) <= 6]
    return words


# --- the pipeline -----------------------------------------------------------------------------


def normalize_transcript(raw: str, language: str, lexicon: Lexicon | None = None) -> str:
    """Whisper's text → what the ticket shows (see the module doc for the steps)."""
    text = nlp_text.normalize(raw)
    if language != "zh" and not _HAN.search(text):
        return text
    text = _cjk_punctuation(to_simplified(text))
    if lexicon is not None:
        text = lexicon.correct(text)
    return numerals_to_digits(text)


_NOT_COUNTED = re.compile(r"[\s\W_]+", re.UNICODE)


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate: edit distance over the reference's length, with punctuation and
    spaces removed and Latin letters lower-cased on both sides."""
    ref = _NOT_COUNTED.sub("", reference).lower()
    hyp = _NOT_COUNTED.sub("", hypothesis).lower()
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1] / len(ref)
