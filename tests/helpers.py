"""Conversions between fastnn's layout and the reference's, and small data sets for tests."""

import numpy as np


def to_reference(weights):
    """fastnn's [(W (n_in, n_out), b (n_out,))] as the tutorial's [(W (n_out, n_in), b (n_out, 1))]."""
    return [(W.T.astype(np.float64), b.reshape(-1, 1).astype(np.float64)) for W, b in weights]


def flatten_reference(params):
    """The reference's parameters (or gradients) in fastnn's flat layout."""
    return np.concatenate([np.concatenate([W.T.ravel(), b.ravel()]) for W, b in params])


def random_pixels(n, n_features, seed=0, density=0.3):
    """uint8 'images' with about ``density`` non-zero pixels, and labels."""
    rng = np.random.default_rng(seed)
    X = ((rng.random((n, n_features)) < density) * rng.integers(1, 256, (n, n_features))).astype(np.uint8)
    return X, rng


def gaussian_problem(n, sizes, seed=0, output="softmax"):
    """Gaussian inputs (dense, float64) and labels that depend on them, regression targets, or
    (output 'sigmoid') 0/1 labels, one column per output."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, sizes[0]))
    if output == "softmax":
        y = (X @ rng.normal(size=(sizes[0], sizes[-1])) + rng.normal(size=(n, sizes[-1]))).argmax(axis=1)
    elif output == "sigmoid":
        y = (X @ rng.normal(size=(sizes[0], sizes[-1])) + rng.normal(size=(n, sizes[-1])) > 0).astype(np.int64)
    else:
        y = np.tanh(X @ rng.normal(size=(sizes[0], sizes[-1])) / 3) + 0.1 * rng.normal(size=(n, sizes[-1]))
    return X, y
