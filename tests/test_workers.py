"""run_workers: every w once, each on its own thread, helpers kept for the next call, their
errors raised to the caller."""

import gc
import threading
import time
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


def test_stoppable_workers_all_run_on_helpers_and_report_no_interrupt():
    seen = {}
    barrier = threading.Barrier(2, timeout=10)

    def work(w):
        barrier.wait()
        seen[w] = threading.get_ident()

    assert workers.run_stoppable(2, work, stop=lambda: None, abort=lambda: None) is False
    assert sorted(seen) == [0, 1] and threading.get_ident() not in seen.values()


def test_a_stop_request_reaches_running_workers():
    """The waiting thread passes stop_requested on to the kernels (here: an event they poll)."""
    stop = threading.Event()

    def work(w):
        if w == 0:
            workers.stop_requested.set()
        assert stop.wait(timeout=10)

    try:
        assert workers.run_stoppable(2, work, stop=stop.set, abort=lambda: None) is False
    finally:
        workers.stop_requested.clear()


def test_ctrl_c_while_waiting_stops_the_workers_and_is_reported():
    """SIGINT arrives while the main thread waits: stop() is called, the workers end, and the
    caller learns of the interrupt instead of losing the threads' work."""
    import signal

    main = threading.get_ident()
    stop = threading.Event()

    def work(w):
        if w == 0:
            signal.pthread_kill(main, signal.SIGINT)
        assert stop.wait(timeout=10)

    assert workers.run_stoppable(2, work, stop=stop.set, abort=lambda: None) is True


def test_a_worker_that_never_ends_is_aborted_then_given_up(monkeypatch):
    monkeypatch.setattr(workers, "PATIENCE_SECONDS", 0.2)
    release, aborted = threading.Event(), []

    def work(w):
        if w == 1:
            release.wait(timeout=30)  # deaf to abort(): lost until released

    started = time.monotonic()
    with pytest.raises(workers.WorkerStalledError, match="1 of 2 training threads did not end"):
        workers.run_stoppable(2, work, stop=lambda: None, abort=lambda: aborted.append(1))
    assert aborted == [1] and time.monotonic() - started < 10
    release.set()


def test_an_aborted_worker_that_ends_is_no_error(monkeypatch):
    monkeypatch.setattr(workers, "PATIENCE_SECONDS", 0.2)
    release = threading.Event()

    def work(w):
        if w == 1:
            assert release.wait(timeout=30)

    assert workers.run_stoppable(2, work, stop=lambda: None, abort=release.set) is False
