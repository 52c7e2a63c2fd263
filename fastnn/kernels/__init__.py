"""Numba code only: @njit kernels over flat buffers, no Python objects inside.

The Python side calls the entry kernels through fastnn/native/loader.py (the ahead-of-time library when it
is built, else Numba's JIT) and runs them on its own threads (fastnn/workers.py): no kernel
uses a Numba parallel region, so Numba's threading layer is never started.
"""
