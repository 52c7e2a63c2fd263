"""Running a kernel on several threads at once: the kernels release the GIL (nogil) and share
their work through fastnn/kernels/sync.py, so plain Python threads run them in parallel.

A training call runs every worker on a helper thread, and the calling thread waits for them in
short steps: Python runs signal handlers only on the main thread, between its own steps, so a
main thread inside a long kernel call would not see Ctrl-C until the call ended.
"""

from __future__ import annotations

import functools
import os
import queue
import signal
import sys
import threading
import time
from typing import Callable

import numpy as np

from .errors import WorkerStalledError
from .kernels.codes import ABORT, PATIENCE, SYNC_SIZE, WAIT_NAMES, WHERE, WHO
from .kernels.tuning import PATIENCE_SECONDS, POLL_SECONDS


# Set while a stop has been asked for (signals.StopRequest sets and clears it): running
# training calls stop after their current batch.
stop_requested = threading.Event()


def new_sync() -> np.ndarray:
    """A ``sync`` array for one kernel call (kernels/sync.py), its PATIENCE set."""
    sync = np.zeros(SYNC_SIZE, dtype=np.int64)
    sync[PATIENCE] = int(PATIENCE_SECONDS * 1e6)
    return sync


def stall_message(sync: np.ndarray, n_workers: int) -> str:
    """What a kernel call that gave up waiting left in sync, in words."""
    batch = int(sync[ABORT]) - 1
    if not sync[WHO]:
        return f"{n_workers} training threads stopped at batch {batch + 1} after fastnn gave up waiting for them"
    return (f"training worker {sync[WHO] - 1} of {n_workers} waited {PATIENCE_SECONDS:g} s at "
            f"{WAIT_NAMES.get(int(sync[WHERE]), 'a wait')} of batch {batch + 1} with no progress from the others; "
            "the weights from before this block of batches were kept")


def max_threads() -> int:
    """The most threads fastnn runs: NUMBA_NUM_THREADS if set, else the CPUs this process may
    use (Numba's own default, found without importing Numba)."""
    if "NUMBA_NUM_THREADS" in os.environ:
        return max(1, int(os.environ["NUMBA_NUM_THREADS"]))
    return _usable_cpus()


@functools.cache
def _usable_cpus() -> int:
    """Read once, as Numba does: a system call per fit is not free."""
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
    call would cost more than a small fit's batches. ``running`` is true from the hand-over of a task to its end, when
    ``outcome`` holds what it raised (or None) and the task's queue hears of it."""

    def __init__(self):
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.running = False
        self.outcome: BaseException | None = None
        threading.Thread(target=self._serve, daemon=True, name="fastnn-helper").start()

    def _serve(self) -> None:
        while True:
            work, w, done = self.tasks.get()
            try:
                work(w)
            except BaseException as error:  # handed to the caller, which raises it
                self.outcome = error
            del work  # an idle helper keeps no call's arrays alive
            self.running = False
            done.put(self)
            del done


# Helpers waiting for work. A caller takes the ones it needs and starts new ones when none waits
# (callers on several threads at once never share one); a forked child has none of the threads.
_idle: list[_Helper] = []
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_idle.clear)


def _start(work: Callable[[int], None], workers: range) -> tuple[list[_Helper], queue.SimpleQueue]:
    """work(w) for each w in ``workers`` on a helper thread; returns the helpers, and a queue
    that hears of each one's end."""
    done: queue.SimpleQueue = queue.SimpleQueue()
    helpers = []
    for w in workers:
        try:
            helper = _idle.pop()
        except IndexError:
            helper = _Helper()
        helper.running, helper.outcome = True, None
        helper.tasks.put((work, w, done))
        helpers.append(helper)
    return helpers, done


def _finish(helpers: list[_Helper]) -> None:
    """Take back helpers that have ended; raise the first error one of them raised."""
    errors = [h.outcome for h in helpers if h.outcome is not None]
    for helper in helpers:
        helper.outcome = None
        _idle.append(helper)
    if errors:
        raise errors[0]


def run_workers(n_workers: int, work: Callable[[int], None]) -> None:
    """Call work(w) for w = 0..n_workers-1 at once, each on its own thread (w = 0 on this one);
    return when all have returned, raising what a helper thread raised. For short kernels with
    no stop flag (preparing data, predicting)."""
    helpers, done = _start(work, range(1, n_workers))
    try:
        work(0)
    finally:
        for _ in helpers:
            done.get()
        _finish(helpers)


def run_stoppable(n_workers: int, work: Callable[[int], None], stop: Callable[[], None],
                  abort: Callable[[], None], together: bool = True) -> bool:
    """Call work(w) for w = 0..n_workers-1 at once, each on a helper thread, and wait for all.

    While waiting, this thread handles signals: on KeyboardInterrupt, or when ``stop_requested``
    is set, it calls stop() (the kernels then end after their current batch) and goes on
    waiting. Returns whether a KeyboardInterrupt arrived: the caller raises it once its state is
    consistent. From the stop, or from the first worker's end for workers that end ``together``
    (those of one training loop), the others get PATIENCE_SECONDS and a second more; past that it
    calls abort() (their waits give up), and past another second raises WorkerStalledError,
    leaving the lost threads behind. Raises what a worker raised."""
    with DeferredInterrupt() as deferred:  # on the main thread, Ctrl-C sets a flag: it cannot land between
        helpers, done = _start(work, range(n_workers))  # starting the helpers and waiting for them
        interrupted = _wait(helpers, done, n_workers, stop, abort, together)
    _finish(helpers)
    return interrupted or deferred.pending


def _wait(helpers: list[_Helper], done: queue.SimpleQueue, n_workers: int, stop: Callable[[], None],
          abort: Callable[[], None], together: bool) -> bool:
    """run_stoppable's wait for its helpers; returns whether a KeyboardInterrupt arrived (off
    the main thread's deferred handling)."""
    interrupted = stopped = False
    since = aborted = None  # since when the others should be ending; when abort() was called
    while any(h.running for h in helpers):
        try:
            now = time.monotonic()
            if (interrupted or stop_requested.is_set()) and not stopped:
                stop()
                stopped, since = True, since or now
            if since is None and together and not all(h.running for h in helpers):
                since = now
            if since is not None and aborted is None and now - since > PATIENCE_SECONDS + 1:
                abort()
                aborted = now
            if aborted is not None and now - aborted > 1:
                raise WorkerStalledError(f"{sum(h.running for h in helpers)} of {n_workers} training threads did "
                                         f"not end within {PATIENCE_SECONDS + 2:g} s")
            try:
                done.get(timeout=POLL_SECONDS)
            except queue.Empty:
                pass
        except KeyboardInterrupt:
            interrupted = True
    return interrupted


class DeferredInterrupt:
    """Ctrl-C inside the ``with`` block sets ``pending`` (and workers.stop_requested, so that a
    running kernel call ends after its current batch) instead of raising KeyboardInterrupt
    wherever Python happens to be: the caller raises it where its state is consistent. Does
    nothing off the main thread, or where another handler than Python's default is installed
    (StopRequest's, whose owner decides)."""

    def __enter__(self) -> "DeferredInterrupt":
        self.pending = False
        self._installed = (threading.current_thread() is threading.main_thread()
                           and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        if self._installed:
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.pending = True
        stop_requested.set()

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            stop_requested.clear()
