"""How fastnn's kernels are compiled."""

import functools

from numba import njit

# Cached on disk, and without Numba's reference counting (NRT): every array view (Z[b], a slice
# of a row) would otherwise cost an atomic increment and decrement of its owner's count. Those
# took 37% of phase 1 at 784-10-10, and threads that share an array contend for its count's
# cache line. Kernels compiled this way cannot allocate arrays: their callers pass every buffer.
kernel = functools.partial(njit, cache=True, _nrt=False)
