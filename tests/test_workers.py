"""run_workers: every w once, each on its own thread, helpers kept for the next call, their
errors raised to the caller."""

import gc
import threading
import weakref

import numpy as np
import pytest

from fastnn import workers


def test_each_worker_runs_once_on_its_own_thread():
    seen = {}
    barrier = threading.Barrier(3, timeout=10)  # all three at once, or the barrier breaks

    def work(w):
        barrier.wait()
        seen[w] = threading.get_ident()

    workers.run_workers(3, work)
    assert sorted(seen) == [0, 1, 2] and len(set(seen.values())) == 3
    assert seen[0] == threading.get_ident()


def test_helpers_are_kept_for_the_next_call():
    workers.run_workers(2, lambda w: None)
    before = threading.active_count()
    for _ in range(20):
        workers.run_workers(2, lambda w: None)
    assert threading.active_count() == before


def test_a_helpers_error_reaches_the_caller_and_the_helper_serves_on():
    def work(w):
        if w == 1:
            raise ValueError("from helper 1")

    with pytest.raises(ValueError, match="from helper 1"):
        workers.run_workers(2, work)
    done = []
    workers.run_workers(2, done.append)
    assert sorted(done) == [0, 1]


def test_callers_on_several_threads_never_share_a_helper():
    """Two callers at once, each needing its helper while the other's waits at a barrier:
    sharing one helper would deadlock (the barrier's timeout fails the test instead)."""
    results, barrier = [], threading.Barrier(4, timeout=10)

    def call():
        ran = []
        workers.run_workers(2, lambda w: (barrier.wait(), ran.append(w)))
        results.append(sorted(ran))

    callers = [threading.Thread(target=call) for _ in range(2)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(timeout=20)
    assert results == [[0, 1], [0, 1]]


def test_an_idle_helper_keeps_nothing_of_the_last_call_alive():
    data = np.zeros(1000)
    workers.run_workers(2, lambda w, held=data: held.sum())  # the work itself holds the array
    gone = weakref.ref(data)
    del data
    gc.collect()
    assert gone() is None
