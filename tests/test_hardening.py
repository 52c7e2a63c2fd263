"""Hostile input at the API boundary: every input either trains correctly or raises a clear,
documented exception before any kernel runs; and the kernels never index out of bounds."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnn
from fastnn import MLP, DataError

DTYPES = [np.uint8, np.int8, np.int64, np.uint16, np.float16, np.float32, np.float64, np.bool_]


def layouts(draw, array):
    """The same values as C, Fortran, negative-stride or strided-view arrays."""
    kind = draw(st.sampled_from(["c", "fortran", "reversed", "strided"]))
    if kind == "fortran":
        return np.asfortranarray(array)
    if kind == "reversed":
        return array[::-1].copy()[::-1]
    if kind == "strided":
        return np.repeat(array, 2, axis=1)[:, ::2]
    return array


@st.composite
def problems(draw):
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 12))
    dtype = draw(st.sampled_from(DTYPES))
    X = draw(hnp.arrays(dtype, (n, d), elements=hnp.from_dtype(np.dtype(dtype), allow_nan=True,
                                                                    allow_infinity=True)))
    label_type = draw(st.sampled_from([np.int64, np.int32, np.uint8, np.float64, np.bool_, np.str_]))
    if label_type == np.bool_:
        y = draw(hnp.arrays(np.bool_, (n,)))
    elif label_type == np.str_:
        y = np.array(list("vwxyz"))[draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, 4)))]
    else:
        y = draw(hnp.arrays(label_type, (n,), elements=st.integers(0 if label_type == np.uint8 else -1, 4)))
    return layouts(draw, X), y, d


def labels_ok(y, n_classes):
    """Labels 0..k-1 are their own classes; any others (numbers outside 0..k-1, strings, bools)
    must name exactly k classes. Bools are never indices: True is not class 1."""
    distinct = set(y.tolist())
    indices = y.dtype != np.bool_ and y.dtype.kind != "U" and distinct <= set(range(n_classes))
    return indices or len(distinct) == n_classes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(), st.integers(1, 64), st.integers(0, 2), st.sampled_from(["float32", "float64"]),
       st.sampled_from([False, True, None]))
def test_fit_trains_or_raises_a_clear_error(problem, batch_size, epochs, dtype, pixels):
    X, y, d = problem
    model = MLP([d, 5, 4], dtype=dtype, init="he", pixels=pixels)
    finite = not np.issubdtype(X.dtype, np.floating) or np.isfinite(X).all()
    labelled = labels_ok(y, 4)
    try:
        history = model.fit(X, y, epochs=epochs, batch_size=batch_size, lr=0.01)
    except fastnn.TrainingDivergedError:
        assert np.isfinite(model.get_params()).all()  # huge inputs: stopped, last good weights kept
        return
    except DataError as error:
        assert not (finite and labelled) or "too large" in str(error), error
        return
    assert finite and labelled
    assert len(history.loss) == epochs and np.isfinite(history.loss).all()
    learnt = model.classes is not None
    assert learnt == (y.dtype == np.bool_ or y.dtype.kind == "U" or not set(y.tolist()) <= set(range(4)))
    if learnt:
        assert model.classes_.tolist() == sorted(set(y.tolist()))
        assert set(model.predict(X).tolist()) <= set(y.tolist())
    try:
        probabilities = model.predict_proba(X)
    except DataError as error:  # huge inputs: weights that make the outputs overflow
        assert "too large" in str(error) and np.abs(X).max() > 1e6, error
        return
    assert probabilities.shape == (len(X), 4) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-3)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.integers(1, 200), st.integers(1, 100))
def test_batches_larger_than_the_data_and_single_examples(n, batch_size, seed):
    X = np.random.default_rng(seed).integers(0, 256, (n, 7)).astype(np.uint8)
    y = np.arange(n) % 3
    model = MLP([7, 4, 3], seed=seed, dtype="float64")
    model.fit(X, y, epochs=1, batch_size=batch_size, shuffle=False)
    reference = MLP([7, 4, 3], seed=seed, dtype="float64")
    reference.fit(X, y, epochs=1, batch_size=min(batch_size, n), shuffle=False)
    assert np.array_equal(model.get_params(), reference.get_params())


@pytest.mark.parametrize("bad", [np.array([[1, 2]], dtype=object), np.array([["a", "b"]]),
                                 np.array([[1 + 1j, 2]]), np.zeros((0, 2)), np.zeros((2, 2, 2)),
                                 np.zeros(2)])
def test_predict_refuses_bad_inputs(bad):
    with pytest.raises(DataError):
        MLP([2, 3, 2]).predict(bad)


@pytest.mark.slow
def test_kernels_stay_in_bounds_under_numba_boundscheck():
    """All kernels, compiled with NUMBA_BOUNDSCHECK=1 (in a cache of their own: Numba's cache does
    not tell the two builds apart), on validated inputs of awkward shapes: an out-of-bounds index
    would raise IndexError in the subprocess. FASTNN_NATIVE=0: the native library, built without
    the checks, must not take these calls."""
    script = textwrap.dedent("""
        import numpy as np, fastnn
        rng = np.random.default_rng(0)
        for sizes in ([3, 1, 2], [17, 9, 5, 3], [40, 33, 2]):
            X = (rng.random((37, sizes[0])) < 0.4) * rng.integers(0, 256, (37, sizes[0]))
            y = rng.integers(0, sizes[-1], 37)
            for dtype in ("float64",):
                for threads in (1, 2):
                    fastnn.parallel.PARALLEL_MIN_WORK = 0 if threads == 2 else 10**12
                    fastnn.parallel.PROBE = False
                    m = fastnn.MLP(sizes, dtype=dtype, dropout=0.3, activation="tanh", pixels=True, seed=1)
                    m.fit(X.astype(np.uint8), y, epochs=2, batch_size=32, threads=threads,
                          optimizer=fastnn.Adam(lr=0.01), clip_norm=1.0, sample_weight=np.ones(37))
                    m.fit(X / 255.0, y, epochs=1, batch_size=64, threads=threads)
                    m.predict_proba(X.astype(np.uint8)); m.gradient(X.astype(np.uint8), y)
                r = fastnn.MLP(sizes, output="linear", dtype="float64")
                r.fit(X / 255.0, rng.normal(size=(37, sizes[-1])), epochs=1, batch_size=5)
            fastnn.fit_many([fastnn.MLP(sizes, pixels=True, seed=s) for s in range(3)], X.astype(np.uint8), y,
                            epochs=1)
        # batches of 4,100 and 400 examples: plan CHUNKS, chunks of 2,048, 2,048 and 4, and of 400
        X = ((rng.random((4500, 17)) < 0.4) * rng.integers(0, 256, (4500, 17))).astype(np.uint8)
        y = rng.integers(0, 3, 4500)
        for threads in (1, 2):
            m = fastnn.MLP([17, 9, 5, 3], dtype="float64", dropout=0.3, pixels=True, seed=1)
            m.fit(X, y, epochs=2, batch_size=4100, threads=threads, optimizer=fastnn.Adam(lr=0.01))
        fastnn.fit_many([fastnn.MLP([17, 9, 5, 3], pixels=True, seed=s) for s in range(3)], X, y, batch_size=4100)
        print("in bounds")
    """)
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": os.environ["NUMBA_CACHE_DIR"] + "-boundscheck",
           "FASTNN_NATIVE": "0"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "in bounds"
