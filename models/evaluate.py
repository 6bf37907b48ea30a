"""Scoring a model on NSL-KDD-format files (the test sets, or the extractor's labelled output)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from feature_extractor.record import CLASSES, RowError
from models import data
from models.runtime import DEFAULT_MODEL, Classifier, ModelError

NORMAL = CLASSES.index("normal")


def metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """5-class accuracy, binary (normal vs attack) accuracy, macro-F1, per-class P/R/F1."""
    k = len(CLASSES)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    per_class = {}
    f1s = []
    for i, name in enumerate(CLASSES):
        tp = confusion[i, i]
        predicted = confusion[:, i].sum()
        actual = confusion[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall),
                           "f1": float(f1), "support": int(actual)}
        if actual:
            f1s.append(f1)
    normal_rows = y_true == NORMAL
    return {
        "rows": int(len(y_true)),
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
        "binary_accuracy": float(((y_true == NORMAL) == (y_pred == NORMAL)).mean())
        if len(y_true) else 0.0,
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "false_positive_rate": float((y_pred[normal_rows] != NORMAL).mean())
        if normal_rows.any() else 0.0,
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def evaluate_file(clf: Classifier, path: str | Path) -> dict:
    rows = data.read_rows(path)
    if any(label is None for label in rows.labels):
        raise RowError(f"{path}: rows without a label cannot be scored")
    probs = clf.predict(rows.features)
    result = metrics(np.array(rows.labels), probs.argmax(axis=1))
    return {"file": str(path), **result}


def evaluate_command(files: list[str], model: str | None, as_json: bool) -> int:
    try:
        clf = Classifier(model or DEFAULT_MODEL)
    except ModelError as exc:
        print(f"kdd-sensor: error: {exc}", file=sys.stderr)
        return 1
    paths = files or [str(data.TEST), str(data.TEST21)]
    results = []
    for path in paths:
        try:
            results.append(evaluate_file(clf, path))
        except (OSError, RowError) as exc:
            print(f"kdd-sensor: error: {exc}", file=sys.stderr)
            return 1
    if as_json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            print(format_result(r))
    return 0


def format_result(r: dict) -> str:
    lines = [f"{r['file']}: {r['rows']} rows  accuracy {r['accuracy']:.4f}  "
             f"binary {r['binary_accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}  "
             f"FPR(normal) {r['false_positive_rate']:.4f}"]
    for name, m in r["per_class"].items():
        lines.append(f"  {name:7s} precision {m['precision']:.3f}  recall {m['recall']:.3f}  "
                     f"f1 {m['f1']:.3f}  support {m['support']}")
    return "\n".join(lines)
