"""``gongdan train``: fit the intake model from the labelled messages, and score a split.

The labelled messages live in ``data/intake/{train,dev,test,test2}.jsonl`` (one object a line: text,
is_fault_report, priority, category, device_code, followup, …; the README says how each split
was made). Training is deterministic (lbfgs, fixed order), so the shipped
``data/intake_model.npz`` can be rebuilt from the data and compared byte for byte:

1. every field's regularisation C is chosen on the dev split by log-loss, with a model fitted
   on train alone; the dev figures are printed;
2. the shipped model is fitted on train + dev with those choices.

The priority head is fitted on features scaled by how well each tells a stop (P0) from the
rest (``_stop_scale``, NB-SVM's naive-Bayes ratios), folded back into its weights.

The held-out splits (test, test2) are never read by training; ``gongdan train --score test2``
(or ``test``, or ``test+test2``) scores the shipped model on them (what the README reports).
``gongdan train --cv`` cross-validates the whole reader on train + dev at several P0
thresholds (how ``classify.P0_THRESHOLD`` is chosen; a message with a ``running`` cue and no
stop keeps ``classify.RUNNING_P0_THRESHOLD``); ``--add-batch FILE`` adds newly written
messages to train and dev. scikit-learn is needed here only (the ``train`` extra);
reading a message needs numpy alone.
"""

from __future__ import annotations

import json
import math
import random
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

__all__ = [
    "DATA",
    "TESTS",
    "Example",
    "add_batch",
    "cross_validate",
    "figures",
    "fit",
    "folds",
    "load_split",
    "load_splits",
    "refit",
    "score",
]

DATA = Path(__file__).with_name("data") / "intake"
_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
_MIN_COUNT = 2  # a feature seen once in training only memorises its message
_SEED = 20261204
#: the held-out splits, never read by training (README: how each was written)
TESTS = ("test", "test2")
#: the P0 thresholds ``gongdan train --cv`` compares
CV_THRESHOLDS = (0.06, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12, 0.13, 0.14, 0.15, 0.18, 0.2, 0.25, 0.3)


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


def _stop_scale(x: Any, y: list[str]) -> np.ndarray:
    """Per feature, 1 + |log-count ratio| of P0 messages against the rest (add-one smoothed):
    the naive-Bayes scaling of NB-SVM (Wang & Manning 2012). The priority head is fitted on
    features scaled by it, so a feature that tells stops from the rest is penalised less
    by the regularisation; the scale is folded into the weights, so reading is unchanged."""
    stop = np.array([v == "P0" for v in y])
    p = np.asarray(x[stop].sum(axis=0)).ravel() + 1.0
    q = np.asarray(x[~stop].sum(axis=0)).ravel() + 1.0
    scale: np.ndarray = 1.0 + np.abs(np.log(p / p.sum()) - np.log(q / q.sum()))
    return scale


def _fit_head(x: Any, y: list[str], classes: tuple[str, ...], c: float) -> Head:
    from scipy.sparse import diags
    from sklearn.linear_model import LogisticRegression

    present = sorted(set(y), key=classes.index)
    # the priority head weighs features by how well they tell a stop from the rest
    scale = _stop_scale(x, y) if "P0" in classes else None
    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
    model.fit(x if scale is None else x @ diags(scale), [present.index(v) for v in y])
    coef = model.coef_ if scale is None else model.coef_ * scale  # folded back
    if len(classes) == 2:
        return Head(classes, coef.T.copy(), model.intercept_.copy())
    # Classes absent from the labels get a weight column of zeros and a very low bias.
    weights = np.zeros((x.shape[1], len(classes)))
    bias = np.full(len(classes), -30.0)
    for k, name in enumerate(present):
        weights[:, classes.index(name)] = coef[k]
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


def _read(e: Example, model: IntakeModel, p0_threshold: float) -> reader.Reading:
    norm = normalize(e.text)
    spans = token_spans(norm)
    rules = reader.read_rules(norm, spans)
    feats = intake_model.features(norm, (tok for tok, _, _ in spans), rules.facts)
    return reader.decide(norm, spans, rules, model.predict(feats), p0_threshold)


def score(
    examples: Sequence[Example],
    model: IntakeModel | None = None,
    p0_threshold: float = reader.P0_THRESHOLD,
) -> dict[str, Any]:
    """The figures the README reports for one split, read by the whole reader."""
    m = model or intake_model.load()
    return figures(examples, [_read(e, m, p0_threshold) for e in examples])


def figures(examples: Sequence[Example], readings: Sequence[reader.Reading]) -> dict[str, Any]:
    """The figures of ``readings``, one per example, against the examples' labels."""
    y_true: list[str] = []
    y_pred: list[str] = []
    report_ok = code_ok = cat_ok = follow_ok = 0
    bins = [[0, 0.0, 0] for _ in range(10)]  # calibration of the report field: n, conf, right
    for e, r in zip(examples, readings, strict=True):
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


