"""Transcript correction by sound and context: a misheard term is replaced only when the
sentence reads better with it.

Whisper base on 8 kHz phone audio writes many domain words as other characters that sound
alike (补偿导线 as 补厂岛线, 兆帕 as 罩怕, 磨损 as 摩索). ``Corrector.correct`` proposes, for every
stretch of 2–6 Han characters, the lexicon terms that sound like it and keeps a proposal only
when it makes the sentence more likely by more than it costs in sound:

* **Sound.** pypinyin reads the transcript in context (its phrase dictionary picks the reading
  of 重, 行 …) and every term once. A stretch and a term are compared syllable by syllable:
  initial, final and tone. Confusions common on narrow-band audio cost less than other
  differences: z/zh, c/ch, s/sh, n/l, f/h, j/q/x, b/p, d/t, g/k and the place of a stop
  (p/t/k, b/d/g: its burst is above 4 kHz); an/ang, en/eng, in/ing, ian/iang, uan/uang,
  o/uo/ou. A syllable may differ in its initial or its final, not both (``Weights.syllable``).
  Candidates are found through an index of the terms' coarse readings (each syllable's
  confusion class): a stretch must match a term exactly in classes, or, for terms of three or
  more syllables, in all but one syllable.
* **Context.** Two language models score a window of the sentence around the stretch, before
  and after the change: jieba's word frequencies (the shared tokenizer's dictionary: 349 k
  words and the domain dictionary) as a unigram model over the best segmentation, with the
  lexicon's terms made more frequent (the domain prior); and a character trigram model
  (Witten-Bell) of in-domain text: the intake's training reports, the diagnosis reader's
  vocabulary and the lexicon. A change is made when
  ``Δ words + γ·Δ characters − λ·sound cost − μ`` is positive; proposals are taken best first,
  never two that overlap.

Correct text is left alone because its own words already score well: a replacement must beat
them by the fixed price μ as well as its sound cost. The models are built once, lazily (about
a second); a transcript of 100 characters is then corrected in a few milliseconds.

The lexicon is ``data/maintenance_terms.txt`` (built by ``bot.nlp.build_terms`` from open word
lists, ``data/LEXICON_SOURCES.md``), the project's own lists (``lexicon_asr.txt``,
``domain_dict.txt``, the diagnosis reader's parts and quantities) and, at run time, a
deployment's own terms (its lexicon file, its catalog of assets and spare parts).
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.nlp import text as nlp_text

__all__ = ["Corrector", "Weights", "catalog_terms", "domain_corpus", "maintenance_terms"]

DATA = Path(__file__).with_name("data")
MAINTENANCE_TERMS = DATA / "maintenance_terms.txt"
INTAKE_TRAIN = DATA / "intake" / "train.jsonl"

_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_MIN, _MAX = 2, 6

_INITIAL_CLASSES = ("z zh c ch", "s sh", "n l", "f h", "j q x", "b p", "d t", "g k")
_FINAL_CLASSES = ("an ang", "en eng", "in ing", "ian iang", "uan uang", "o uo ou")
_INITIAL_CLASS = {p: c.split()[0] for c in _INITIAL_CLASSES for p in c.split()}
_FINAL_CLASS = {p: c.split()[0] for c in _FINAL_CLASSES for p in c.split()}
_FUZZY_INITIALS = {
    frozenset(p) for p in (("z", "zh"), ("c", "ch"), ("s", "sh"), ("n", "l"), ("f", "h"),
                           ("j", "q"), ("j", "x"), ("q", "x"), ("b", "p"), ("d", "t"),
                           ("g", "k"), ("z", "c"), ("zh", "ch"),
                           # the place of a stop is in its burst, above 4 kHz: lost at 8 kHz
                           ("p", "t"), ("t", "k"), ("p", "k"), ("b", "d"), ("d", "g"), ("b", "g"))
}  # fmt: skip
_FUZZY_FINALS = {frozenset(p) for c in _FINAL_CLASSES for p in itertools.combinations(c.split(), 2)}


@dataclass(frozen=True, slots=True)
class Syllable:
    initial: str
    final: str
    tone: str

    @property
    def key(self) -> tuple[str, str]:
        return _INITIAL_CLASS.get(self.initial, self.initial), _FINAL_CLASS.get(
            self.final, self.final
        )


@dataclass(frozen=True, slots=True)
class Weights:
    """How a proposal is scored (tuned on the voice set's dev split only)."""

    words: float = 0.5  # the word model's weight
    chars: float = 1.0  # γ: the character model's weight
    sound: float = 3.0  # λ: per unit of sound cost
    price: float = 5.0  # μ: every change
    fuzzy: float = 0.4  # an initial or final in the same confusion class
    other: float = 1.0  # any other initial or final
    tone: float = 0.5  # a different tone
    syllable: float = 1.0  # most a syllable may cost: one part differs, or a confusion + tone
    open2: float = 3.0  # more price for a two-syllable term that differs in one class
    common: float = 100.0  # no character of a word this frequent in jieba's dictionary changes
    window: int = 4  # characters of context each side for the word model
    strong: float = 3000.0  # frequency added to a project or deployment term
    general: float = 300.0  # frequency added to a term of the maintenance lexicon


def _readings(text: str) -> list[Syllable]:
    from pypinyin import Style, lazy_pinyin

    initials = lazy_pinyin(text, style=Style.INITIALS, strict=False)
    finals = lazy_pinyin(text, style=Style.FINALS_TONE3, strict=False, neutral_tone_with_five=True)
    out = []
    for initial, final in zip(initials, finals, strict=True):
        tone = final[-1] if final[-1:].isdigit() else "5"
        out.append(Syllable(initial, final.rstrip("012345"), tone))
    return out


class _CharModel:
    """Character trigram model with Witten-Bell interpolation (digits, Latin letters and
    punctuation folded to one symbol each). nltk.lm has the same estimator but scores a
    character in tens of microseconds; this is a dictionary look-up per order."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.counts: Counter[str] = Counter()  # history + char
        self.totals: Counter[str] = Counter()  # history
        self.types: Counter[str] = Counter()  # distinct chars after a history
        for text in texts:
            s = "^^" + fold(text)
            for k in range(2, len(s)):
                for order in range(3):
                    gram = s[k - order : k + 1]
                    if self.counts[gram] == 0:
                        self.types[gram[:-1]] += 1
                    self.counts[gram] += 1
                    self.totals[gram[:-1]] += 1
        self.vocab = max(self.types[""], 1) + 1000

    @functools.lru_cache(maxsize=65536)  # noqa: B019 (one model per process, kept for good)
    def logp(self, history: str, char: str) -> float:
        p = 1.0 / self.vocab
        for order in range(3):
            h = history[len(history) - order :] if order else ""
            total = self.totals[h]
            if total:
                types = self.types[h]
                p = (self.counts[h + char] + types * p) / (total + types)
        return math.log(p)

    def score(self, text: str, start: int, end: int) -> float:
        """Log-probability of ``text[start:end]`` after what stands before it."""
        s = "^^" + text
        return sum(self.logp(s[k : k + 2], s[k + 2]) for k in range(start, end))


_FOLD = re.compile(r"[0-9]|[A-Za-z]|[^\u3400-\u4dbf\u4e00-\u9fff0-9A-Za-z]")


def fold(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        c = m.group()
        return "0" if c.isdigit() else "a" if c.isascii() and c.isalpha() else "，"

    return _FOLD.sub(one, text)


_Index = defaultdict[tuple[tuple[str, str], ...], list[tuple[str, list[Syllable]]]]


def _wild(key: tuple[tuple[str, str], ...], p: int) -> tuple[tuple[str, str], ...]:
    """The index key with syllable ``p`` left open."""
    return (*key[:p], ("*", str(p)), *key[p + 1 :])


@dataclass(frozen=True, slots=True)
class _Proposal:
    start: int
    end: int
    term: str
    gain: float


class Corrector:
    """Terms by sound, a word model and a character model; see the module doc."""

    def __init__(
        self,
        strong: Iterable[str],
        general: Iterable[str] = (),
        corpus: Iterable[str] = (),
        weights: Weights | None = None,
    ) -> None:
        self.weights = w = weights or Weights()
        bonus: dict[str, float] = {}
        for term in general:
            if _HAN_RUN.fullmatch(term) and _MIN <= len(term) <= _MAX:
                bonus[term] = w.general
        for term in strong:
            if _HAN_RUN.fullmatch(term) and _MIN <= len(term) <= _MAX:
                bonus[term] = w.strong
        self.bonus = bonus
        tokenizer = nlp_text._load()
        self._freq: dict[str, int] = tokenizer.FREQ
        self._log_total = math.log(tokenizer.total)
        self._exact: _Index = defaultdict(list)
        self._wild: _Index = defaultdict(list)
        self._index(bonus)
        self._chars = _CharModel([*corpus, *bonus])

    def _index(self, terms: Iterable[str]) -> None:
        for term in terms:
            syllables = _readings(term)
            key = tuple(s.key for s in syllables)
            self._exact[key].append((term, syllables))
            if len(term) >= 2:
                for p in range(len(term)):
                    self._wild[_wild(key, p)].append((term, syllables))

    def extended(self, strong: Iterable[str]) -> Corrector:
        """A corrector with more strong terms (a deployment's asset and part names) that
        shares this one's models; cheap (pypinyin reads only the new terms)."""
        top = self.weights.strong
        new = [
            t for t in dict.fromkeys(strong)
            if _HAN_RUN.fullmatch(t) and _MIN <= len(t) <= _MAX and self.bonus.get(t) != top
        ]  # fmt: skip
        if not new:
            return self
        other = copy.copy(self)
        other.bonus = {**self.bonus, **dict.fromkeys(new, self.weights.strong)}
        other._exact = defaultdict(list, {k: list(v) for k, v in self._exact.items()})
        other._wild = defaultdict(list, {k: list(v) for k, v in self._wild.items()})
        other._index(t for t in new if t not in self.bonus)
        return other

    # --- scores ---

    def _word_logp(self, word: str) -> float:
        f = self._freq.get(word, 0) + self.bonus.get(word, 0.0)
        if f <= 0:
            return -math.inf if len(word) > 1 else -self._log_total
        return math.log(f) - self._log_total

    def _words(self, run: str) -> float:
        """Log-probability of the best segmentation of a Han run into words (jieba's way)."""
        best = [0.0] + [-math.inf] * len(run)
        for j in range(1, len(run) + 1):
            for i in range(max(0, j - _MAX), j):
                if best[i] == -math.inf:
                    continue
                lp = self._word_logp(run[i:j])
                if lp != -math.inf and best[i] + lp > best[j]:
                    best[j] = best[i] + lp
        return best[-1]

    def _sound(self, heard: Sequence[Syllable], term: Sequence[Syllable]) -> float:
        w = self.weights
        cost = 0.0
        for a, b in zip(heard, term, strict=True):
            one = 0.0
            for x, y, fuzzy in ((a.initial, b.initial, _FUZZY_INITIALS),
                                (a.final, b.final, _FUZZY_FINALS)):  # fmt: skip
                if x != y:
                    one += w.fuzzy if frozenset((x, y)) in fuzzy else w.other
            if a.tone != b.tone:
                one += w.tone
            if one > w.syllable:
                return math.inf
            cost += one
        return cost

    # --- correction ---

    def correct(self, text: str) -> str:
        if not self.bonus or not _HAN_RUN.search(text):
            return text
        folded = fold(text)
        locked = self._locked(text)
        proposals: list[_Proposal] = []
        for run in _HAN_RUN.finditer(text):
            proposals += self._proposals(text, folded, run.start(), run.group(), locked)
        proposals.sort(key=lambda p: -p.gain)
        taken: list[_Proposal] = []
        for p in proposals:
            if all(p.end <= t.start or p.start >= t.end for t in taken):
                taken.append(p)
        out = text
        for p in sorted(taken, key=lambda p: -p.start):
            out = out[: p.start] + p.term + out[p.end :]
        return out

    def _locked(self, text: str) -> set[int]:
        """Offsets of characters in a word that is a term or common (jieba, domain dict), or
        in a common word inside a rarer one."""
        locked: set[int] = set()
        for token, start, end in nlp_text.token_spans(text):
            if len(token) < 2:
                continue
            if token in self.bonus or self._freq.get(token, 0) >= self.weights.common:
                locked.update(range(start, end))
                continue
            for i in range(len(token) - 1):  # a common word inside a rarer one (符合 in 符合要求)
                for j in range(i + 2, len(token) + 1):
                    if self._freq.get(token[i:j], 0) >= self.weights.common:
                        locked.update(range(start + i, start + j))
        return locked

    def _proposals(
        self, text: str, folded: str, offset: int, run: str, locked: set[int]
    ) -> list[_Proposal]:
        w = self.weights
        heard = _readings(run)
        keys = [s.key for s in heard]
        found: list[_Proposal] = []
        for i in range(len(run) - 1):
            for length in range(_MIN, min(_MAX, len(run) - i) + 1):
                span = run[i : i + length]
                key = tuple(keys[i : i + length])
                candidates = list(self._exact.get(key, ()))
                exact = {t for t, _ in candidates}
                if length >= 3 or w.open2 < math.inf:
                    for p in range(length):
                        candidates += self._wild.get(_wild(key, p), ())
                seen: set[str] = set()
                for term, syllables in candidates:
                    if term == span or term in seen:
                        continue
                    if any(term[k] != span[k] and offset + i + k in locked for k in range(length)):
                        continue
                    seen.add(term)
                    sound = self._sound(heard[i : i + length], syllables)
                    if sound > w.syllable * length or sound > w.syllable * 2:
                        continue
                    gain = self._gain(text, folded, offset, run, i, length, term)
                    gain -= w.sound * sound + w.price
                    if length == 2 and term not in exact:
                        gain -= w.open2
                    if gain > 0:
                        found.append(_Proposal(offset + i, offset + i + length, term, gain))
        return found

    def _gain(
        self, text: str, folded: str, offset: int, run: str, i: int, length: int, term: str
    ) -> float:
        w = self.weights
        a, b = max(0, i - w.window), min(len(run), i + length + w.window)
        before = run[a:b]
        after = run[a:i] + term + run[i + length : b]
        words = self._words(after) - self._words(before)
        start, end = offset + i, offset + i + length
        stop = min(len(folded), end + 2)
        new = folded[:start] + fold(term) + folded[end:stop]
        chars = self._chars.score(new, start, len(new)) - self._chars.score(folded, start, stop)
        return w.words * words + w.chars * chars


def maintenance_terms(path: Path = MAINTENANCE_TERMS) -> list[str]:
    """The built maintenance lexicon's terms (``bot.nlp.build_terms``)."""
    terms = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            terms.append(line.split("\t")[0])
    return terms


def domain_corpus() -> list[str]:
    """In-domain text for the character model: the intake's training reports in Chinese."""
    texts = []
    with INTAKE_TRAIN.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row.get("lang") in ("zh", "mixed"):
                texts.append(nlp_text.normalize(str(row["text"])))
    return texts


def catalog_terms(names: Iterable[str]) -> tuple[str, ...]:
    """The Chinese stretches (2–6 characters) of a catalog's asset and part names and aliases:
    ``3号空压机`` gives 号空压机; ``SKF 6205 轴承`` gives 轴承."""
    found: dict[str, None] = {}
    for name in names:
        for run in _HAN_RUN.findall(nlp_text.normalize(name)):
            if _MIN <= len(run) <= _MAX:
                found[run] = None
    return tuple(found)
