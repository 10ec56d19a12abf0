"""Field-level scores of ``bot.nlp.diagnosis`` against the hand-labelled notes.

``python -m tests.nlp.score_diagnosis [labelled.jsonl] [-v]`` prints the scores (and with -v
every field that differs). Scored, as the issue asks: parts (name + qty) and measurements
(quantity + value within 1e-6 + unit, and a range's high end likewise; ``approx`` is not
scored) as micro precision/recall/F1 over all notes; the suggested state and the equipment as
accuracy. Shown for information: actions (exact text, F1) and exact-match accuracy of symptom,
suspected cause and next step; these are free text and a label written by hand rarely matches
a rule's wording to the character. Text compares case-insensitively with surrounding spaces ignored.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LABELLED = Path(__file__).parents[1] / "fixtures" / "diagnosis" / "labelled.jsonl"
TOLERANCE = 1e-6
TEXT_FIELDS = ("equipment", "symptom", "suspected_cause", "next_step", "suggested_state")


@dataclass(frozen=True, slots=True)
class F1:
    matched: int
    predicted: int
    expected: int

    @property
    def precision(self) -> float:
        return self.matched / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.expected if self.expected else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __str__(self) -> str:
        counts = f"{self.matched} matched, {self.predicted} found, {self.expected} labelled"
        return f"P {self.precision:.3f}  R {self.recall:.3f}  F1 {self.f1:.3f}  ({counts})"


@dataclass(frozen=True, slots=True)
class Scores:
    notes: int
    parts: F1
    measurements: F1
    actions: F1
    accuracy: dict[str, float]  # per field in TEXT_FIELDS


def load_labelled(path: Path = LABELLED) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _text(value: object) -> str | None:
    return None if value is None else str(value).strip().casefold()


def _counted(matched: int, predicted: Sequence[object], expected: Sequence[object]) -> F1:
    return F1(matched, len(predicted), len(expected))


def _parts(expected: Sequence[Any], predicted: Sequence[Any]) -> F1:
    key = Counter((_text(p["name"]), int(p["qty"])) for p in expected)
    got = Counter((_text(p["name"]), int(p["qty"])) for p in predicted)
    return _counted(sum((key & got).values()), predicted, expected)


def _measurements(expected: Sequence[Any], predicted: Sequence[Any]) -> F1:
    left = list(predicted)
    matched = 0
    for want in expected:
        for i, have in enumerate(left):
            if (
                _text(have["quantity"]) == _text(want["quantity"])
                and have["unit"] == want["unit"]
                and abs(float(have["value"]) - float(want["value"])) <= TOLERANCE
                and _same_high(have.get("high"), want.get("high"))
            ):
                matched += 1
                del left[i]
                break
    return _counted(matched, predicted, expected)


def _same_high(have: object, want: object) -> bool:
    """A range (七十到八十度) matches only a range with the same high end."""
    if have is None or want is None:
        return have is None and want is None
    return abs(float(str(have)) - float(str(want))) <= TOLERANCE


def _actions(expected: Sequence[Any], predicted: Sequence[Any]) -> F1:
    hit = Counter(map(_text, expected)) & Counter(map(_text, predicted))
    return _counted(sum(hit.values()), predicted, expected)


def _add(a: F1, b: F1) -> F1:
    return F1(a.matched + b.matched, a.predicted + b.predicted, a.expected + b.expected)


def score(pairs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> Scores:
    """Scores of (expected, predicted) pairs of ``Diagnosis.as_json()`` dicts."""
    parts = measurements = actions = F1(0, 0, 0)
    right = Counter[str]()
    notes = 0
    for expected, predicted in pairs:
        notes += 1
        parts = _add(parts, _parts(expected["parts_needed"], predicted["parts_needed"]))
        measurements = _add(
            measurements, _measurements(expected["measurements"], predicted["measurements"])
        )
        actions = _add(actions, _actions(expected["actions_taken"], predicted["actions_taken"]))
        for name in TEXT_FIELDS:
            right[name] += _text(expected[name]) == _text(predicted[name])
    accuracy = {name: right[name] / notes if notes else 0.0 for name in TEXT_FIELDS}
    return Scores(notes, parts, measurements, actions, accuracy)


def differences(expected: Mapping[str, Any], predicted: Mapping[str, Any]) -> list[str]:
    """Human-readable lines for the fields that differ (lists compared as scored)."""
    out = [
        f"{name}: expected {expected[name]!r}, got {predicted[name]!r}"
        for name in TEXT_FIELDS
        if _text(expected[name]) != _text(predicted[name])
    ]
    checks = (
        ("parts_needed", _parts),
        ("measurements", _measurements),
        ("actions_taken", _actions),
    )
    for name, check in checks:
        result = check(expected[name], predicted[name])
        if result.matched != result.expected or result.matched != result.predicted:
            out.append(f"{name}: expected {expected[name]!r}, got {predicted[name]!r}")
    return out


def run(labelled: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    from bot.nlp.diagnosis import diagnose

    return [(case["expected"], diagnose(case["text"]).as_json()) for case in labelled]


def report(scores: Scores) -> str:
    acc = scores.accuracy
    return "\n".join([
        f"notes           {scores.notes}",
        f"parts           {scores.parts}",
        f"measurements    {scores.measurements}",
        f"state accuracy  {acc['suggested_state']:.3f}",
        f"equipment acc.  {acc['equipment']:.3f}",
        "-- for information (free text, exact match) --",
        f"actions         {scores.actions}",
        f"symptom acc.    {acc['symptom']:.3f}",
        f"cause acc.      {acc['suspected_cause']:.3f}",
        f"next step acc.  {acc['next_step']:.3f}",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=LABELLED)
    parser.add_argument("-v", "--verbose", action="store_true", help="print every difference")
    args = parser.parse_args(argv)
    labelled = load_labelled(args.path)
    pairs = run(labelled)
    groups: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for case, pair in zip(labelled, pairs, strict=True):
        groups.setdefault(str(case["id"])[0], []).append(pair)
        if args.verbose and (diff := differences(*pair)):
            print(f"[{case['id']}] {case['text']}\n  " + "\n  ".join(diff))
    print(report(score(pairs)))
    if len(groups) > 1:
        for prefix, group in sorted(groups.items()):
            s = score(group)
            print(f"  {prefix}*: {s.notes} notes, parts F1 {s.parts.f1:.3f}, measurements F1 "
                  f"{s.measurements.f1:.3f}, state {s.accuracy['suggested_state']:.3f}, "
                  f"equipment {s.accuracy['equipment']:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
