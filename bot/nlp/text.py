"""Text primitives for the intake: normalisation, Chinese numerals, jieba tokens, a fast
longest-word regex (``word_pattern``), ticket titles (``headline``) and ``detect_language``.

jieba is imported and its prefix dictionary built once, lazily, behind a lock, on a private
``jieba.Tokenizer`` (never the module-global one) that also loads the domain dictionary in
``data/domain_dict.txt``. Its cache lives in a writable temp directory and its logger is set to
WARNING, so nothing is printed. Call ``warm_up()`` at start-up to pay the ~1 s build up front.

Tokenisation splits the text into runs: Han runs go through jieba (dictionary words only, no
HMM guessing, so an unknown word falls apart into characters and a token is either a dictionary
word or one character); Latin/digit runs become one token each (``CNC-07``, ``isn't``,
``wi-fi``); any other visible character is its own token.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
import unicodedata
from pathlib import Path
from typing import Any, TypeAlias

__all__ = [
    "DOMAIN_DICT",
    "cn_decimal",
    "cn_number",
    "detect_language",
    "headline",
    "is_word",
    "normalize",
    "token_spans",
    "tokens",
    "warm_up",
    "word_pattern",
]

#: The jieba user dictionary with equipment, fault and place words.
DOMAIN_DICT = Path(__file__).with_name("data") / "domain_dict.txt"

_Trie: TypeAlias = "dict[str, _Trie]"
_lock = threading.Lock()
_tokenizer: Any = None  # jieba.Tokenizer once loaded

# Full-width CJK punctuation NFKC would fold to ASCII; we keep it (titles read naturally).
_KEEP = "，！？：；（）"
_PROTECT = str.maketrans({c: chr(0xE000 + i) for i, c in enumerate(_KEEP)})
_RESTORE = str.maketrans({chr(0xE000 + i): c for i, c in enumerate(_KEEP)} | {"’": "'", "‘": "'"})
_SPACES = re.compile(r"\s+")
_OPENER = re.compile(
    r"^(?:(?:@\S+|你好|您好|你们好|大家好|在吗|在不在|师傅|老师|hi|hello|hey|dear \w+)"
    r"(?![A-Za-z0-9])[\s,，.。!！~～:：]*)+", re.I
)  # fmt: skip
_CLOSER = re.compile(
    r"[\s,，.。!！~～]*(?:谢谢|多谢|麻烦了|辛苦了|thanks|thank you)(?:师傅|老师|你|您)?"
    r"[\s.。!！~～]*$",
    re.I,
)
_PARTICLES = frozenset("啊呀吧呢啦哦哈嘛哟呐")
_ENDERS = frozenset(",.;!，。；！~～")
_REPEATS = re.compile(r"([!！?？。.~～,，])\1+")
_TITLE_MAX = 40
_TRIM = " 。.!！~～,，;；:："

_RUN = re.compile(
    r"(?P<han>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)"
    r"|(?P<word>[A-Za-z0-9]+(?:'[A-Za-z]+)?(?:[-_.][A-Za-z0-9]+)*)"
    r"|(?P<other>\S)"
)

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9}  # fmt: skip
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}


def normalize(text: str) -> str:
    """NFKC (full-width letters, digits and ``＃－`` become ASCII), curly quotes to ``'``,
    whitespace runs to one space; CJK punctuation such as ``，？`` is kept as it is."""
    folded = unicodedata.normalize("NFKC", text.translate(_PROTECT)).translate(_RESTORE)
    return _SPACES.sub(" ", folded).strip()


def cn_number(numeral: str) -> int | None:
    """``"3"``→3, ``"三"``→3, ``"十二"``→12, ``"二十"``→20, ``"一百零五"``→105; else ``None``."""
    if numeral.isdigit():
        return int(numeral)
    total, digit = 0, None
    for ch in numeral:
        if ch in _CN_DIGITS:
            digit = _CN_DIGITS[ch]
        elif ch in _CN_UNITS:
            total += (1 if digit is None else digit) * _CN_UNITS[ch]
            digit = None
        else:
            return None
    return total + (digit or 0) if numeral else None


def cn_decimal(numeral: str) -> float | None:
    """A spoken number as a float: ``"0.8"``, ``"85"``, ``"零点八"`` 0.8, ``"八十五"`` 85,
    ``"一千二"`` 1200 and ``"三百五"`` 350 (a trailing digit counts in the unit below the last
    one, as people say it); else ``None``."""
    if re.fullmatch(r"\d+(?:\.\d+)?", numeral):
        return float(numeral)
    whole, _, frac = numeral.partition("点")
    if not whole or (frac == "" and numeral.endswith("点")):
        return None
    value = cn_number(whole)
    if value is None:
        return None
    if len(whole) >= 3 and whole[-1] in _CN_DIGITS and whole[-2] in "百千":
        value += _CN_DIGITS[whole[-1]] * (_CN_UNITS[whole[-2]] // 10 - 1)  # 一千二 = 1200
    digits = [_CN_DIGITS.get(ch) for ch in frac]
    if any(d is None for d in digits):
        return None
    return float(f"{value}.{''.join(str(d) for d in digits)}") if digits else float(value)


def _load() -> Any:
    global _tokenizer
    if _tokenizer is not None:
        return _tokenizer
    with _lock:
        if _tokenizer is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)  # jieba sets DEBUG on import; keep it quiet
            tokenizer = jieba.Tokenizer()
            tokenizer.tmp_dir = _cache_dir()
            tokenizer.cache_file = "gongdan-jieba.cache"
            tokenizer.initialize()
            with DOMAIN_DICT.open("rb") as f:  # given a path, jieba never closes the file
                tokenizer.load_userdict(f)
            _tokenizer = tokenizer
    return _tokenizer


def _cache_dir() -> str:
    wanted = Path(tempfile.gettempdir()) / "gongdan-jieba"
    with contextlib.suppress(OSError):
        wanted.mkdir(mode=0o700, exist_ok=True)
    if wanted.is_dir() and os.access(wanted, os.W_OK | os.X_OK):
        return str(wanted)
    return tempfile.mkdtemp(prefix="gongdan-jieba-")


def token_spans(text: str) -> list[tuple[str, int, int]]:
    """``(token, start, end)`` for every non-space token of ``text`` (offsets into ``text``;
    pass normalised text)."""
    out: list[tuple[str, int, int]] = []
    han: list[tuple[int, str, int]] = []  # (index in out, run, offset in text) per Han run
    for m in _RUN.finditer(text):
        if m.lastgroup == "han":
            han.append((len(out), m.group(), m.start()))
            out.append(("", 0, 0))  # replaced by the run's words below
        else:
            out.append((m.group(), m.start(), m.end()))
    if not han:
        return out
    # One jieba call for all runs (its per-call cost dominates): the runs joined by spaces.
    words: list[list[tuple[str, int, int]]] = [[] for _ in han]
    run, shift = 0, han[0][2]  # shift maps an offset in the joined string to one in ``text``
    for word, start, end in _load().tokenize(" ".join(r for _, r, _ in han), HMM=False):
        if word == " ":
            run += 1
            shift = han[run][2] - end
        else:
            words[run].append((word, start + shift, end + shift))
    for (slot, _, _), run_words in zip(reversed(han), reversed(words), strict=True):
        out[slot : slot + 1] = run_words
    return out


def tokens(text: str) -> list[str]:
    """The tokens of ``normalize(text)``: jieba words for Chinese, whole words for Latin."""
    return [tok for tok, _, _ in token_spans(normalize(text))]


def is_word(word: str) -> bool:
    """Whether jieba's dictionary (with the domain words) knows ``word`` as a word."""
    freq: int = _load().FREQ.get(word, 0)
    return freq > 0


