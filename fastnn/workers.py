"""Running a kernel on several threads at once: the kernels release the GIL (nogil) and share
their work through fastnn/kernels/sync.py, so plain Python threads run them in parallel."""

from __future__ import annotations

import functools
import os
import queue
import sys
import threading
from typing import Callable


def max_threads() -> int:
    """The most threads fastnn runs: NUMBA_NUM_THREADS if set, else the CPUs this process may
    use (Numba's own default, found without importing Numba)."""
    if "NUMBA_NUM_THREADS" in os.environ:
        return max(1, int(os.environ["NUMBA_NUM_THREADS"]))
    return _usable_cpus()


@functools.cache
def _usable_cpus() -> int:
    """Read once, as Numba does (20 us a fit otherwise)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads to run on when the caller does not say: numba.get_num_threads() when Numba is
    loaded (it follows numba.set_num_threads), else max_threads()."""
    numba = sys.modules.get("numba")
    return numba.get_num_threads() if numba is not None else max_threads()


class _Helper:
    """A thread that stays, to run one work(w) after another: starting a thread for every kernel
    call took 0.1 ms, and worker 0 waited half of it before starting its own work."""

    def __init__(self):
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.outcomes: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, daemon=True, name="fastnn-helper").start()

    def _serve(self) -> None:
        while True:
            work, w = self.tasks.get()
            outcome = None
            try:
                work(w)
            except BaseException as error:  # handed to the caller, which raises it
                outcome = error
            del work  # an idle helper keeps no call's arrays alive
            self.outcomes.put(outcome)
            del outcome


# Helpers waiting for work. A caller takes the ones it needs and starts new ones when none waits
# (callers on several threads at once never share one); a forked child has none of the threads.
_idle: list[_Helper] = []
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_idle.clear)


def run_workers(n_workers: int, work: Callable[[int], None]) -> None:
    """Call work(w) for w = 0..n_workers-1 at once, each on its own thread (w = 0 on this one);
    return when all have returned, raising what a helper thread raised."""
    helpers = []
    for w in range(1, n_workers):
        try:
            helper = _idle.pop()
        except IndexError:
            helper = _Helper()
        helper.tasks.put((work, w))
        helpers.append(helper)
    error = None
    try:
        work(0)
    finally:
        for helper in helpers:
            outcome = helper.outcomes.get()
            _idle.append(helper)
            error = error or outcome
    if error is not None:
        raise error
