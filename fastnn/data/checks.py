"""Checks at the API boundary: the kernels check nothing, so everything is checked here first.

Also the bounds that keep hostile input from costing more than it is worth: a network's size
(MAX_PARAMETERS and the memory it needs, checked before anything is allocated), the memory
this process can still allocate, and the rule that only regular files are read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from ..errors import DataError

#: Most parameters (weights and biases) a network may have: 8 GiB as float32, far more than
#: these CPU kernels train in reasonable time. ``MLP`` and ``fastnn train --layers`` refuse
#: larger networks, and networks that do not fit in memory, before allocating anything.
MAX_PARAMETERS = 2**31


def check_inputs(X, n_features: int, dtype: np.dtype, name: str = "X", keep_uint8: bool = True) -> np.ndarray:
    """A C-contiguous (n, n_features) array the kernels can read: uint8 pixels (``keep_uint8``:
    the kernels divide them by 255 through a table), else ``dtype``, finite."""
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
    if X.dtype == np.uint8 and keep_uint8:
        return np.ascontiguousarray(X)
    if np.issubdtype(X.dtype, np.floating) and not np.isfinite(X).all():
        raise DataError(f"{name} contains NaN or infinite values")
    with np.errstate(over="ignore"):
        converted = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(converted).all():
        raise DataError(f"{name} has values too large for {np.dtype(dtype).name}")
    return converted


def one_label_each(y, n_examples: int, name: str = "y") -> np.ndarray:
    """y as an array of one label per example; DataError otherwise."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{name} must be 1-D (one label per example), got shape {y.shape}")
    if y.shape[0] != n_examples:
        raise DataError(f"{name} has {y.shape[0]} labels for {n_examples} examples")
    return y


def check_labels(y, n_examples: int, n_classes: int, name: str = "y") -> np.ndarray:
    """int32 class labels in 0..n_classes-1, one per example."""
    y = one_label_each(y, n_examples, name)
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


def check_targets(y, n_examples: int, n_outputs: int, dtype: np.dtype, name: str = "y",
                  what: str = "real numbers") -> np.ndarray:
    """Finite regression targets as a C-contiguous (n, n_outputs) array of ``dtype`` (one per
    example may be given as shape (n,) for one output)."""
    y = np.asarray(y)
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_) \
            or np.issubdtype(y.dtype, np.complexfloating):
        raise DataError(f"{name} must hold {what}, not {y.dtype}")
    if y.ndim == 1 and n_outputs == 1:
        y = y[:, None]
    if y.shape != (n_examples, n_outputs):
        raise DataError(f"{name} must have shape ({n_examples}, {n_outputs}) for this network, got {y.shape}")
    y = np.ascontiguousarray(y, dtype=dtype)
    if not np.isfinite(y).all():
        raise DataError(f"{name} contains NaN or infinite values")
    return y


def check_binary_targets(y, n_examples: int, n_outputs: int, dtype: np.dtype, name: str = "y") -> np.ndarray:
    """0/1 targets of a sigmoid output, as check_targets gives them: one label per example for
    one output, else a row of 0/1 labels each."""
    if not np.isin(np.asarray(y), (0, 1)).all():  # NaN, text and 0.5 alike
        raise DataError(f"{name} must hold 0/1 labels; it has other values")
    return check_targets(y, n_examples, n_outputs, dtype, name, what="0/1 labels")


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


# -- sizes and memory --------------------------------------------------------------------------

def check_layer_sizes(sizes, name: str = "sizes") -> tuple[int, ...]:
    """``sizes`` as a tuple of Python ints: at least two, each an integer >= 1 (numpy integers
    are fine; bools are refused, True is not a width). ValueError naming ``name`` otherwise."""
    sizes = tuple(sizes)
    integers = all(isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in sizes)
    if len(sizes) < 2 or not integers or min(sizes) < 1:
        raise ValueError(f"{name} must be at least two positive integers, got {sizes!r}")
    return tuple(int(s) for s in sizes)


