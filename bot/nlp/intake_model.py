"""The trained half of the intake reader: linear models over character n-grams, words and the
rule reader's findings.

``features()`` turns one normalised message into a set of string features: character 1–3-grams
(they survive typos, new compounds and unseen wording), jieba/Latin words and word pairs, and
what the rules found (each lexicon kind, marked when negated; the rules' priority and category;
an alarm code, an asset tag, a place, a question mark). ``IntakeModel`` holds one logistic
regression per field (``report``, ``priority``, ``category``, ``followup``), fitted by
``gongdan train`` (``bot/nlp/train.py``, scikit-learn) from the labelled files in
``data/intake/`` and shipped as ``data/intake_model.npz``: a vocabulary and one weight matrix
per field. Reading a message is a sum of the rows of its features and a softmax — numpy only,
no scikit-learn at run time.

The probabilities are the confidences the intake acts on (ask instead of guess when unsure);
``gongdan train`` reports their calibration on the dev split.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from itertools import pairwise, repeat
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["FIELDS", "MODEL", "Head", "IntakeModel", "features", "load"]

MODEL = Path(__file__).with_name("data") / "intake_model.npz"
#: field → its classes, in the order the weight matrices' columns are stored.
FIELDS: dict[str, tuple[str, ...]] = {
    "report": ("no", "yes"),
    "priority": ("P0", "P1", "P2", "P3"),
    "category": (
        "equipment_failure",
        "network_it",
        "software_config",
        "safety",
        "facility",
        "consultation",
        "other",
    ),
    "followup": ("no", "yes"),
}
_SPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"\d")


def features(norm: str, words: Iterable[str], facts: Iterable[str]) -> set[str]:
    """The features of one message: ``norm`` is its normalised text, ``words`` its tokens and
    ``facts`` what the rule reader found (strings such as ``k:down`` or ``r:P1``)."""
    low = _DIGITS.sub("0", _SPACE.sub(" ", norm.lower()))
    text = f"\x02{low}\x03"
    out = {f"c{n}:{text[i : i + n]}" for n in (1, 2, 3) for i in range(len(text) - n + 1)}
    toks = [_DIGITS.sub("0", w.lower()) for w in words if not w.isspace()]
    out.update(f"w:{w}" for w in toks)
    out.update(f"b:{a}|{b}" for a, b in pairwise(toks))
    out.update(facts)
    size = len(low)
    out.add("len:" + ("1" if size <= 4 else "2" if size <= 12 else "3" if size <= 40 else "4"))
    return out


@dataclass(frozen=True, slots=True)
class Head:
    classes: tuple[str, ...]
    weights: np.ndarray  # (vocabulary, classes); a binary field has one column
    bias: np.ndarray

    def probabilities(self, rows: np.ndarray) -> dict[str, float]:
        return _softmax(self.classes, self.bias + self.weights[rows].sum(axis=0))


def _softmax(classes: tuple[str, ...], score: np.ndarray) -> dict[str, float]:
    if len(classes) == 2:  # one logit, sklearn's binary layout
        p = float(1.0 / (1.0 + np.exp(-score[0])))
        return {classes[0]: 1.0 - p, classes[1]: p}
    e = np.exp(score - score.max())
    e /= e.sum()
    return dict(zip(classes, e.tolist(), strict=True))


@dataclass(frozen=True, slots=True)
class IntakeModel:
    version: str
    vocabulary: dict[str, int]
    heads: dict[str, Head]
    regularisation: dict[str, float]  # field → the C it was fitted with (chosen on dev)
    _joined: list[tuple[str, tuple[str, ...], slice]] = field(default_factory=list)
    _weights: list[np.ndarray] = field(default_factory=list)  # every head's columns side by side

    def __post_init__(self) -> None:
        start = 0
        for name, head in self.heads.items():
            width = head.weights.shape[1]
            self._joined.append((name, head.classes, slice(start, start + width)))
            start += width
        self._weights.append(np.hstack([h.weights for h in self.heads.values()]))
        self._weights.append(np.concatenate([h.bias for h in self.heads.values()]))

    def predict(self, feats: set[str]) -> dict[str, dict[str, float]]:
        """field → class → probability for one message's features."""
        found = np.fromiter(map(self.vocabulary.get, feats, repeat(-1)), dtype=np.int64)
        weights, bias = self._weights
        score = bias + weights[found[found >= 0]].sum(axis=0)
        return {name: _softmax(classes, score[cols]) for name, classes, cols in self._joined}

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "vocabulary": np.array(sorted(self.vocabulary, key=self.vocabulary.__getitem__)),
            "meta": np.array(json.dumps({"version": self.version, "C": self.regularisation})),
        }
        for name, head in self.heads.items():
            arrays[f"{name}.weights"] = head.weights.astype(np.float32)
            arrays[f"{name}.bias"] = head.bias.astype(np.float32)
        with path.open("wb") as f:
            np.savez_compressed(f, allow_pickle=False, **arrays)


def _read(path: Path) -> IntakeModel:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        vocabulary = {str(f): i for i, f in enumerate(z["vocabulary"])}
        heads = {
            name: Head(classes, np.asarray(z[f"{name}.weights"]), np.asarray(z[f"{name}.bias"]))
            for name, classes in FIELDS.items()
        }
    return IntakeModel(str(meta["version"]), vocabulary, heads, dict(meta["C"]))


_lock = threading.Lock()
_loaded: IntakeModel | None = None


def load() -> IntakeModel:
    """The shipped model, read once (thread-safe)."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = _read(MODEL)
    return _loaded
