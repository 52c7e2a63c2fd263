"""Running a kernel on several threads at once: the kernels release the GIL (nogil) and share
their work through fastnn/kernels/sync.py, so plain Python threads run them in parallel."""

from __future__ import annotations

import threading
from typing import Callable


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
