"""How fastnn's kernels are compiled."""

import functools

from numba import njit

# Cached on disk, and without Numba's reference counting (NRT): every array view (Z[b], a slice
# of a row) would otherwise cost an atomic increment and decrement of its owner's count, a large
# part of phase 1 for a narrow network, and threads that share an array contend for its count's
# cache line. Kernels compiled this way cannot allocate arrays: their callers pass every buffer.
# NumPy's error model: a float divided by zero gives inf or NaN (which the training loop checks
# for) instead of raising, so a kernel's code never calls back into Python. That keeps its
# ahead-of-time build free of Python and Numba symbols (see fastnn/native/build.py).
kernel = functools.partial(njit, cache=True, _nrt=False, error_model="numpy")
