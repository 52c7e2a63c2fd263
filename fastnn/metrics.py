"""Evaluation numbers, for MLP.evaluate and `fastnn evaluate`: accuracy, per-class precision,
recall and F1 and the confusion matrix of classes; R², RMSE and MAE of values; as dicts (for
--json) and as text."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """counts[t, p]: examples of true class t predicted as p."""
    return np.bincount(np.asarray(y_true, np.int64) * n_classes + np.asarray(y_pred, np.int64),
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classification_report(y_true, y_pred, n_classes: int, loss: float | None = None, names: list | None = None) -> dict:
    """Precision, recall and F1 per class (0 when undefined, as scikit-learn's zero_division=0),
    their unweighted means (macro), accuracy, loss and the confusion matrix; classes are
    class indices y_true and y_pred, shown by ``names`` (default: the indices)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm).astype(float)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    classes = [{"class": names[c] if names is not None else c, "precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
                "support": int(actual[c])} for c in range(n_classes)]
    return {"examples": int(cm.sum()), "accuracy": float(tp.sum() / max(cm.sum(), 1)), "loss": loss,
            "macro": {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())},
            "classes": classes, "confusion_matrix": cm.tolist()}


def format_report(report: dict) -> str:
    lines = [f"examples: {report['examples']:,}", f"accuracy: {report['accuracy']:.4f}"]
    if report.get("loss") is not None:
        lines.append(f"loss: {report['loss']:.4f}")
    names = [str(c["class"]) for c in report["classes"]]
    w = max(5, *map(len, names))
    lines += ["", f"{'class':>{w}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>7}"]
    for name, c in zip(names, report["classes"]):
        lines.append(f"{name:>{w}}  {c['precision']:>9.4f}  {c['recall']:>9.4f}  {c['f1']:>9.4f}  {c['support']:>7}")
    m = report["macro"]
    lines.append(f"{'macro':>{w}}  {m['precision']:>9.4f}  {m['recall']:>9.4f}  {m['f1']:>9.4f}  "
                 f"{report['examples']:>7}")
    cm = np.array(report["confusion_matrix"])
    width = max(5, len(str(cm.max())) + 1, *(len(n) + 1 for n in names))
    lines += ["", "confusion matrix (rows: true class, columns: predicted class)",
              " " * w + "".join(f"{n:>{width}}" for n in names)]
    for name, row in zip(names, cm):
        lines.append(f"{name:>{w}}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def regression_report(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """R², RMSE and MAE (R² as scikit-learn's r2_score: averaged over the outputs)."""
    predicted, truth = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
    if predicted.ndim == 1:
        predicted, truth = predicted[:, None], truth.reshape(-1, 1)
    error = predicted - truth
    spread = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    residual = (error ** 2).sum(axis=0)
    r2 = np.where(spread > 0, 1 - residual / np.where(spread > 0, spread, 1), np.where(residual > 0, 0.0, 1.0))
    return {"examples": int(truth.shape[0]), "r2": float(r2.mean()), "rmse": float(np.sqrt((error ** 2).mean())),
            "mae": float(np.abs(error).mean())}


def format_regression(report: dict) -> str:
    return "\n".join([f"examples: {report['examples']:,}", f"R²: {report['r2']:.4f}", f"RMSE: {report['rmse']:.6g}",
                      f"MAE: {report['mae']:.6g}"])
