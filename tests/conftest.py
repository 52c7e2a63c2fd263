"""Shared pytest fixtures."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest


def _kernel_cache_dir() -> Path:
    """A Numba cache folder per version of the kernel sources.

    Numba's cache notices changes to a kernel's own file only, not to the files it inlines
    (layers.py, optim.py): a folder keyed by all of them never serves stale code.
    """
    import hashlib

    kernels = Path(__file__).parents[1] / "fastnn" / "kernels"
    digest = hashlib.sha256()
    for source in sorted(kernels.glob("*.py")):
        digest.update(source.read_bytes())
    return Path(__file__).parents[1] / ".numba_cache" / digest.hexdigest()[:16]


# Set before anything imports numba, which reads it once.
os.environ.setdefault("NUMBA_CACHE_DIR", str(_kernel_cache_dir()))
if os.environ.get("FASTNN_DATA"):  # absolute, for the subprocesses that run in other folders
    os.environ["FASTNN_DATA"] = os.path.abspath(os.environ["FASTNN_DATA"])

# A background job of a shell without job control (`cmd &` in a script) starts with Ctrl-C's
# SIGINT ignored, and its subprocesses inherit that: the tests of Ctrl-C would see none. A
# handler of our own is reset to the default in every subprocess, which Python then maps to
# KeyboardInterrupt, as in a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data folder: $FASTNN_DATA, else ../shared/data next to the repo."""
    folder = Path(os.environ.get("FASTNN_DATA") or Path(__file__).parents[2] / "shared" / "data")
    if not folder.is_dir():
        pytest.skip(f"real data folder {folder} is missing (set FASTNN_DATA)")
    return folder


@pytest.fixture(scope="session")
def mnist(shared_data):
    """The real MNIST set (60,000 training and 10,000 test images), loaded once per session."""
    from fastnn.data.datasets import load_mnist

    return load_mnist(shared_data, download=False)


@pytest.fixture
def force_parallel(monkeypatch):
    """Make fit run its plan's workers, whatever the batch's size and the layers' widths and
    without timing them against one, to test those paths. Tests check History.workers: on a one-CPU machine fit runs one."""
    import fastnn.parallel

    monkeypatch.setattr(fastnn.parallel, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(fastnn.parallel, "PROBE", False)


@pytest.fixture
def two_cpus():
    """Skip where fit would run one worker whatever ``threads`` says."""
    import fastnn.workers

    if fastnn.workers.max_threads() < 2:
        pytest.skip("one CPU: fit would run one worker whatever threads says")
