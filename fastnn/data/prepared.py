"""Inputs converted once, for many fits: the sparse rows the kernels read.

Every fit, predict and evaluate on a NumPy array first finds its non-zero inputs, a pass over
the whole array. ``prepare`` does it once; a sweep over seeds or learning rates then passes the
result wherever it would pass X.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np

from .examples import SparseRows
from ..errors import DataError
from .checks import check_inputs
from ..workers import default_threads, run_workers
from ..kernels.tuning import SPLIT_SAMPLE_ROWS, SPLIT_SHARE


@dataclass(frozen=True, eq=False)
class PreparedInputs:
    """The sparse rows of an (n, n_features) input array (see ``prepare``)."""

    rows: SparseRows
    dtype: np.dtype

    def __post_init__(self):
        # The kernels read these indices unchecked: rows built by hand must not reach them unless
        # they are what prepare() would build (checked once; the object then serves many fits).
        r, dtype = self.rows, np.dtype(self.dtype)
        arrays = (r.indptr, r.indices, r.values)
        if not (isinstance(r, SparseRows) and all(isinstance(a, np.ndarray) and a.ndim == 1 for a in arrays)
                and dtype in (np.float32, np.float64) and r.values.dtype in (np.uint8, dtype)
                and r.indptr.dtype == np.int64 and r.indices.dtype in (np.uint16, np.int32)
                and isinstance(r.n_features, int) and r.n_features > 0 and r.indptr.size > 1
                and r.indptr[0] == 0 and r.indptr[-1] == r.indices.size == r.values.size
                and (np.diff(r.indptr) >= 0).all()
                and (r.indices.size == 0 or (r.indices.min() >= 0 and r.indices.max() < r.n_features))
                and _halves_split_rows(r)):
            raise DataError("PreparedInputs holds no valid sparse rows: build it with fastnn.prepare(X)")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows.n_rows, self.rows.n_features)

    def __len__(self) -> int:
        return self.rows.n_rows

    def rows_for(self, n_features: int, dtype: np.dtype, name: str = "X", pixels: bool | None = False) -> SparseRows:
        """The rows as a model of n_features inputs and parameters of ``dtype`` reads them, as
        pixels (divided by 255) or as given (see MLP's ``pixels``)."""
        if self.rows.n_features != n_features:
            raise DataError(f"{name} has {self.rows.n_features} features per example, the network expects {n_features}")
        r, dtype = self.rows, np.dtype(dtype)
        pixels = reads_pixels(pixels, r.values.dtype)
        values = r.values
        if values.dtype != dtype and not (values.dtype == np.uint8 and pixels):  # uint8 pixels stay bytes
            values = values.astype(dtype)
            if not np.isfinite(values).all():
                raise DataError(f"{name} has values too large for {dtype.name}")
        scale = _scale(pixels, dtype)
        if values is r.values and _same_scale(scale, r.scale):
            return r
        return SparseRows(r.indptr, r.indices, values, scale, n_features, r.halves)


def _halves_split_rows(r: SparseRows) -> bool:
    """Whether r.halves splits every row at one column: the kernels read the entries on either
    side unchecked."""
    h = r.halves
    if not (isinstance(h, np.ndarray) and h.dtype == np.int64 and h.shape == (r.n_rows,)
            and (r.indptr[:-1] <= h).all() and (h <= r.indptr[1:]).all()):
        return False
    before, at = r.indices[h[h > r.indptr[:-1]] - 1], r.indices[h[h < r.indptr[1:]]]
    return before.size == 0 or at.size == 0 or int(before.max()) < int(at.min())


def reads_pixels(pixels: bool | None, input_dtype) -> bool:
    """Whether inputs of ``input_dtype`` are 0..255 pixels (MLP's ``pixels``; None: uint8 ones)."""
    return np.dtype(input_dtype) == np.uint8 if pixels is None else bool(pixels)


def _scale(pixels: bool, dtype) -> np.floating:
    return np.dtype(dtype).type(1 / 255 if pixels else 1)


def sparse_rows(X, n_features: int, dtype, name: str = "X", pixels: bool | None = False) -> SparseRows:
    """The checked sparse rows of X (an array, or PreparedInputs) for a model of n_features
    inputs and parameters of ``dtype``, read as pixels (divided by 255) or as given: uint8
    pixels stay bytes (the kernels divide them by a table), other inputs take ``dtype``.

    An array the kernels can read as it is keeps its rows while its bytes stay the same
    (_RecentRows): fit after fit on one array, as a sweep runs them, converts it once."""
    if isinstance(X, PreparedInputs):
        return X.rows_for(n_features, dtype, name, pixels)
    given = X = X if isinstance(X, np.ndarray) else np.asarray(X)
    pixels = reads_pixels(pixels, X.dtype)
    X = check_inputs(X, n_features, dtype, name, keep_uint8=pixels)
    scale = _scale(pixels, dtype)
    if X is not given:  # a converted copy: nothing to find again
        return _convert(X, n_features, scale)
    rows = _recent.rows(X, np.dtype(dtype), lambda: _convert(X, n_features, scale))
    return rows if _same_scale(rows.scale, scale) else replace(rows, scale=scale)  # cached with another pixels


def _same_scale(a: np.floating, b: np.floating) -> bool:
    return a == b and a.dtype == b.dtype


def _convert(X: np.ndarray, n_features: int, scale: np.floating) -> SparseRows:
    indptr, indices, values, halves = to_sparse_rows(X, np.uint16 if n_features <= 2**16 else np.int32)
    return SparseRows(indptr, indices, values, scale, n_features, halves)


class _RecentRows:
    """The sparse rows of the last few arrays converted, each found again only by the same array
    object, at the same address, of the same shape and dtype, whose bytes have the same
    fingerprint (kernels/sparse.py, input_fingerprint: a pass at memory speed, against two
    passes and the writing of the rows for a conversion); a change in place is thus seen."""

    SIZE = 4

    def __init__(self):
        self._entries: OrderedDict[int, tuple] = OrderedDict()
        self._lock = threading.Lock()

    def rows(self, X: np.ndarray, dtype: np.dtype, convert) -> SparseRows:
        key = (X.__array_interface__["data"][0], X.shape, X.dtype.str, dtype.str, *fingerprint(X))
        with self._lock:
            entry = self._entries.get(id(X))
            if entry is not None and entry[0]() is X and entry[1] == key:
                self._entries.move_to_end(id(X))
                return entry[2]
        rows = convert()
        identity = id(X)
        with self._lock:
            self._entries[identity] = (weakref.ref(X, lambda _: self._forget(identity)), key, rows)
            while len(self._entries) > self.SIZE:
                self._entries.popitem(last=False)
        return rows

    def _forget(self, identity: int) -> None:
        with self._lock:
            entry = self._entries.get(identity)
            if entry is not None and entry[0]() is None:
                del self._entries[identity]


_recent = _RecentRows()

# From this many bytes, an array's fingerprint is taken in two parts on two threads at once: one
# thread reads at a fraction of the memory's speed (MNIST's 47 MB: 2.2 ms on one, 1.1 ms on two;
# Intel Xeon), and handing a part to a helper thread costs about 0.1 ms.
FINGERPRINT_SPLIT_BYTES = 8 << 20


def fingerprint(X: np.ndarray) -> tuple[int, ...]:
    """The fingerprint of a C-contiguous array's bytes (kernels/sparse.py, input_fingerprint):
    of its two halves apart from FINGERPRINT_SPLIT_BYTES on, whatever the thread count."""
    from ..native.loader import kernel

    data = X.reshape(-1).view(np.uint8)
    parts = 2 if data.size >= FINGERPRINT_SPLIT_BYTES else 1
    cuts = [data.size * p // parts for p in range(parts + 1)]
    sums = np.zeros((parts, 2), dtype=np.uint64)
    workers = min(parts, default_threads())

    def work(w: int) -> None:
        for p in range(w, parts, workers):
            kernel("input_fingerprint")(data[cuts[p]:cuts[p + 1]], sums[p])

    run_workers(workers, work)
    return tuple(sums.ravel().tolist())


def balanced_column(X: np.ndarray) -> int:
    """The first column at which SPLIT_SHARE of the non-zero entries of X's first rows lie
    before it (at least 1, at most d - 1; d // 2 if those rows are all zero): two workers may
    each own the first layer's weight rows of one side (kernels/train.py, split_batch)."""
    d = X.shape[1]
    below = np.cumsum(np.count_nonzero(X[:SPLIT_SAMPLE_ROWS], axis=0))
    if d < 2 or below[-1] == 0:
        return d // 2
    return int(min(max(np.searchsorted(below, below[-1] * SPLIT_SHARE) + 1, 1), d - 1))


def to_sparse_rows(X: np.ndarray, index_dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(indptr int64, indices of index_dtype, values of X's dtype, halves int64: each row's first
    entry at balanced_column(X) or above) of a C-contiguous 2-D array, converted on
    workers.default_threads() threads."""
    from ..kernels.codes import CHUNK, SYNC_SIZE
    from ..native.loader import kernel

    count_row_nonzeros, fill_rows = kernel("count_row_nonzeros"), kernel("fill_rows")

    n, d = X.shape
    workers = max(1, min(default_threads(), -(-n // CHUNK)))
    counts = np.zeros(n + 1, dtype=np.int64)
    sync = np.zeros(SYNC_SIZE, dtype=np.int64)
    run_workers(workers, lambda w: count_row_nonzeros(sync, X, counts))
    indptr = np.cumsum(counts)
    indices, values = np.empty(indptr[-1], dtype=index_dtype), np.empty(indptr[-1], dtype=X.dtype)
    halves = np.empty(n, dtype=np.int64)
    scratch = [(np.empty(d, dtype=index_dtype), np.empty(d, dtype=X.dtype)) for _ in range(workers)]
    sync[:] = 0
    split = balanced_column(X)
    run_workers(workers, lambda w: fill_rows(sync, X, split, indptr, indices, values, halves, *scratch[w]))
    return indptr, indices, values, halves


def prepare(X, dtype="float32") -> PreparedInputs:
    """X (n examples x n features: uint8 pixels, or real values) converted once into what the
    kernels read, to pass wherever fastnn takes X (MLP.fit, predict, evaluate, fit_many) without
    converting it again. Values other than uint8 are stored in ``dtype``, the models' dtype.
    The result is a copy: later changes to X do not reach it."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, not {dtype}")
    shape = np.shape(X)
    if len(shape) != 2:
        raise DataError(f"X must be 2-D (examples x features), got shape {shape}")
    # Its own arrays, left writeable: Numba compiles separate kernels for read-only arrays.
    return PreparedInputs(sparse_rows(X, shape[1], dtype, pixels=None), dtype)
