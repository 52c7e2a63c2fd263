"""`fastnn plot`'s pictures, as PNG files of a fixed size in pixels (inches x dpi): training curves,
the confusion matrix and a grid of misclassified digits.

matplotlib is imported only inside the functions that draw (these and show.save_png), so that
``import fastnn`` stays fast, and only its object API is used (Figure + the Agg canvas behind
savefig): no pyplot, no display, no global backend state.
"""

from __future__ import annotations

import numpy as np

from .show import as_image, value_range

CURVES_SIZE = (10.0, 4.0)
CONFUSION_SIZE = (6.0, 6.0)
GRID_SIZE = (8.0, 8.0)


def _figure(size, dpi):
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        from ..errors import FastnnError
        raise FastnnError("fastnn plot needs matplotlib: pip install 'fastnn[plot]'") from e
    return Figure(figsize=size, dpi=dpi)


def _save(fig, path, dpi) -> None:
    from ..errors import FastnnError
    try:
        fig.savefig(path, dpi=dpi, format="png")
    except OSError as e:
        raise FastnnError(f"could not write {path}: {e.strerror or e}") from e


def curves(rows: list[dict], path, dpi: int = 100) -> None:
    """Loss and accuracy per epoch, training and (when logged) validation."""
    fig = _figure(CURVES_SIZE, dpi)
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in rows]
    for i, (metric, title) in enumerate((("loss", "loss"), ("accuracy", "accuracy"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for prefix, label, style in (("", "train", "o-"), ("val_", "validation", "s--")):
            points = [(e, r[prefix + metric]) for e, r in zip(epochs, rows) if r.get(prefix + metric) is not None]
            if points:
                ax.plot(*zip(*points), style, label=label, markersize=3)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    _save(fig, path, dpi)


def confusion(matrix, path, dpi: int = 100, names: list | None = None) -> None:
    """The confusion matrix as a heat map, counts written in the cells, classes by ``names``."""
    cm = np.asarray(matrix)
    fig = _figure(CONFUSION_SIZE, dpi)
    ax = fig.add_subplot()
    ax.imshow(cm, cmap="Blues")
    k = len(cm)
    labels = [str(n) for n in names] if names is not None else [str(c) for c in range(k)]
    ax.set_xticks(range(k), labels, rotation=45 if max(map(len, labels)) > 2 else 0, ha="right" if
                  max(map(len, labels)) > 2 else "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"confusion matrix ({cm.sum():,} examples, accuracy {accuracy:.4f})")
    if k <= 20:
        for t in range(k):
            for p in range(k):
                ax.text(p, t, str(cm[t, p]), ha="center", va="center", fontsize=7,
                        color="white" if cm[t, p] > cm.max() / 2 else "black")
    fig.tight_layout()
    _save(fig, path, dpi)


def misclassified(X, y_true, y_pred, path, dpi: int = 100, limit: int = 36) -> int:
    """A grid of (up to ``limit``) misclassified digits titled 'pred P / true T'; returns how many
    examples were misclassified in all. Drawn in the range of X's values (show.value_range)."""
    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))
    limits = value_range(X)
    fig = _figure(GRID_SIZE, dpi)
    shown = wrong[:limit]
    if shown.size == 0:
        fig.text(0.5, 0.5, "no misclassified examples", ha="center", va="center", fontsize=16)
    cols = max(1, int(np.ceil(np.sqrt(shown.size))))
    rows = max(1, int(np.ceil(shown.size / cols)))
    for i, index in enumerate(shown):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(as_image(X[index], limits), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"pred {y_pred[index]} / true {y_true[index]}", fontsize=8,
                     color="crimson")
        ax.set_axis_off()
    fig.suptitle(f"{wrong.size:,} misclassified of {len(y_true):,}" +
                 (f" (first {shown.size})" if wrong.size > shown.size else ""))
    fig.tight_layout()
    _save(fig, path, dpi)
    return int(wrong.size)
