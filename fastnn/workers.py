"""Running a kernel on several threads at once: the kernels release the GIL (nogil) and share
their work through fastnn/kernels/sync.py, so plain Python threads run them in parallel."""

from __future__ import annotations

import os
import sys
import threading
from typing import Callable


def max_threads() -> int:
    """The most threads fastnn runs: NUMBA_NUM_THREADS if set, else the CPUs this process may
    use (Numba's own default, found without importing Numba)."""
    if "NUMBA_NUM_THREADS" in os.environ:
        return max(1, int(os.environ["NUMBA_NUM_THREADS"]))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads to run on when the caller does not say: numba.get_num_threads() when Numba is
    loaded (it follows numba.set_num_threads), else max_threads()."""
    numba = sys.modules.get("numba")
    return numba.get_num_threads() if numba is not None else max_threads()


def run_workers(n_workers: int, work: Callable[[int], None]) -> None:
    """Call work(w) for w = 0..n_workers-1 at once, each on its own thread (w = 0 on this one);
    return when all have returned."""
    helpers = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(1, n_workers)]
    for helper in helpers:
        helper.start()
    try:
        work(0)
    finally:
        for helper in helpers:
            helper.join()
