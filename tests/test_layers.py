"""The output layer's vector exp and softmax against float64 NumPy."""

import numpy as np
import pytest
from numba import njit

from fastnn.kernels.layers import softmax_forward
from fastnn.kernels.simd import VECTOR_BYTES, lanes, vexp, vload, vstore


@njit
def exp_by_vectors(x, out):
    for t in range(0, x.size, lanes(x)):
        vstore(out, t, vexp(vload(x, t)))


def vector_exp(x: np.ndarray) -> np.ndarray:
    lanes_ = VECTOR_BYTES // x.itemsize
    padded = np.zeros(-(-x.size // lanes_) * lanes_, x.dtype)
    padded[:x.size] = x
    out = np.empty_like(padded)
    exp_by_vectors(padded, out)
    return out[:x.size]


@pytest.mark.parametrize("dtype, low, high", [(np.float32, -87.3, 88.0), (np.float64, -708.0, 709.0)])
def test_vector_exp_is_within_one_ulp_over_its_range(dtype, low, high):
    x = np.linspace(low, high, 200_003).astype(dtype)
    exact = np.exp(x.astype(np.longdouble))
    ulps = np.abs(vector_exp(x) - exact) / np.spacing(exact.astype(dtype))
    assert ulps.max() < 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vector_exp_outside_its_range(dtype):
    x = np.array([np.nan, -np.inf, np.inf, -1000.0, 1000.0, 0.0], dtype)
    np.testing.assert_array_equal(vector_exp(x), [np.nan, 0.0, np.inf, 0.0, np.inf, 1.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 3, 4, 8, 10, 17])
def test_softmax_matches_numpy_and_zeroes_the_padding(dtype, n):
    lanes_ = VECTOR_BYTES // np.dtype(dtype).itemsize
    width = -(-n // lanes_) * lanes_
    z = np.full(width, 1e30, dtype)  # padding past n must not count as a class
    z[:n] = np.random.default_rng(n).standard_normal(n) * 10
    p = np.full(width, 7.0, dtype)
    log_partition = softmax_forward(z, p, n)
    exact = z[:n].astype(np.float64)
    shifted = np.exp(exact - exact.max())
    np.testing.assert_allclose(p[:n], shifted / shifted.sum(), rtol=2e-5 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(log_partition, np.log(shifted.sum()) + exact.max(),
                               rtol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_array_equal(p[n:], 0)
