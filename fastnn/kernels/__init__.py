"""Numba code only: @njit kernels over flat buffers, no Python objects inside.

Threads that wait between parallel regions sleep rather than spin (OpenMP's passive policy),
unless the user chose otherwise. Spinning wins a few microseconds per region on an idle
machine, but when other processes hold the cores a spinning thread keeps its partner off the
CPU: measured here with another job running, 2 threads took 5 s for what 1 thread did in
0.08 s with the default policy, 0.09 s with the passive one. libgomp reads this once, when the
first parallel kernel starts, so it is set before any kernel module loads.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
