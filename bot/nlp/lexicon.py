"""The intake's keyword lexicon (``data/lexicon.tsv``): kind, attributes and terms, loaded once.

One line per group: ``KIND <TAB> ATTRS <TAB> terms|separated|by|bars`` (the file's header
says what each kind and attribute means). Terms are keyed NFKC-normalised and lower-case; a
term may appear only once in the whole file. The rule reader (``classify``), the extraction
of names (``extract``) and the diagnosis reader all use ``TERMS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.nlp.text import normalize
from bot.tickets import Category

__all__ = ["LEXICON", "TERMS", "Term", "load_lexicon"]

LEXICON = Path(__file__).with_name("data") / "lexicon.tsv"
_HINTS = {"equipment_failure", "network_it", "software_config", "facility"}
_KINDS = {"safety", "gas", "linestop", "scope", "line", "down", "intermittent", "degraded",
          "urgent", "calm", "request", "question", "greeting", "device", "topic",
          "recovered", "workaround", "redundancy", "impact", "fyi", "cosmetic", "chase",
          "business", "hotline", "hazard", "running"}  # fmt: skip
_FLAGS = {"part", "generic", "minor", "air"}


@dataclass(frozen=True, slots=True)
class Term:
    kind: str
    display: str
    hint: Category | None
    flags: frozenset[str]


def load_lexicon(path: Path) -> dict[str, Term]:
    terms: dict[str, Term] = {}
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
            terms[key] = Term(kind, word, hint, flags - _HINTS)
    return terms


TERMS = load_lexicon(LEXICON)
