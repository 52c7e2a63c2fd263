"""The workers' synchronisation (fastnn/kernels/sync.py): every task taken exactly once per
phase, no worker past a barrier before every worker's work of the phase is done, and every wait
ends, with the wait that gave up named."""

import threading
import time

import numpy as np
import pytest
from numba import njit

from fastnn.kernels.codes import ABORT, ARRIVALS, PATIENCE, SYNC_SIZE, WHERE, WHO
from fastnn.kernels.sync import atomic_add, barrier, give_up, next_task


@njit(nogil=True)
def run_phases(worker, n_workers, sync, tasks_per_phase, taken, incomplete):
    """Phases of tasks: count each task's takers, then after the barrier check the phase is done."""
    passed, base = 0, 0
    for phase in range(tasks_per_phase.size):
        n_tasks = tasks_per_phase[phase]
        task = next_task(sync, base)
        while task < n_tasks:
            for _ in range(100 * (task % 7)):  # uneven work, so that workers overtake each other
                atomic_add(taken, phase * 64 + 63, 0)
            atomic_add(taken, phase * 64 + task, 1)
            task = next_task(sync, base)
        base += n_tasks + n_workers
        passed = barrier(sync, n_workers, passed, phase, 1, worker)
        if passed < 0:
            return passed
        done = 0
        for t in range(n_tasks):
            done += taken[phase * 64 + t]
        if done != n_tasks:
            atomic_add(incomplete, 0, 1)
        passed = barrier(sync, n_workers, passed, phase, 2, worker)  # nobody starts the next phase while others check
        if passed < 0:
            return passed
    return passed


@njit(nogil=True)
def arrive(sync):
    atomic_add(sync, ARRIVALS, 1)


def new_sync(patience_seconds):
    sync = np.zeros(SYNC_SIZE, dtype=np.int64)
    sync[PATIENCE] = int(patience_seconds * 1e6)
    return sync


def run_threads(n_threads, target):
    threads = [threading.Thread(target=target, args=(w,)) for w in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a worker did not end"


@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_tasks_taken_once_and_barriers_hold(n_workers):
    tasks_per_phase = np.random.default_rng(n_workers).integers(0, 60, 200)
    sync = new_sync(10)
    taken = np.zeros(tasks_per_phase.size * 64, dtype=np.int64)
    incomplete = np.zeros(1, dtype=np.int64)
    passed = []
    run_threads(n_workers, lambda w: passed.append(run_phases(w, n_workers, sync, tasks_per_phase, taken, incomplete)))
    expected = np.zeros((tasks_per_phase.size, 64), dtype=np.int64)
    for phase, n in enumerate(tasks_per_phase):
        expected[phase, :n] = 1
    assert np.array_equal(taken.reshape(-1, 64), expected)
    assert incomplete[0] == 0
    assert passed == [2 * tasks_per_phase.size] * n_workers
    assert sync[ARRIVALS] == n_workers * 2 * tasks_per_phase.size  # every worker at every barrier
    assert sync[ABORT] == 0


def test_a_wait_for_a_worker_that_never_comes_gives_up_after_its_patience():
    """Two workers expected, one runs: it gives up at its first barrier after PATIENCE with no
    progress, and names the wait (phase 0, barrier 1) and itself (worker 0)."""
    sync = new_sync(0.3)
    tasks = np.array([5, 5])
    started = time.monotonic()
    passed = run_phases(0, 2, sync, tasks, np.zeros(128, np.int64), np.zeros(1, np.int64))
    waited = time.monotonic() - started
    assert passed == -1
    assert 0.3 <= waited < 5
    assert (sync[ABORT], sync[WHERE], sync[WHO]) == (1, 1, 1)


def test_the_others_follow_a_worker_that_gave_up():
    """Three workers expected, two run: both give up; the first to give up is recorded once."""
    sync = new_sync(0.3)
    tasks = np.array([3, 3, 3])
    passed = []
    run_threads(2, lambda w: passed.append(run_phases(w, 3, sync, tasks, np.zeros(192, np.int64),
                                                      np.zeros(1, np.int64))))
    assert passed == [-1, -1]
    assert sync[ABORT] == 1 and sync[WHO] in (1, 2)


@njit
def two_give_up(sync):
    give_up(sync, 4, 2, 1)  # worker 1 at batch 4, wait 2
    give_up(sync, 0, 1, 0)  # then worker 0 at batch 0, wait 1, before it saw the first


def test_a_second_wait_to_give_up_leaves_the_first_ones_record():
    """Two waits that give up at once (a rare race of the test above): the record, which names
    the batch, is the first one's."""
    sync = new_sync(0.3)
    two_give_up(sync)
    assert (sync[ABORT], sync[WHERE], sync[WHO]) == (5, 2, 2)


def test_progress_resets_the_patience():
    """A late worker that keeps arriving, a little slower than the patience each time, in total
    far longer: the waits see progress and never give up."""
    sync = new_sync(1.0)  # arrivals 0.3 s apart: room for a loaded machine's late wake-ups
    tasks = np.zeros(4, dtype=np.int64)
    passed = []

    def work(w):
        if w == 1:
            for phase in range(tasks.size):
                for where in (1, 2):
                    time.sleep(0.3)
                    arrive(sync)  # as barrier() does
        else:
            passed.append(run_phases(0, 2, sync, tasks, np.zeros(tasks.size * 64, np.int64), np.zeros(1, np.int64)))

    run_threads(2, work)
    assert passed == [2 * tasks.size] and sync[ABORT] == 0
