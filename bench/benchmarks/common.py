"""Shared helpers for the asv suite: where the data is, cached loading, JIT warm-up.

Data: the MNIST IDX files are looked up through the environment variable FASTNN_DATA (a folder
with an ``mnist/`` subfolder), as fastnn itself does. If FASTNN_DATA is unset, it defaults to
``<repo root>/../shared/data``, resolved from this file's location, because asv runs each
benchmark from a temporary working directory. Nothing is ever downloaded by the benchmarks.

Numba cache: unless NUMBA_CACHE_DIR is set, compiled kernels go to
``<repo root>/.asv/numba_cache/<hash of the installed fastnn sources>``. Numba's own cache only
notices edits to a kernel's own file, so a cache shared across commits (asv reinstalls each
commit into the same environment) could run stale kernels; keyed by the sources, each code
state gets its own, still warm across benchmark processes. Delete the folder to reclaim space.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np

#: The repository root (bench/benchmarks/common.py -> ../..).
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Where the data is when FASTNN_DATA is not set.
DEFAULT_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()

if not os.environ.get("FASTNN_DATA"):
    os.environ["FASTNN_DATA"] = str(DEFAULT_DATA)


def _fastnn_source_hash() -> str:
    """Hash of every .py file of the installed fastnn package (found without importing it)."""
    spec = importlib.util.find_spec("fastnn")
    if spec is None or not spec.submodule_search_locations:
        return "unknown"
    root = pathlib.Path(list(spec.submodule_search_locations)[0])
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


if not os.environ.get("NUMBA_CACHE_DIR"):
    os.environ["NUMBA_CACHE_DIR"] = str(REPO_ROOT / ".asv" / "numba_cache" / _fastnn_source_hash())
    if "numba" in sys.modules:  # numba reads its configuration when first imported
        import numba.core.config

        numba.core.config.reload_config()

#: Training-grid subset: the first N_TRAIN_SUBSET training images (see bench_train.TrainEpoch).
N_TRAIN_SUBSET = 1_000


class Benchmark:
    """Base class, as in numpy's benchmarks/common.py: settings for a shared, noisy machine.

    Every timed call is long compared with the timer resolution, so one call per sample
    (``number = 1``) with several samples (``repeat``) is both cheap and robust; the JIT is
    warmed in ``setup``, so no asv warm-up is needed.
    """

    number = 1
    repeat = (3, 10, 20.0)  # (min samples, max samples, max seconds) per round
    warmup_time = 0.0
    timeout = 300.0


@functools.lru_cache(maxsize=None)
def mnist():
    """The four MNIST arrays (uint8 images (n, 784), uint8 labels), loaded once per process."""
    from fastnn.data.datasets import load_mnist

    return load_mnist(download=False)


@functools.lru_cache(maxsize=None)
def pixels() -> dict:
    """MLP's option to read 0..255 images as X / 255 (uint8 staying bytes): ``pixels=True``
    since its default became False; the commits before it (asv benchmarks a range of them)
    took uint8 input as pixels without being told."""
    import inspect

    import fastnn

    return {"pixels": True} if "pixels" in inspect.signature(fastnn.MLP).parameters else {}


@functools.lru_cache(maxsize=None)
def warm_jit() -> None:
    """Load (or compile, on a cold cache) every kernel used by fit and predict, once per process.

    Both ways of training are warmed: a 784-16-10 fit with ``threads=1`` (one worker), a
    784-512-10 fit with batch 64 and ``threads=2`` (two workers, the batch transposed by input
    unit). The inputs are
    random, hence lr=0.01 (any lr compiles the same code: it is cast to the model's dtype).
    """
    import fastnn

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(128, 784), dtype=np.uint8)
    y = rng.integers(0, 10, size=128)
    fastnn.MLP([784, 16, 10], init="he", **pixels()).fit(X, y, batch_size=64, lr=0.01, threads=1)
    model = fastnn.MLP([784, 512, 10], init="he", **pixels())
    model.fit(X, y, batch_size=64, lr=0.01, threads=2)
    model.predict_proba(X)
    model.evaluate(X, y)


def run_python(code: str, env_update: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter (this one's executable); return its stdout.

    Raises RuntimeError with the child's stderr when it fails, so the benchmark fails.
    """
    env = dict(os.environ)
    env.update(env_update or {})
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child python exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc.stdout
