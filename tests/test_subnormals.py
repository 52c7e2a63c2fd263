"""Training flushes subnormal numbers to zero in its workers' threads, and only there
(fastnn/kernels/subnormals.py)."""

import numpy as np
import pytest
from numba import njit

import fastnn
from fastnn.kernels.subnormals import flush_subnormals, restore_float_mode

TINY = np.finfo(np.float32).tiny  # the smallest normal float32


@njit
def products_flushed_then_not(x):
    mode = flush_subnormals()
    flushed = x[0] * x[1]
    restore_float_mode(mode)
    return flushed, x[0] * x[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_mode_flushes_and_is_restored(dtype):
    tiny = np.finfo(dtype).tiny
    flushed, ieee = products_flushed_then_not(np.array([tiny, 0.5], dtype))
    assert flushed == 0
    assert ieee == tiny / 2 and ieee != 0


def subnormal(a):
    return (a != 0) & (np.abs(a) < TINY)


@pytest.mark.parametrize("threads", [1, 2])
def test_adam_moments_that_would_be_subnormal_are_zero(threads):
    # Input 0 is non-zero in example 100 alone. Its first-layer weights' first moment m is then
    # non-zero and shrinks by beta1 = 0.9 a step: 900 steps later IEEE arithmetic leaves it
    # subnormal (about 1e-44 of its value); the kernels leave zero.
    rng = np.random.default_rng(0)
    X = np.column_stack([np.zeros(1000), rng.uniform(0.5, 1.5, 1000)]).astype(np.float32)
    X[100, 0] = 1.0
    y = rng.integers(0, 2, 1000)
    model = fastnn.MLP([2, 8, 2], seed=1, dtype="float32")
    adam = fastnn.Adam(lr=1e-3)
    model.fit(X[:101], y[:101], batch_size=1, shuffle=False, optimizer=adam, threads=threads)
    first_moment = model.layout.weights(model.optimizer_state.m, 0)[0]  # input 0's row
    assert np.count_nonzero(first_moment) > 0
    decayed = first_moment.astype(np.float64) * 0.9 ** 899  # m after 899 steps of zero gradient
    assert subnormal(decayed).any(), "the premise: IEEE arithmetic would leave subnormals"

    model.fit(X[101:], y[101:], batch_size=1, shuffle=False, optimizer=adam, threads=threads)
    assert not model.layout.weights(model.optimizer_state.m, 0)[0].any()
    for values in (model.optimizer_state.m, model.optimizer_state.v, model._params):
        assert not subnormal(values).any()
    assert np.float32(TINY) * np.float32(0.5) != 0, "the caller's thread keeps IEEE arithmetic"
