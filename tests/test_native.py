"""The native library of the entry kernels (fastnn/native/loader.py, built by `fastnn build`)
against the JIT kernels it is built from: the same results, bit for bit, and no Numba import."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
import fastnn.parallel
import fastnn.workers
from fastnn.native import loader as native

REQUIRED = os.environ.get("FASTNN_REQUIRE_NATIVE") == "1"  # .ci/run builds the library first
needs_library = pytest.mark.skipif(not native._library() and not REQUIRED,
                                   reason="no native library here (build it with: fastnn build)")


def test_the_library_is_in_use_where_it_is_required():
    if not REQUIRED:
        pytest.skip("FASTNN_REQUIRE_NATIVE is not set")
    assert native.status().startswith("native: train_worker"), native.status()


def data(kind: str, dtype):
    rng = np.random.default_rng(3)
    pixels = (rng.integers(1, 256, (200, 30)) * (rng.random((200, 30)) < 0.4)).astype(np.uint8)
    return (pixels if kind == "uint8" else pixels.astype(dtype) / 255), rng.integers(0, 4, 200)


# Each way to share a batch (fastnn.parallel.parallel_plan): batches of one block share the
# model's weights; narrow layers with batches of several blocks split the first layer (plain SGD)
# or take replicas.
PLANS = {"shared weights": dict(hidden=40, batch_size=16, momentum=0.0),
         "split by inputs": dict(hidden=12, batch_size=48, momentum=0.0),
         "replicas": dict(hidden=12, batch_size=48, momentum=0.9)}


def train_and_predict(dtype, X, y, threads: int, hidden: int, batch_size: int, momentum: float):
    pixels = X.dtype == np.uint8  # uint8 pixels stay bytes: the kernels' table path
    model = fastnn.MLP([X.shape[1], hidden, 4], dtype=dtype, seed=1, dropout=0.1, pixels=pixels)
    history = model.fit(X, y, epochs=2, batch_size=batch_size, threads=threads,
                        optimizer=fastnn.SGD(lr=0.1, momentum=momentum))
    assert history.workers == threads
    rows = fastnn.prepare(X, dtype).rows_for(30, dtype, "X", pixels)
    return model.get_params(), model.predict_proba(X), history.loss, rows


@needs_library
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["uint8", "real"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("plan", PLANS.values(), ids=PLANS.keys())
def test_native_kernels_give_the_jit_results_bit_for_bit(monkeypatch, dtype, kind, threads, plan):
    if threads > fastnn.workers.max_threads():
        pytest.skip("one CPU: fit would run one worker whatever threads says")
    monkeypatch.setattr(fastnn.parallel, "PARALLEL_MIN_WORK", 0)  # two threads: two workers, however small
    monkeypatch.setattr(fastnn.parallel, "PROBE", False)
    X, y = data(kind, dtype)
    with monkeypatch.context() as jit_only:
        jit_only.setattr(native, "_library", lambda: {})
        expected = train_and_predict(dtype, X, y, threads, **plan)

    def no_jit(self):
        raise AssertionError(f"{self.name} fell back to the JIT")

    monkeypatch.setattr(native.Kernel, "jit", no_jit)
    got = train_and_predict(dtype, X, y, threads, **plan)
    for e, g in zip(expected[:3], got[:3]):
        np.testing.assert_array_equal(g, e)
    for name in ("indptr", "indices", "values"):
        np.testing.assert_array_equal(getattr(got[3], name), getattr(expected[3], name))


@needs_library
def test_native_fit_many_gives_the_jit_weights_bit_for_bit(monkeypatch):
    X, y = data("uint8", "float32")

    def train():
        models = [fastnn.MLP([30, 12, 4], pixels=True, seed=s) for s in range(3)]
        fastnn.fit_many(models, X, y, epochs=2, batch_size=16, threads=2)
        return [m.get_params() for m in models]

    with monkeypatch.context() as jit_only:
        jit_only.setattr(native, "_library", lambda: {})
        expected = train()
    monkeypatch.setattr(native.Kernel, "jit", lambda self: pytest.fail(f"{self.name} fell back to the JIT"))
    for e, g in zip(expected, train()):
        np.testing.assert_array_equal(g, e)


@needs_library
def test_a_process_with_the_library_never_imports_numba():
    """It trains, fits many and evaluates, with the same results as this process (which may
    have run the JIT), and never loads Numba."""
    code = ("import sys, numpy as np, fastnn\n"
            "X = (np.arange(64 * 20).reshape(64, 20) % 7 == 0).astype(np.uint8) * 200\n"
            "model = fastnn.MLP([20, 10, 2], pixels=True)\n"
            "model.fit(X, np.arange(64) % 2, epochs=1)\n"
            "models = [fastnn.MLP([20, 10, 2], pixels=True, seed=s) for s in range(2)]\n"
            "fastnn.fit_many(models, X, np.arange(64) % 2)\n"
            "print(repr(model.evaluate(X, np.arange(64) % 2)['loss']), 'numba' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    X = (np.arange(64 * 20).reshape(64, 20) % 7 == 0).astype(np.uint8) * 200
    model = fastnn.MLP([20, 10, 2], pixels=True)
    model.fit(X, np.arange(64) % 2, epochs=1)
    assert done.stdout.split() == [repr(model.evaluate(X, np.arange(64) % 2)["loss"]), "False"], done.stderr


def test_types_the_library_lacks_run_on_the_jit():
    # int16 inputs are not among the library's types: the call must reach the JIT and be right.
    X = np.array([[0, 3, 0, 5], [0, 0, 0, 0], [7, 0, 0, -1]], dtype=np.int16)
    counts = np.zeros(4, dtype=np.int64)
    native.kernel("count_row_nonzeros")(np.zeros(16, dtype=np.int64), X, counts)
    assert counts.tolist() == [0, 2, 0, 2]


def test_packed_keys_match_the_manifest_names_and_refuse_what_a_pointer_cannot_carry():
    readonly = np.zeros(3, dtype=np.float32)
    readonly.flags.writeable = False
    array = np.zeros((2, 3), np.uint8)
    values = (array, (True, (3, 0.5)), np.float32(1), np.uint64(2), np.int64(4), np.zeros(0, np.int64))
    names = ["uint8[2]", "bool", "int64", "float64", "float32", "uint64", "int64", "int64[1]"]
    key, slots = native.pack(values)
    assert key == tuple(native.key_of(name) for name in names)
    assert slots == [array.ctypes.data, 2, 3, True, 3, 0.5, np.float32(1), np.uint64(2), np.int64(4), 0, 0]
    assert native.pack((1, readonly)) is None
    assert native.pack((np.zeros((3, 2), np.float32).T,)) is None  # not C-contiguous
    assert native.pack(("text",)) is None


@pytest.fixture
def fresh_library():
    native._library.cache_clear()
    yield
    native._library.cache_clear()


@needs_library
def test_a_library_built_from_other_sources_is_not_used(monkeypatch, fresh_library):
    monkeypatch.setattr(native, "fingerprint", lambda: "kernels edited since the build")
    assert native._library() == {}
    assert native.status() == ("JIT only: the native library was built from other kernel sources: "
                               "rebuild it with: fastnn build")


def test_fastnn_native_0_turns_the_library_off(monkeypatch, fresh_library):
    monkeypatch.setenv("FASTNN_NATIVE", "0")
    assert native._library() == {}
    assert native.status() == "JIT only: FASTNN_NATIVE=0"
    assert native.missing() is None  # asked for: nothing to tell


def test_train_says_why_it_compiles_when_there_is_no_library(monkeypatch, fresh_library, tmp_path, shared_data,
                                                             capsys):
    from fastnn.cli.main import main

    monkeypatch.setattr(native, "DIRECTORY", tmp_path)  # no library there
    assert native.missing() == "no native library (build it with: fastnn build)"
    monkeypatch.setenv("FASTNN_DATA", str(shared_data))
    assert main(["train", "--epochs", "1", "-q"]) == 0
    assert capsys.readouterr().err.startswith("note: no native library (build it with: fastnn build); until then "
                                              "the kernels compile on first use")
    monkeypatch.setenv("FASTNN_NATIVE", "0")
    native._library.cache_clear()
    assert main(["train", "--epochs", "1", "-q"]) == 0
    assert "note:" not in capsys.readouterr().err


def test_fastnn_build_status_says_which_kernels_run(monkeypatch, capsys):
    from fastnn.cli.main import main

    monkeypatch.setenv("FASTNN_NATIVE", "0")
    native._library.cache_clear()
    try:
        assert main(["build", "--status"]) == 0
        assert capsys.readouterr().out == "JIT only: FASTNN_NATIVE=0\n"
    finally:
        native._library.cache_clear()
