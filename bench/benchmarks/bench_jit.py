"""Start-up costs, each measured in a fresh interpreter: ``import fastnn``, compiling the kernels
with a cold Numba cache, loading them from a warm cache, and the native library (`fastnn build`).

The JIT children run with FASTNN_NATIVE=0 and NUMBA_CACHE_DIR pointed at a private temporary
folder, so the project's own cache and library are neither used nor touched. Their times
include starting Python and importing numpy and numba (about 0.5 s; see Import).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile

from .common import Benchmark, run_python

# One tiny fit (64 random images, batch 16) then a predict. "serial" forces threads=1 (one
# worker, as small models train); "parallel" forces threads=2 with enough work per batch for fit
# to run two workers (chosen from the requested threads, whatever the core count). Both compile
# the same training kernel: one compiled function serves any number of workers.
_TINY_FIT = """
import inspect
import numpy as np
import fastnn
rng = np.random.default_rng(0)
X = rng.integers(0, 256, size=(64, 784), dtype=np.uint8)
y = rng.integers(0, 10, size=64)
pixels = {{"pixels": True}} if "pixels" in inspect.signature(fastnn.MLP).parameters else {{}}  # bytes, as before it
model = fastnn.MLP([784, {hidden}, 10], init="he", **pixels)
model.fit(X, y, batch_size={batch}, lr=0.01, threads={threads})
model.predict_proba(X)
"""
CHILD = {
    "serial": _TINY_FIT.format(hidden=16, batch=16, threads=1),
    "parallel": _TINY_FIT.format(hidden=512, batch=64, threads=2),
}


class Import(Benchmark):
    """``python -c "import fastnn"`` (and, for reference, numpy alone) in a fresh process."""

    repeat = (5, 10, 10.0)
    params = [["numpy", "fastnn", "fastnn.data.datasets"]]
    param_names = ["module"]

    def time_import(self, module):
        run_python(f"import {module}")


class JitColdCache(Benchmark):
    """First call: a tiny fit + predict in a new process with an empty Numba cache (compiles
    the kernels and writes the cache). Tens of seconds: few samples, generous timeout."""

    repeat = (1, 3, 120.0)
    timeout = 900.0
    params = [["serial", "parallel"]]
    param_names = ["kernel"]

    def setup(self, kernel):
        self.cache_dir = tempfile.mkdtemp(prefix="fastnn-asv-numba-cold-")

    def teardown(self, kernel):
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def time_first_fit_cold_cache(self, kernel):
        run_python(CHILD[kernel], {"NUMBA_CACHE_DIR": self.cache_dir, "FASTNN_NATIVE": "0"})


_warm_dirs: dict[str, str] = {}


def _cleanup_warm_dirs():
    for path in _warm_dirs.values():
        shutil.rmtree(path, ignore_errors=True)


atexit.register(_cleanup_warm_dirs)


class JitWarmCache(Benchmark):
    """The same child as JitColdCache/serial, with the cache filled beforehand (in setup, once
    per process): the cost of loading compiled kernels, paid by every new process."""

    repeat = (3, 10, 30.0)
    timeout = 900.0

    def setup(self):
        if "serial" not in _warm_dirs:
            path = tempfile.mkdtemp(prefix="fastnn-asv-numba-warm-")
            _warm_dirs["pending"] = path  # removed at exit even if warming fails
            run_python(CHILD["serial"], {"NUMBA_CACHE_DIR": path, "FASTNN_NATIVE": "0"})
            _warm_dirs["serial"] = _warm_dirs.pop("pending")
        self.cache_dir = _warm_dirs["serial"]

    def time_first_fit_warm_cache(self):
        run_python(CHILD["serial"], {"NUMBA_CACHE_DIR": self.cache_dir, "FASTNN_NATIVE": "0"})


class NativeLibrary(Benchmark):
    """The same child as JitWarmCache with the native library that `fastnn build` made: no
    Numba import, no compiling. Skipped where the library is not built (or out of date)."""

    repeat = (3, 10, 30.0)

    def setup(self):
        from fastnn.native import loader as native

        if not native._library():
            raise NotImplementedError("no usable native library (fastnn build)")

    def time_first_fit_native(self):
        run_python(CHILD["serial"], {"FASTNN_NATIVE": "1"})
