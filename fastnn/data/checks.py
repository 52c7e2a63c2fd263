"""Checks at the API boundary: the kernels check nothing, so everything is checked here first."""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def check_inputs(X, n_features: int, dtype: np.dtype, name: str = "X") -> np.ndarray:
    """A C-contiguous (n, n_features) array the kernels can read: uint8 pixels, else ``dtype``.

    uint8 inputs stay uint8 (the kernels scale them by 1/255); every other real dtype is converted
    to the model's dtype and must be finite.
    """
    X = np.asarray(X)
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise DataError(f"{name} must hold numbers, not {X.dtype}")
    if np.issubdtype(X.dtype, np.complexfloating):
        raise DataError(f"{name} must hold real numbers, not {X.dtype}")
    if X.ndim != 2:
        raise DataError(f"{name} must be 2-D (examples x features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise DataError(f"{name} has no examples")
    if X.shape[1] != n_features:
        raise DataError(f"{name} has {X.shape[1]} features per example, the network expects {n_features}")
    if X.dtype == np.uint8:
        return np.ascontiguousarray(X)
    if np.issubdtype(X.dtype, np.floating) and not np.isfinite(X).all():
        raise DataError(f"{name} contains NaN or infinite values")
    with np.errstate(over="ignore"):
        converted = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(converted).all():
        raise DataError(f"{name} has values too large for {np.dtype(dtype).name}")
    return converted


def check_labels(y, n_examples: int, n_classes: int, name: str = "y") -> np.ndarray:
    """int32 class labels in 0..n_classes-1, one per example."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{name} must be 1-D (one label per example), got shape {y.shape}")
    if y.shape[0] != n_examples:
        raise DataError(f"{name} has {y.shape[0]} labels for {n_examples} examples")
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
        raise DataError(f"{name} must hold integer class labels, not {y.dtype}")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise DataError(f"{name} must hold integer class labels; it has non-integer values")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(f"{name} has labels outside 0..{n_classes - 1}: found {y.min()}..{y.max()}")
    return np.ascontiguousarray(y, dtype=np.int32)


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive_float(value, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_targets(y, n_examples: int, n_outputs: int, dtype: np.dtype, name: str = "y") -> np.ndarray:
    """Finite regression targets as a C-contiguous (n, n_outputs) array of ``dtype``."""
    y = np.asarray(y)
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_) \
            or np.issubdtype(y.dtype, np.complexfloating):
        raise DataError(f"{name} must hold real numbers, not {y.dtype}")
    if y.ndim == 1 and n_outputs == 1:
        y = y[:, None]
    if y.shape != (n_examples, n_outputs):
        raise DataError(f"{name} must have shape ({n_examples}, {n_outputs}) for this network, got {y.shape}")
    y = np.ascontiguousarray(y, dtype=dtype)
    if not np.isfinite(y).all():
        raise DataError(f"{name} contains NaN or infinite values")
    return y


def check_binary_targets(y, n_examples: int, n_outputs: int, dtype: np.dtype, name: str = "y") -> np.ndarray:
    """0/1 targets of a sigmoid output as a C-contiguous (n, n_outputs) array of ``dtype``: one
    label per example for one output (shape (n,) or (n, 1)), else a row of 0/1 labels each."""
    y = np.asarray(y)
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_) \
            or np.issubdtype(y.dtype, np.complexfloating):
        raise DataError(f"{name} must hold 0/1 labels, not {y.dtype}")
    if y.ndim == 1 and n_outputs == 1:
        y = y[:, None]
    if y.shape != (n_examples, n_outputs):
        raise DataError(f"{name} must have shape ({n_examples}, {n_outputs}) for this network, got {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise DataError(f"{name} must hold 0/1 labels; it has other values")
    return np.ascontiguousarray(y, dtype=dtype)


def check_weights(sample_weight, class_weight, labels, n_examples: int, n_classes: int,
                  dtype: np.dtype) -> np.ndarray:
    """Per-example loss weights: sample_weight times the weight of each example's class."""
    if sample_weight is None and class_weight is None:  # every fit without weights: skip the checks
        return np.ones(n_examples, dtype=dtype)
    weights = np.ones(n_examples, dtype=np.float64)
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64) if _is_numeric(sample_weight) else None
        if w is None or w.shape != (n_examples,):
            raise DataError(f"sample_weight must be {n_examples} numbers, one per example")
        weights *= w
    if class_weight is not None:
        if labels is None:
            raise ValueError("class_weight needs a softmax (classification) output")
        per_class = np.ones(n_classes)
        items = class_weight.items() if isinstance(class_weight, dict) else enumerate(np.asarray(class_weight))
        for label, value in items:
            if not (isinstance(label, (int, np.integer)) and 0 <= label < n_classes):
                raise DataError(f"class_weight names a class {label!r} outside 0..{n_classes - 1}")
            per_class[label] = value
        weights *= per_class[labels]
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise DataError("sample and class weights must be finite and non-negative")
    if weights.sum() <= 0:
        raise DataError("sample and class weights are all zero")
    return weights.astype(dtype)


def _is_numeric(values) -> bool:
    a = np.asarray(values)
    return a.dtype != object and (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) \
        and not np.issubdtype(a.dtype, np.complexfloating)