def parameter_count(sizes: tuple[int, ...]) -> int:
    """Weights and biases of a dense network with these layer widths (exact, any size)."""
    return sum((n_in + 1) * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def check_network_size(sizes: tuple[int, ...], itemsize: int, name: str = "sizes") -> None:
    """ValueError, before anything is allocated, for a network of more than MAX_PARAMETERS
    parameters or one whose construction would not fit in memory.

    Building a network takes its parameters (``itemsize`` bytes each) plus the float64 draws
    that initialise its largest layer (two arrays of its n_in x n_out weights); the check
    compares that with memory_available(). Training needs more (gradients, optimizer state,
    batch buffers): a network that passes may still run out of memory later.
    """
    count = parameter_count(sizes)
    network = f"{name} {'-'.join(_integer_text(s, grouped=False) for s in sizes)}"
    if count > MAX_PARAMETERS:
        raise ValueError(f"{network} would have {_integer_text(count)} parameters, more than fastnn's "
                         f"limit of {MAX_PARAMETERS:,} (fastnn.data.checks.MAX_PARAMETERS)")
    largest = max(n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    needed = count * itemsize + 2 * 8 * largest
    available, bound = memory_available()
    if needed > available:
        raise ValueError(f"{network} would have {count:,} parameters, which take about "
                         f"{format_bytes(needed)} to build (the parameters and the float64 draws of the "
                         f"largest layer's initial weights): more than the {format_bytes(available)} {bound}")


def memory_available() -> tuple[float, str]:
    """(bytes, what sets that bound): how much more this process may allocate, as far as the
    system says. The bound is the smallest of the machine's physical memory and what the
    address-space and data limits (``ulimit -v``, ``ulimit -d``) leave above what the process
    already uses; ``(inf, "")`` when none of them is known."""
    bounds = [(float("inf"), "")]
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and page_size > 0:
            bounds.append((pages * page_size, "of the machine's physical memory"))
    except (AttributeError, ValueError, OSError):  # not every platform has these names
        pass
    try:
        import resource
    except ImportError:  # Windows
        return min(bounds)
    used = _memory_in_use()
    for limit, name, field in ((resource.RLIMIT_AS, "ulimit -v (RLIMIT_AS)", "size"),
                               (resource.RLIMIT_DATA, "ulimit -d (RLIMIT_DATA)", "data")):
        soft = resource.getrlimit(limit)[0]
        if soft != resource.RLIM_INFINITY:
            bounds.append((max(soft - used.get(field, 0), 0), f"that {name} leaves this process"))
    return min(bounds)


def _memory_in_use() -> dict[str, int]:
    """The process's address space ("size") and data segment ("data"), in bytes, from
    /proc/self/statm; empty where that file does not exist."""
    try:
        with open("/proc/self/statm") as f:
            fields = [int(v) for v in f.read().split()]
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return {}
    return {"size": fields[0] * page_size, "data": fields[5] * page_size}


def check_memory(n_bytes: int, what: str, error: type[Exception] = DataError) -> None:
    """``error`` unless ``n_bytes`` more fit in memory_available(); ``what`` says what needs them
    ("reading IDX file x.idx")."""
    available, bound = memory_available()
    if n_bytes > available:
        raise error(f"not enough memory for {what}: it needs {format_bytes(n_bytes)}, more than the "
                    f"{format_bytes(available)} {bound}")


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'; any size, however large."""
    if n < 1024:
        return f"{int(n)} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        n /= 1024
        if n < 1024 or unit == "EiB":
            return f"{n:,.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def _integer_text(n: int, grouped: bool = True) -> str:
    """``n`` (with thousands separators if ``grouped``); a short description where str() would
    refuse it (Python converts at most 4,300 digits)."""
    if n.bit_length() > 256:
        return f"<a {n.bit_length():,}-bit number>"
    return f"{n:,}" if grouped else str(n)


# -- files -------------------------------------------------------------------------------------

_SPECIAL_FILES = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def regular_file(path, kind: str, error: type[Exception] = DataError) -> Path:
    """``path`` as a Path once stat (which opens nothing) shows an existing regular file.

    Anything else is ``error``, "<kind> <path> ...": missing, a folder, or not a regular file.
    Opening a FIFO blocks until a writer comes (and reading it twice, as a gzip probe does,
    hangs); a device may never end: so they are refused before anything opens them.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise error(f"{kind} {p} does not exist") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise error(f"{kind} {p} could not be read ({getattr(e, 'strerror', None) or e})") from None
    if stat.S_ISDIR(mode):
        raise error(f"{kind} {p} is a folder, not a regular file")
    if not stat.S_ISREG(mode):
        what = next((name for test, name in _SPECIAL_FILES if test(mode)), "a special file")
        raise error(f"{kind} {p} is not a regular file (it is {what})")
    return p
