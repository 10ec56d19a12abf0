"""``gongdan train``: fit the intake model from the labelled messages, and score a split.

The labelled messages live in ``data/intake/{train,dev,test}.jsonl`` (one object a line: text,
is_fault_report, priority, category, device_code, followup, …; the README says how each split
was made). Training is deterministic (lbfgs, fixed order), so the shipped
``data/intake_model.npz`` can be rebuilt from the data and compared byte for byte:

1. every field's regularisation C is chosen on the dev split by log-loss, with a model fitted
   on train alone; the dev figures are printed;
2. the shipped model is fitted on train + dev with those choices.

The test split is never read by training; ``gongdan train --score test`` scores the shipped
model on it (what the README reports). scikit-learn is needed here only (the ``train`` extra);
reading a message needs numpy alone.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.nlp import classify as reader
from bot.nlp import intake_model
from bot.nlp.intake_model import FIELDS, Head, IntakeModel
from bot.nlp.text import normalize, token_spans

__all__ = ["DATA", "Example", "fit", "load_split", "refit", "score"]

DATA = Path(__file__).with_name("data") / "intake"
_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
_MIN_COUNT = 2  # a feature seen once in training only memorises its message


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    labels: dict[str, str]  # field → class, as in intake_model.FIELDS
    device_code: str | None


def load_split(name: str, data: Path = DATA) -> list[Example]:
    out: list[Example] = []
    path = data / f"{name}.jsonl"
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            labels = {
                "report": "yes" if row["is_fault_report"] else "no",
                "priority": row["priority"],
                "category": row["category"],
                "followup": "yes" if row.get("followup") else "no",
            }
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path.name}:{n}: {exc}") from None
        for field, value in labels.items():
            if value not in FIELDS[field]:
                raise ValueError(
                    f"{path.name}:{n}: {field} {value!r} is not one of {FIELDS[field]}"
                )
        out.append(Example(row["text"], labels, row.get("device_code")))
    return out


def _features(text: str) -> set[str]:
    norm = normalize(text)
    spans = token_spans(norm)
    rules = reader.read_rules(norm, spans)
    return intake_model.features(norm, (tok for tok, _, _ in spans), rules.facts)


def _matrix(rows: list[set[str]], vocab: dict[str, int]) -> Any:
    from scipy.sparse import csr_matrix

    indptr, indices = [0], []
    for feats in rows:
        indices.extend(sorted(vocab[f] for f in feats if f in vocab))
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.float64)
    return csr_matrix((data, indices, indptr), shape=(len(rows), len(vocab)))


def _vocabulary(rows: list[set[str]]) -> dict[str, int]:
    counts = Counter(f for feats in rows for f in feats)
    kept = sorted(
        f for f, c in counts.items() if c >= _MIN_COUNT or not f.startswith(("c", "w", "b"))
    )
    return {f: i for i, f in enumerate(kept)}


def _fit_head(x: Any, y: list[str], classes: tuple[str, ...], c: float) -> Head:
    from sklearn.linear_model import LogisticRegression

    present = sorted(set(y), key=classes.index)
    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
    model.fit(x, [present.index(v) for v in y])
    if len(classes) == 2:
        return Head(classes, model.coef_.T.copy(), model.intercept_.copy())
    # Classes absent from the labels get a weight column of zeros and a very low bias.
    weights = np.zeros((x.shape[1], len(classes)))
    bias = np.full(len(classes), -30.0)
    for k, name in enumerate(present):
        weights[:, classes.index(name)] = model.coef_[k]
        bias[classes.index(name)] = model.intercept_[k]
    return Head(classes, weights, bias)


def _log_loss(head: Head, x: Any, y: list[str]) -> float:
    total = 0.0
    for i, label in enumerate(y):
        rows = x[i].indices
        p = head.probabilities(rows)[label]
        total -= math.log(max(p, 1e-12))
    return total / len(y)


def fit(
    train: list[Example], dev: list[Example], log: Any = print
) -> tuple[IntakeModel, IntakeModel]:
    """Choose C per field on dev; return (the model fitted on train alone with those choices,
    for honest dev figures; the shipped model, fitted on train + dev)."""
    train_rows = [_features(e.text) for e in train]
    dev_rows = [_features(e.text) for e in dev]
    vocab = _vocabulary(train_rows)
    x_train, x_dev = _matrix(train_rows, vocab), _matrix(dev_rows, vocab)
    chosen: dict[str, float] = {}
    for field, classes in FIELDS.items():
        y_train = [e.labels[field] for e in train]
        y_dev = [e.labels[field] for e in dev]
        losses = {
            c: _log_loss(_fit_head(x_train, y_train, classes, c), x_dev, y_dev) for c in _GRID
        }
        chosen[field] = min(losses, key=losses.__getitem__)
        log(f"{field}: C={chosen[field]} dev log-loss {losses[chosen[field]]:.3f}")
    version = f"intake-{len(train)}-{len(dev)}-" + "-".join(f"{chosen[f]:g}" for f in FIELDS)
    dev_model = IntakeModel(
        version + "-train-only",
        vocab,
        {
            field: _fit_head(x_train, [e.labels[field] for e in train], classes, chosen[field])
            for field, classes in FIELDS.items()
        },
        chosen,
    )
    return dev_model, refit(train + dev, chosen, version, train_rows + dev_rows)


def refit(
    examples: list[Example],
    regularisation: dict[str, float],
    version: str,
    rows: list[set[str]] | None = None,
) -> IntakeModel:
    """The model fitted on ``examples`` with the given C per field (deterministic)."""
    rows = rows if rows is not None else [_features(e.text) for e in examples]
    vocab = _vocabulary(rows)
    x = _matrix(rows, vocab)
    heads = {
        field: _fit_head(x, [e.labels[field] for e in examples], classes, regularisation[field])
        for field, classes in FIELDS.items()
    }
    return IntakeModel(version, vocab, heads, dict(regularisation))


def score(examples: Sequence[Example], model: IntakeModel | None = None) -> dict[str, Any]:
    """The figures the README reports for one split, read by the whole reader."""
    m = model or intake_model.load()
    y_true: list[str] = []
    y_pred: list[str] = []
    report_ok = code_ok = cat_ok = follow_ok = 0
    bins = [[0, 0.0, 0] for _ in range(10)]  # calibration of the report field: n, conf, right
    for e in examples:
        norm = normalize(e.text)
        spans = token_spans(norm)
        rules = reader.read_rules(norm, spans)
        feats = intake_model.features(norm, (tok for tok, _, _ in spans), rules.facts)
        r = reader.decide(norm, spans, rules, m.predict(feats))
        right = r.is_fault_report == (e.labels["report"] == "yes")
        report_ok += right
        b = bins[min(9, int(r.confidence.report * 10))]
        b[0] += 1
        b[1] += r.confidence.report
        b[2] += right
        code_ok += (r.device_code or None) == (e.device_code or None)
        cat_ok += r.category.value == e.labels["category"]
        follow_ok += r.followup == (e.labels["followup"] == "yes")
        y_true.append(e.labels["priority"])
        y_pred.append(r.priority.value)
    n = len(examples)
    classes = FIELDS["priority"]
    confusion = [[sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == a and p == b)
                  for b in classes] for a in classes]  # fmt: skip
    f1s = []
    for k, _ in enumerate(classes):
        tp = confusion[k][k]
        fp = sum(confusion[j][k] for j in range(4)) - tp
        fn = sum(confusion[k]) - tp
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    ece = sum(abs(b[1] - b[2]) for b in bins if b[0]) / n
    return {
        "messages": n,
        "fault_report_accuracy": report_ok / n,
        "priority_macro_f1": sum(f1s) / 4,
        "priority_f1": dict(zip(classes, f1s, strict=True)),
        "p0_recall": confusion[0][0] / max(1, sum(confusion[0])),
        "device_code_exact": code_ok / n,
        "category_accuracy": cat_ok / n,
        "followup_accuracy": follow_ok / n,
        "report_calibration_error": ece,
        "confusion": {"rows_true_cols_predicted": list(classes), "matrix": confusion},
    }


def main(out: Path, evaluate: str | None, data: Path = DATA) -> int:
    if evaluate:
        print(json.dumps(score(load_split(evaluate, data)), ensure_ascii=False, indent=2))
        return 0
    train, dev = load_split("train", data), load_split("dev", data)
    dev_model, model = fit(train, dev)
    figures = score(dev, dev_model)  # a model that never saw dev: the figure to tune against
    print("dev (model fitted on train alone):")
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    model.save(out)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB, {len(model.vocabulary)} features)")
    return 0
