"""Transcript clean-up: script, punctuation, the domain lexicon's homophones, numerals.

``normalize_transcript(raw, language, lexicon)`` runs, for Chinese:

1. ``bot.nlp.text.normalize`` (NFKC: full-width digits and letters to ASCII);
2. Traditional → Simplified with OpenCC (``t2s``): Whisper base often prints Traditional;
3. ASCII ``, ? ! ; :`` next to Chinese → full-width (Whisper mixes them);
4. the homophone pass (``Lexicon.correct``, ``bot.nlp.correct``): on 8 kHz AMR most errors
   sound like the right word (变频器 heard as 便评器, 兆帕 as 罩怕). A stretch whose pinyin (with
   tones, allowing the confusions of narrow-band audio: zh/z, n/l, in/ing, j/q/x …) matches a
   term of the maintenance lexicon is replaced when a word model and a character n-gram model
   say the sentence is more likely with the term by more than the sound difference costs; no
   character of a common word is changed (只是等 stays);
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
from bot.nlp.correct import Corrector, domain_corpus, maintenance_terms

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

_corrector_lock = threading.Lock()


@dataclass(frozen=True)
class Lexicon:
    """Domain terms, most important first (the order decides what goes into the prompt)."""

    terms: tuple[str, ...]
    extra_targets: tuple[str, ...] = ()
    """More correction targets that are not prompted (the jieba domain dictionary)."""
    _built: dict[tuple[str, ...], Corrector] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def prompt(self, max_terms: int) -> str:
        """Whisper's initial prompt: Simplified Chinese, listing the first terms."""
        if max_terms <= 0:
            return ""
        han = [t for t in self.terms if _HAN.search(t)][:max_terms]
        return "设备维修语音记录：" + "，".join(han) + "。" if han else ""

    def corrector(self, more: Iterable[str] = ()) -> Corrector:
        """The corrector of these terms (built once; worker threads share it), with ``more``
        run-time terms (a deployment's assets and parts) when given (the last set is kept)."""
        key = tuple(sorted(set(more)))
        with _corrector_lock:
            if () not in self._built:
                own = (*self.terms, *self.extra_targets)
                self._built[()] = Corrector(own, maintenance_terms(), domain_corpus())
            if key not in self._built:
                for old in [k for k in self._built if k]:
                    del self._built[old]
                self._built[key] = self._built[()].extended(key)
            return self._built[key]

    def correct(self, text: str, more: Iterable[str] = ()) -> str:
        """Replace stretches that sound like a term where the sentence reads better with the
        term (``bot.nlp.correct``)."""
        if not _HAN.search(text):
            return text
        return self.corrector(more).correct(text)


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


def normalize_transcript(
    raw: str, language: str, lexicon: Lexicon | None = None, more: Iterable[str] = ()
) -> str:
    """Whisper's text → what the ticket shows (see the module doc for the steps); ``more``
    are run-time correction targets (a deployment's asset and part names)."""
    text = nlp_text.normalize(raw)
    if language != "zh" and not _HAN.search(text):
        return text
    text = _cjk_punctuation(to_simplified(text))
    if lexicon is not None:
        text = lexicon.correct(text, more)
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
