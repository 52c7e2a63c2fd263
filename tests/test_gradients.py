"""The fused kernels' gradients against the NumPy reference and against finite differences."""

import numpy as np
import pytest

from fastnn import MLP, reference
from fastnn.kernels.codes import VECTOR_BYTES
from helpers import flatten_reference, random_pixels, to_reference

LANES = VECTOR_BYTES // 8  # float64 values per vector: 8 with AVX-512, 4 with AVX2
# First layers of 4 and 18 vectors take the transposed-batch gradient (layout.TRANSPOSE_MIN_VECTORS
# is 4; a tile of 4, and tiles of 8 + 8 + 2 vectors), the others the per-example one.
SHAPES = [[20, 7, 5], [30, 4 * LANES, 8, 4], [784, 10, 10], [784, 18 * LANES, 10]]
# Beyond the tutorial's relu and softmax: (hidden activation, output, outputs). A sigmoid output
# with one unit is two classes, with three it is three labels per example.
VARIANTS = [("gelu", "softmax", 5), ("silu", "softmax", 5), ("relu", "sigmoid", 1), ("tanh", "sigmoid", 3),
            ("gelu", "sigmoid", 3), ("silu", "sigmoid", 1)]
VARIANT_IDS = [f"{activation}-{output}-{k}" for activation, output, k in VARIANTS]


def relative_error(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("sizes", SHAPES)
@pytest.mark.parametrize("pixels", [True, False], ids=["uint8", "float64"])
def test_kernel_gradient_equals_reference(sizes, pixels):
    X, rng = random_pixels(40, sizes[0], seed=len(sizes))
    if not pixels:
        X = rng.normal(size=X.shape) * (X > 0)  # real-valued, still with zeros to skip
    y = rng.integers(0, sizes[-1], 40)
    model = MLP(sizes, pixels=pixels, seed=1, dtype="float64")  # reference.scale_pixels divides uint8 only
    expected = reference.gradients(to_reference(model.get_weights()), reference.scale_pixels(X), y)
    assert relative_error(model.gradient(X, y), flatten_reference(expected)) < 1e-10


def labels_for(output, k, n, rng):
    """Class labels 0..k-1 (softmax), or 0/1 labels: one per example for one output, else (n, k)."""
    if output == "softmax":
        return rng.integers(0, k, n)
    return rng.integers(0, 2, n) if k == 1 else rng.integers(0, 2, (n, k))


@pytest.mark.parametrize("activation, output, k", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("hidden", [[7], [4 * LANES, 8]], ids=["narrow", "transposed"])
def test_kernel_gradient_equals_reference_for_other_activations_and_outputs(activation, output, k, hidden):
    sizes = [30, *hidden, k]
    X, rng = random_pixels(40, sizes[0], seed=k)
    X = rng.normal(size=X.shape) * (X > 0)  # pre-activations on both sides of 0, some large
    y = labels_for(output, k, 40, rng)
    model = MLP(sizes, activation=activation, output=output, seed=1, dtype="float64")
    params = to_reference(model.get_weights())
    Z = reference.forward_prop(params, reference.scale_pixels(X), activation, output)[0][0]
    assert (Z < -1).mean() > 0.1 and (Z > 1).mean() > 0.1  # the curved parts of gelu and silu count
    expected = reference.gradients(params, reference.scale_pixels(X), y, activation, output)
    assert relative_error(model.gradient(X, y), flatten_reference(expected)) < 1e-10


def central_differences(loss, params, eps=1e-6):
    grad = np.empty_like(params)
    for i in range(params.size):
        plus, minus = params.copy(), params.copy()
        plus[i] += eps
        minus[i] -= eps
        grad[i] = (loss(plus) - loss(minus)) / (2 * eps)
    return grad


@pytest.mark.parametrize("activation, output, k", [("relu", "softmax", 4), *VARIANTS],
                         ids=["relu-softmax-4", *VARIANT_IDS])
def test_reference_gradient_matches_finite_differences(activation, output, k):
    sizes = [12, 6, k]
    X, rng = random_pixels(16, sizes[0], seed=3)
    y = labels_for(output, k, 16, rng)
    params = reference.init_params(sizes, seed=2)
    layout_sizes = [(W.shape, b.shape) for W, b in params]

    def unflatten(flat):
        out, at = [], 0
        for (w_shape, b_shape) in layout_sizes:
            n_out, n_in = w_shape
            block = flat[at:at + (n_in + 1) * n_out]
            out.append((block[:n_in * n_out].reshape(n_in, n_out).T, block[n_in * n_out:].reshape(b_shape)))
            at += block.size
        return out

    flat = flatten_reference(params)
    numeric = central_differences(
        lambda p: reference.loss(unflatten(p), reference.scale_pixels(X), y, activation, output), flat)
    analytic = flatten_reference(reference.gradients(params, reference.scale_pixels(X), y, activation, output))
    assert relative_error(analytic, numeric) < 1e-6


@pytest.mark.parametrize("activation, output, k", [
    ("relu", "softmax", 4), ("leaky_relu", "softmax", 4), ("tanh", "softmax", 4), ("sigmoid", "softmax", 4),
    ("identity", "softmax", 4), ("gelu", "softmax", 4), ("silu", "softmax", 4), ("gelu", "sigmoid", 1),
    ("silu", "sigmoid", 3)])
def test_kernel_gradient_matches_finite_differences(activation, output, k):
    sizes = [12, 6, 5, k]
    X, rng = random_pixels(16, sizes[0], seed=4)
    y = labels_for(output, k, 16, rng)
    model = MLP(sizes, activation=activation, output=output, init="glorot", pixels=True, seed=5, dtype="float64")
    model.set_params(model.get_params() + rng.normal(scale=0.1, size=model.get_params().size))  # non-zero biases
    analytic = model.gradient(X, y)

    def loss(flat):
        model.set_params(flat)
        return model.evaluate(X, y)["loss"]

    numeric = central_differences(loss, model.get_params())
    assert relative_error(analytic, numeric) < 1e-6
