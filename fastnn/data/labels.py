"""Class labels of any type (numbers, strings, bools), as scikit-learn takes them: the model keeps
the class names (``MLP.classes``, JSON-able, saved in its file) and the kernels see their
indices."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import DataError
from .checks import one_label_each


def _name(value):
    """A class name as a plain JSON-able Python value: 3.0 and 3 are one class, as in a CSV."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            raise DataError(f"a class label cannot be {value}")
        return int(value) if float(value).is_integer() else float(value)
    if isinstance(value, (str, np.str_)):
        return str(value)
    raise DataError(f"class labels must be numbers, strings or bools, not {type(value).__name__}")


def _key(name):
    """How labels are matched to names: by value for numbers, so 1, 1.0 and np.int8(1) agree."""
    return ("s", name) if isinstance(name, str) else ("b" if isinstance(name, bool) else "n", name)


def is_index_labels(y, n_classes: int) -> bool:
    """Whether y holds integer labels that are all in 0..n_classes-1 (their own indices)."""
    y = np.asarray(y)
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
        return False
    if y.size == 0:
        return True
    if not np.issubdtype(y.dtype, np.integer):
        finite = np.isfinite(y).all()
        if not finite or not (y == np.round(y)).all():
            return False
    return bool(y.min() >= 0 and y.max() < n_classes)


def class_names(y) -> list:
    """The distinct labels of y as class names, sorted: numbers, then strings."""
    names = {_key(n): n for n in map(_name, np.asarray(y).tolist())}
    return [names[k] for k in sorted(names, key=lambda k: (k[0] == "s", k))]


def learn_classes(y, n_classes: int, name: str = "y") -> list:
    """The sorted distinct labels of y, as class names for a network of n_classes outputs."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{name} must be 1-D (one label per example), got shape {y.shape}")
    names = class_names(y)
    if len(names) > n_classes:
        shown = ", ".join(map(repr, names[:8])) + (", ..." if len(names) > 8 else "")
        raise DataError(f"{name} has {len(names)} classes ({shown}), the network has {n_classes} outputs")
    if len(names) < n_classes:  # name the outputs no label reached after the labels seen
        raise DataError(f"{name} has {len(names)} classes for a network of {n_classes} outputs: give the "
                        f"class names with MLP(..., classes=[...]) when some are missing from y")
    return names


def check_classes(classes: Sequence, n_classes: int, output: str) -> list:
    """Class names given to MLP: one per output of a softmax network, distinct."""
    if output != "softmax":
        raise ValueError("classes are names of a softmax output's classes")
    names = [_name(c) for c in classes]
    if len(names) != n_classes or len({_key(n) for n in names}) != len(names):
        raise ValueError(f"classes must be {n_classes} distinct names, one per output, got {classes!r}")
    return names


def class_indices(y, classes: list, n_examples: int, name: str = "y") -> np.ndarray:
    """int32 indices into ``classes`` of labels y; DataError naming a label that is no class."""
    y = one_label_each(y, n_examples, name)
    index = {_key(c): i for i, c in enumerate(classes)}
    if y.dtype.kind in "iu" and all(type(c) is int for c in classes):  # the common case, vectorised
        names = np.array(classes)
        order = np.argsort(names)
        at = np.searchsorted(names[order], y).clip(0, len(names) - 1)
        if (names[order][at] == y).all():
            return order[at].astype(np.int32)
    labels = np.empty(n_examples, dtype=np.int32)
    for i, value in enumerate(y.tolist()):
        j = index.get(_key(_name(value)))
        if j is None:
            raise DataError(f"{name} has the label {value!r} (example {i}), which is not one of the "
                            f"classes {classes!r}")
        labels[i] = j
    return labels
