"""Numba code only: @njit kernels over flat buffers, no Python objects inside."""