def warm_up() -> None:
    """Build jieba's dictionary now (thread-safe, idempotent) instead of on the first message."""
    list(_load().tokenize("3号注塑机停机了", HMM=False))


def word_pattern(words: list[str]) -> str:
    """One regex source matching any of ``words`` (lower-case; compile with re.IGNORECASE).

    Built as a trie, so it stays fast with a thousand words; at a position the longest word
    wins; a word starting (ending) with a Latin letter or digit must not be preceded
    (followed) by one, so ``down`` does not match in ``download``."""
    trie: _Trie = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: _Trie, last: str) -> str:
        alts = []
        for ch, child in sorted(node.items()):
            if ch:
                head = r"(?<![a-z0-9])" if not last and _latin(ch) else ""
                alts.append(head + re.escape(ch) + emit(child, ch))
        if "" in node:
            alts.append(r"(?![a-z0-9])" if _latin(last) else "")
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return emit(trie, "")


def _latin(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def headline(text: str, spans: list[tuple[str, int, int]]) -> str:
    """A ticket title from normalised ``text`` and its ``token_spans``: no greeting, @mention,
    thanks or trailing particle (停机了， → 停机，), at most 40 characters."""
    drop: set[int] = set()  # offsets of characters to leave out
    for k, (tok, s, e) in enumerate(spans):
        at_end = k + 1 == len(spans) or spans[k + 1][0] in _ENDERS
        prev = spans[k - 1][0] if k else ""
        after_word = tok == "了" and len(prev) >= 2 and is_word(prev)
        if at_end and (tok in _PARTICLES or after_word):
            drop.update(range(s, e))  # 停机了， → 停机，  (but 停了/坏了 keep their 了)
    if drop:
        text = "".join(ch for n, ch in enumerate(text) if n not in drop)
    text = _CLOSER.sub("", _OPENER.sub("", text))
    text = _REPEATS.sub(r"\1", text).strip(_TRIM)
    if not any(ch.isalnum() for ch in text):
        return ""
    if len(text) <= _TITLE_MAX:
        return text
    clause = max(text.rfind(p, 0, _TITLE_MAX + 1) for p in "，,。；;！!？?")
    if clause >= 12:  # whole clauses only
        return text[:clause].rstrip(_TRIM)
    word = text.rfind(" ", 0, _TITLE_MAX)
    cut = word if word >= 12 else _TITLE_MAX - 1
    return text[:cut].rstrip(_TRIM) + "…"


def detect_language(text: str) -> str:
    """Return "zh" when Han characters are at least as many as English words, else "en"."""
    han = sum(1 for ch in text if "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff")
    words = len(re.findall(r"[A-Za-z]{2,}", text))
    return "en" if words > han else "zh"
