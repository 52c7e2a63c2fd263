"""The tutorial's algorithm in plain, readable NumPy: the oracle for tests, the baseline for benchmarks.

Written in the tutorial's notation (docs/seed.md): examples are columns, ``W`` has shape
(n_out, n_in), ``b`` has shape (n_out, 1), hidden layers use ReLU and the output softmax
with cross-entropy. Any number of layers. Nothing here is tuned for speed.
"""

from __future__ import annotations

import numpy as np

Params = list[tuple[np.ndarray, np.ndarray]]


def init_params(sizes: list[int], seed: int = 0, dtype=np.float64) -> Params:
    """The tutorial's initialisation: every weight and bias uniform in [-0.5, 0.5)."""
    rng = np.random.default_rng(seed)
    return [
        ((rng.random((n_out, n_in)) - 0.5).astype(dtype), (rng.random((n_out, 1)) - 0.5).astype(dtype))
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    ]


def scale_pixels(X: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Examples as columns, pixels scaled from 0..255 to [0, 1] (uint8 input), else as given."""
    X = np.asarray(X)
    scaled = X.astype(dtype) / dtype(255) if X.dtype == np.uint8 else X.astype(dtype)
    return scaled.T


def relu(Z: np.ndarray) -> np.ndarray:
    return np.maximum(Z, 0)


def softmax(Z: np.ndarray) -> np.ndarray:
    E = np.exp(Z - Z.max(axis=0, keepdims=True))  # shifted for stability; the result is the same
    return E / E.sum(axis=0, keepdims=True)


def one_hot(y: np.ndarray, n_classes: int, dtype=np.float64) -> np.ndarray:
    Y = np.zeros((n_classes, y.size), dtype=dtype)
    Y[y, np.arange(y.size)] = 1
    return Y


def forward_prop(params: Params, X: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Z_l = W_l A_{l-1} + b_l; A_l = ReLU(Z_l) for hidden layers, softmax(Z_L) at the output."""
    Zs, As = [], [X]
    for i, (W, b) in enumerate(params):
        Z = W @ As[-1] + b
        Zs.append(Z)
        As.append(softmax(Z) if i == len(params) - 1 else relu(Z))
    return Zs, As


def backward_prop(params: Params, Zs: list[np.ndarray], As: list[np.ndarray], y: np.ndarray) -> Params:
    """Mean cross-entropy gradients: dZ_L = A_L - Y, dW = dZ A^T / m, db = row sums / m."""
    m = y.size
    dZ = As[-1] - one_hot(y, As[-1].shape[0], As[-1].dtype)
    grads: Params = []
    for i in range(len(params) - 1, -1, -1):
        grads.append((dZ @ As[i].T / m, dZ.sum(axis=1, keepdims=True) / m))
        if i > 0:
            dZ = (params[i][0].T @ dZ) * (Zs[i - 1] > 0)
    return grads[::-1]


def gradients(params: Params, X: np.ndarray, y: np.ndarray) -> Params:
    """Gradients of the mean loss over the batch (X: examples as columns)."""
    Zs, As = forward_prop(params, X)
    return backward_prop(params, Zs, As, y)


def loss(params: Params, X: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy."""
    _, As = forward_prop(params, X)
    return float(-np.mean(np.log(As[-1][y, np.arange(y.size)])))


def update_params(params: Params, grads: Params, alpha: float) -> Params:
    return [(W - alpha * dW, b - alpha * db) for (W, b), (dW, db) in zip(params, grads)]


def get_predictions(params: Params, X: np.ndarray) -> np.ndarray:
    return np.argmax(forward_prop(params, X)[1][-1], axis=0)


def get_accuracy(predictions: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(predictions == y))


def gradient_descent(
    params: Params, X: np.ndarray, y: np.ndarray, alpha: float, iterations: int, report_every: int = 0
) -> Params:
    """The tutorial's full-batch gradient descent; prints the training accuracy every report_every."""
    for i in range(iterations):
        params = update_params(params, gradients(params, X, y), alpha)
        if report_every and i % report_every == 0:
            print(f"iteration {i}: accuracy {get_accuracy(get_predictions(params, X), y):.4f}")
    return params


def sgd_epoch(params: Params, X: np.ndarray, y: np.ndarray, alpha: float, batch_size: int,
              order: np.ndarray | None = None) -> Params:
    """One epoch of minibatch SGD over the examples in ``order`` (the last batch may be smaller)."""
    order = np.arange(y.size) if order is None else order
    for start in range(0, order.size, batch_size):
        batch = order[start:start + batch_size]
        params = update_params(params, gradients(params, X[:, batch], y[batch]), alpha)
    return params
