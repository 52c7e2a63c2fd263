"""The parallel plans under adverse scheduling, where a host's luck would hide a race: threads
pinned to one CPU, a busy neighbour process, random delays at every synchronisation point (a
kernel build of its own), and more workers than CPUs. Each run is a subprocess with a hard time
limit (a hang fails the test), and every fit must be bit-identical to one worker's
(tests/stress_runner.py). The short runs are in the default suite; ``-m slow`` runs them all,
several times over."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).with_name("stress_runner.py")


def stress(args: list[str], timeout: float, pin: bool = False, busy: bool = False, jitter: bool = False) -> str:
    env = {**os.environ, "NUMBA_NUM_THREADS": "8"}  # more workers than CPUs, pinned too
    if jitter:  # a build of its own, in a cache of its own (kernels/sync.py)
        env.update(FASTNN_SYNC_JITTER="1", NUMBA_CACHE_DIR=str(Path(os.environ["NUMBA_CACHE_DIR"]) / "jitter"))
    cpu = min(os.sched_getaffinity(0))
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        run = subprocess.run([sys.executable, str(RUNNER), *args], env=env, capture_output=True, text=True,
                             timeout=timeout, preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if pin else None)
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"hung: no end within {timeout:g} s; it printed:\n{hung.stdout or ''}{hung.stderr or ''}")
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_threads_pinned_to_one_cpu():
    out = stress(["--threads", "2", "3"], timeout=240, pin=True)
    assert out.count("bit-identical") == 8 * 2  # the quick cases, each at each thread count


def test_beside_a_busy_process():
    out = stress(["--threads", "2"], timeout=240, busy=True)
    assert out.count("bit-identical") == 8


def test_random_delays_at_every_synchronisation_point():
    out = stress(["--threads", "2"], timeout=300, jitter=True)
    assert out.count("bit-identical") == 8


def test_more_workers_than_cpus():
    out = stress(["--cases", "adam, batch 128;sgd, transposed batch", "--threads", "3", "4", "8"], timeout=240)
    assert out.count("bit-identical") == 6
    assert "adam, batch 128: 8 workers of 8 threads" in out and "sgd, transposed batch: 8 workers of 8 threads" in out


@pytest.mark.slow
@pytest.mark.parametrize("condition", [dict(pin=True), dict(busy=True), dict(jitter=True),
                                       dict(jitter=True, pin=True), dict(jitter=True, busy=True)],
                         ids=["pinned", "busy neighbour", "jitter", "jitter, pinned", "jitter, busy neighbour"])
def test_every_plan_many_times(condition):
    out = stress(["--cases", "all", "--threads", "2", "3", "4", "8", "--repeat", "6"], timeout=1500, **condition)
    assert out.count("bit-identical") == 6 * 14 * 4