def folds(examples: Sequence[Example], k: int = 5, seed: int = _SEED) -> list[int]:
    """Each example's fold, 0..k-1: shuffled with ``seed`` and dealt out in turn within each
    priority × report stratum (deterministic)."""
    strata: dict[tuple[str, str], list[int]] = {}
    for i, e in enumerate(examples):
        strata.setdefault((e.labels["priority"], e.labels["report"]), []).append(i)
    out = [0] * len(examples)
    rng = random.Random(seed)
    for key in sorted(strata):
        members = strata[key]
        rng.shuffle(members)
        for n, i in enumerate(members):
            out[i] = n % k
    return out


def cross_validate(
    examples: list[Example],
    regularisation: dict[str, float],
    thresholds: Sequence[float] = CV_THRESHOLDS,
    k: int = 5,
    log: Any = print,
) -> dict[float, dict[str, Any]]:
    """k-fold cross-validation of the whole reader (rules, model, decision) on ``examples``
    with the given C per field: P0 threshold → the figures of the out-of-fold readings."""
    rows = [_features(e.text) for e in examples]
    fold = folds(examples, k)
    probs: list[dict[str, dict[str, float]]] = [{} for _ in examples]
    for f in range(k):
        inside = [i for i in range(len(examples)) if fold[i] != f]
        model = refit([examples[i] for i in inside], regularisation, f"cv{f}",
                      [rows[i] for i in inside])  # fmt: skip
        for i in range(len(examples)):
            if fold[i] == f:
                probs[i] = model.predict(rows[i])
        log(f"fold {f + 1}/{k} done")
    out: dict[float, dict[str, Any]] = {}
    for t in thresholds:
        readings = []
        for e, p in zip(examples, probs, strict=True):
            norm = normalize(e.text)
            spans = token_spans(norm)
            readings.append(reader.decide(norm, spans, reader.read_rules(norm, spans), p, t))
        out[t] = figures(examples, readings)
    return out


def add_batch(batch: Path, data: Path = DATA, seed: int = _SEED) -> tuple[int, int, int]:
    """Append a batch of newly written labelled messages to train and dev, as every batch
    was: shuffled with ``seed`` and split 4:1 within each priority × report stratum. Messages
    already in any split (test and test2 included) are dropped. Returns (train, dev, dropped)."""
    load_split(batch.stem, batch.parent)  # the same checks as every split
    seen = {
        e.text for name in ("train", "dev", *TESTS) if (data / f"{name}.jsonl").exists()
        for e in load_split(name, data)
    }  # fmt: skip
    strata: dict[tuple[str, bool], list[str]] = {}
    dropped = 0
    for line in batch.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row["text"] in seen:
            dropped += 1
            continue
        seen.add(row["text"])
        strata.setdefault((row["priority"], row["is_fault_report"]), []).append(line)
    rng = random.Random(seed)
    out: dict[str, list[str]] = {"train": [], "dev": []}
    for key in sorted(strata):
        lines = strata[key]
        rng.shuffle(lines)
        cut = round(len(lines) * 0.8)
        out["train"] += lines[:cut]
        out["dev"] += lines[cut:]
    for name, lines in out.items():
        path = data / f"{name}.jsonl"
        text = path.read_text(encoding="utf-8")
        sep = "" if not text or text.endswith("\n") else "\n"
        path.write_text(text + sep + "".join(f"{line}\n" for line in lines), encoding="utf-8")
    return len(out["train"]), len(out["dev"]), dropped


def load_splits(names: str, data: Path = DATA) -> list[Example]:
    """One split, or several joined by ``+`` (``test+test2``)."""
    return [e for name in names.split("+") for e in load_split(name, data)]


def main(
    out: Path,
    evaluate: str | None,
    data: Path = DATA,
    cv: bool = False,
    batch: Path | None = None,
) -> int:
    if batch is not None:
        n_train, n_dev, dropped = add_batch(batch, data)
        print(f"{batch.name}: {n_train} to train, {n_dev} to dev, {dropped} already in a split")
        return 0
    if evaluate:
        print(json.dumps(score(load_splits(evaluate, data)), ensure_ascii=False, indent=2))
        return 0
    if cv:  # the figures the decision threshold is chosen by; writes no model
        examples = load_split("train", data) + load_split("dev", data)
        shipped = intake_model.load().regularisation
        results = cross_validate(examples, shipped)
        print(f"{len(examples)} train + dev messages, 5-fold, C as shipped {shipped}")
        print(f"(a running cue and no stop: P0 from {reader.RUNNING_P0_THRESHOLD} throughout)")
        print("P0 threshold  report acc  macro-F1  P0 recall  P0 precision  code exact")
        for t, r in results.items():
            m = r["confusion"]["matrix"]
            precision = m[0][0] / max(1, sum(row[0] for row in m))
            print(
                f"{t:12.2f}  {r['fault_report_accuracy']:10.3f}  {r['priority_macro_f1']:8.3f}  "
                f"{r['p0_recall']:9.3f}  {precision:12.3f}  {r['device_code_exact']:10.3f}"
            )
        return 0
    train, dev = load_split("train", data), load_split("dev", data)
    dev_model, model = fit(train, dev)
    figures = score(dev, dev_model)  # a model that never saw dev: the figure to tune against
    print("dev (model fitted on train alone):")
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    model.save(out)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB, {len(model.vocabulary)} features)")
    return 0
