"""The workers' synchronisation (fastnn/kernels/sync.py): every task taken exactly once per
phase, and no worker past a barrier before every worker's work of the phase is done."""

import threading

import numpy as np
import pytest
from numba import njit

from fastnn.kernels.sync import ARRIVALS, SYNC_SIZE, atomic_add, barrier, next_task


@njit(nogil=True)
def run_phases(n_workers, sync, tasks_per_phase, taken, incomplete):
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
        passed = barrier(sync, n_workers, passed)
        done = 0
        for t in range(n_tasks):
            done += taken[phase * 64 + t]
        if done != n_tasks:
            atomic_add(incomplete, 0, 1)
        passed = barrier(sync, n_workers, passed)  # nobody starts the next phase while others check
    return passed


@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_tasks_taken_once_and_barriers_hold(n_workers):
    tasks_per_phase = np.random.default_rng(n_workers).integers(0, 60, 200)
    sync = np.zeros(SYNC_SIZE, dtype=np.int64)
    taken = np.zeros(tasks_per_phase.size * 64, dtype=np.int64)
    incomplete = np.zeros(1, dtype=np.int64)
    passed = []

    def work():
        passed.append(run_phases(n_workers, sync, tasks_per_phase, taken, incomplete))

    threads = [threading.Thread(target=work) for _ in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = np.zeros((tasks_per_phase.size, 64), dtype=np.int64)
    for phase, n in enumerate(tasks_per_phase):
        expected[phase, :n] = 1
    assert np.array_equal(taken.reshape(-1, 64), expected)
    assert incomplete[0] == 0
    assert passed == [2 * tasks_per_phase.size] * n_workers
    assert sync[ARRIVALS] == n_workers * 2 * tasks_per_phase.size  # every worker at every barrier
