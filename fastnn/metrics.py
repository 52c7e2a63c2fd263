"""`fastnn evaluate`'s numbers: accuracy, loss, per-class precision, recall and F1, and the
confusion matrix, as a dict (for --json) and as a text table."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """counts[t, p]: examples of true class t predicted as p."""
    return np.bincount(np.asarray(y_true, np.int64) * n_classes + np.asarray(y_pred, np.int64),
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classification_report(y_true, y_pred, n_classes: int, loss: float | None = None) -> dict:
    """Precision, recall and F1 per class (0 when undefined, as scikit-learn's zero_division=0),
    their unweighted means (macro), accuracy, loss and the confusion matrix."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm).astype(float)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    classes = [{"class": c, "precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
                "support": int(actual[c])} for c in range(n_classes)]
    return {"examples": int(cm.sum()), "accuracy": float(tp.sum() / max(cm.sum(), 1)), "loss": loss,
            "macro": {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())},
            "classes": classes, "confusion_matrix": cm.tolist()}


def format_report(report: dict) -> str:
    lines = [f"examples: {report['examples']:,}", f"accuracy: {report['accuracy']:.4f}"]
    if report.get("loss") is not None:
        lines.append(f"loss: {report['loss']:.4f}")
    lines += ["", f"{'class':>5}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>7}"]
    for c in report["classes"]:
        lines.append(f"{c['class']:>5}  {c['precision']:>9.4f}  {c['recall']:>9.4f}  {c['f1']:>9.4f}  "
                     f"{c['support']:>7}")
    m = report["macro"]
    lines.append(f"{'macro':>5}  {m['precision']:>9.4f}  {m['recall']:>9.4f}  {m['f1']:>9.4f}  "
                 f"{report['examples']:>7}")
    cm = np.array(report["confusion_matrix"])
    width = max(5, len(str(cm.max())) + 1)
    lines += ["", "confusion matrix (rows: true class, columns: predicted class)",
              " " * 5 + "".join(f"{p:>{width}}" for p in range(len(cm)))]
    for t, row in enumerate(cm):
        lines.append(f"{t:>5}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)
