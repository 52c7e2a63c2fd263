"""Inputs as sorted sparse rows: per example, the columns and values of its non-zero inputs.

81% of MNIST's pixels are zero; the first layer only ever touches the others.
"""


import numpy as np
from numba import njit

from .codes import CHUNK
from .jit import kernel
from .layers import input_value
from .simd import c_layout, load, load_word, prefetch, store
from .sync import next_task

from .tuning import AHEAD


@kernel(nogil=True)
def count_row_nonzeros(sync, X, counts):
    """counts[i + 1] = the non-zero count of row i of X, as one of the workers sharing ``sync``
    (see sync.py), each taking the next chunk of rows in turn."""
    n, d = X.shape
    chunk = next_task(sync, 0)
    while chunk * CHUNK < n:
        for i in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
            c = 0
            for j in range(d):
                c += X[i, j] != 0
            counts[i + 1] = c
        chunk = next_task(sync, 0)


@kernel(nogil=True)
def fill_rows(sync, X, split, indptr, indices, values, halves, row_indices, row_values):
    """Row i's non-zero columns and values into indices and values from indptr[i], and in
    halves[i] its first entry at column ``split`` or above, as one of the workers sharing ``sync``,
    each taking the next chunk of rows in turn; row_indices and row_values (one row long) are
    this worker's scratch. Narrow indices (uint16 for up to 65,536 columns) halve the bytes the
    kernels read per input."""
    n, d = X.shape
    # Word by word only through a C-contiguous X: load_word reads its data as one run of words.
    per_word = 8 // X.itemsize if c_layout(X) and X.itemsize <= 8 and (d * X.itemsize) % 8 == 0 else 0
    n_words = d // per_word if per_word > 0 else 0
    chunk = next_task(sync, 0)
    while chunk * CHUNK < n:
        for i in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
            k = 0
            if per_word > 0:
                # Skip 8 bytes at a time where they are all zero (MNIST's zeros come in runs).
                for w in range(n_words):
                    if load_word(X, i * n_words + w) != 0:
                        for j in range(w * per_word, (w + 1) * per_word):
                            row_indices[k] = j
                            row_values[k] = X[i, j]
                            k += X[i, j] != 0
            else:
                # Branch-free compaction (zeros are unpredictable): write every column, advance
                # past the non-zero ones only.
                for j in range(d):
                    row_indices[k] = j
                    row_values[k] = X[i, j]
                    k += X[i, j] != 0
            start = indptr[i]
            below = 0
            for m in range(k):
                indices[start + m] = row_indices[m]
                values[start + m] = row_values[m]
                below += row_indices[m] < split
            halves[i] = start + below
        chunk = next_task(sync, 0)


@njit(inline="always")  # as a call, once per example, it took 1-2% of a 784-10-10 epoch
def prefetch_row(indptr, indices, values, row):
    """Bring a sparse row's non-zero columns and values towards the cache (64-byte lines)."""
    step = 64 // indices.itemsize
    for k in range(indptr[row], indptr[row + 1], step):
        prefetch(indices, k)
    step = 64 // values.itemsize
    for k in range(indptr[row], indptr[row + 1], step):
        prefetch(values, k)


@njit(inline="always")
def half_range(indptr, halves, row, half):
    """The entries lo..hi-1 of one half of a sparse row: those before its ``halves`` entry
    (half 0), or the others (half 1)."""
    return (indptr[row], halves[row]) if half == 0 else (halves[row], indptr[row + 1])


@njit(inline="always")
def prefetch_half(indptr, halves, indices, values, row, half):
    """prefetch_row for one half of a sparse row's entries (half_range)."""
    lo, hi = half_range(indptr, halves, row, half)
    for k in range(lo, hi, 64 // indices.itemsize):
        prefetch(indices, k)
    for k in range(lo, hi, 64 // values.itemsize):
        prefetch(values, k)


@kernel
def transpose_batch(indptr, indices, values, scale, rows, start, n_batch, col_ptr, col_example, col_value):
    """The batch's non-zero inputs grouped by input unit (its CSC form, by a counting sort).

    Entries col_ptr[i]..col_ptr[i + 1] - 1 are unit i's non-zero inputs in batch order: the
    example's place b in the batch (rows[start + b]) and the scaled input value.
    """
    n_units = col_ptr.size - 1
    col_ptr[:] = 0
    for b in range(n_batch):  # the rows are read here first: phase 1's blocks find them cached
        if b + AHEAD < n_batch:
            prefetch_row(indptr, indices, values, rows[start + b + AHEAD])
        row = rows[start + b]
        for k in range(indptr[row], indptr[row + 1]):
            i = load(indices, k) + 1
            store(col_ptr, i, load(col_ptr, i) + 1)
    for i in range(n_units):
        col_ptr[i + 1] += col_ptr[i]
    # Fill with col_ptr[i] as unit i's cursor: it ends at unit i + 1's start, shifted back below.
    for b in range(n_batch):
        row = rows[start + b]
        for k in range(indptr[row], indptr[row + 1]):
            i = load(indices, k)
            at = load(col_ptr, i)
            store(col_example, at, b)
            store(col_value, at, input_value(values, k, scale))
            store(col_ptr, i, at + 1)
    for i in range(n_units, 0, -1):
        col_ptr[i] = col_ptr[i - 1]
    col_ptr[0] = 0


@kernel(nogil=True)
def input_fingerprint(data, out):
    """out[0], out[1] = a Fletcher-style checksum of ``data``'s bytes (uint8, C-contiguous): the
    sum of its 8-byte words and the sum of the running sums (which weighs each word by its
    position), modulo 2^64, in four interleaved streams. One pass at the speed of memory: what
    tells an unchanged input array from a changed one (prepared.sparse_rows)."""
    s0 = s1 = s2 = s3 = t0 = t1 = t2 = t3 = np.uint64(0)
    words = data.size // 8
    whole = words - words % 4
    for i in range(0, whole, 4):
        s0 += load_word(data, i)
        s1 += load_word(data, i + 1)
        s2 += load_word(data, i + 2)
        s3 += load_word(data, i + 3)
        t0 += s0
        t1 += s1
        t2 += s2
        t3 += s3
    for i in range(whole, words):
        s0 += load_word(data, i)
        t0 += s0
    for i in range(8 * words, data.size):  # the last bytes, one at a time
        s1 += np.uint64(data[i]) + np.uint64(1)
        t1 += s1
    out[0] = s0 + s1 * np.uint64(3) + s2 * np.uint64(5) + s3 * np.uint64(7)
    out[1] = t0 + t1 * np.uint64(3) + t2 * np.uint64(5) + t3 * np.uint64(7)
