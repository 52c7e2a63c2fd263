"""The tutorial's algorithm in plain, readable NumPy: the oracle for tests, the baseline for benchmarks.

Written in the tutorial's notation (docs/seed.md): examples are columns, ``W`` has shape
(n_out, n_in), ``b`` has shape (n_out, 1), hidden layers use ReLU and the output softmax
with cross-entropy. Any number of layers. Nothing here is tuned for speed. The forward and
backward passes, ``loss`` and ``gradients`` also take fastnn's other hidden activations
(``activation=``, see HIDDEN) and outputs (``output=``: 'linear' with mean squared error,
'sigmoid' with binary cross-entropy; their ``y`` is an (examples, outputs) array, or one value
per example for one output).

The update rules below (``sgd_step``, ``rmsprop_step``, ``adam_step``, ``adamw_step``) are
torch.optim's definitions written out for one tensor; ``optimizer_epoch`` trains with any of them.
"""

from __future__ import annotations

import math

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


def sigmoid(Z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-Z))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def normal_cdf(Z: np.ndarray) -> np.ndarray:
    """Phi, the standard normal's distribution function."""
    return 0.5 * (1 + _erf(Z / np.sqrt(2)))


def normal_pdf(Z: np.ndarray) -> np.ndarray:
    return np.exp(-Z * Z / 2) / np.sqrt(2 * np.pi)


LEAKY_SLOPE = 0.01

# The hidden activations: name -> (f, f'), both of the pre-activations Z.
HIDDEN = {
    "relu": (relu, lambda Z: (Z > 0).astype(Z.dtype)),
    "leaky_relu": (lambda Z: np.where(Z > 0, Z, LEAKY_SLOPE * Z), lambda Z: np.where(Z > 0, 1.0, LEAKY_SLOPE)),
    "tanh": (np.tanh, lambda Z: 1 - np.tanh(Z) ** 2),
    "sigmoid": (sigmoid, lambda Z: sigmoid(Z) * (1 - sigmoid(Z))),
    "identity": (lambda Z: Z, np.ones_like),
    "gelu": (lambda Z: Z * normal_cdf(Z), lambda Z: normal_cdf(Z) + Z * normal_pdf(Z)),  # exact (erf) form
    "silu": (lambda Z: Z * sigmoid(Z), lambda Z: sigmoid(Z) * (1 + Z * (1 - sigmoid(Z)))),
}


def softmax(Z: np.ndarray) -> np.ndarray:
    E = np.exp(Z - Z.max(axis=0, keepdims=True))  # shifted for stability; the result is the same
    return E / E.sum(axis=0, keepdims=True)


def one_hot(y: np.ndarray, n_classes: int, dtype=np.float64) -> np.ndarray:
    Y = np.zeros((n_classes, y.size), dtype=dtype)
    Y[y, np.arange(y.size)] = 1
    return Y


def targets(y: np.ndarray, n_outputs: int) -> np.ndarray:
    """A linear or sigmoid output's targets as columns, (n_outputs, examples)."""
    return np.asarray(y, dtype=np.float64).reshape(-1, n_outputs).T


def forward_prop(params: Params, X: np.ndarray, activation: str = "relu",
                 output: str = "softmax") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Z_l = W_l A_{l-1} + b_l; A_l = f(Z_l) for hidden layers (ReLU by default), softmax(Z_L)
    at the output (Z_L itself for 'linear', sigmoid(Z_L) for 'sigmoid')."""
    f = HIDDEN[activation][0]
    last = {"softmax": softmax, "linear": lambda Z: Z, "sigmoid": sigmoid}[output]
    Zs, As = [], [X]
    for i, (W, b) in enumerate(params):
        Z = W @ As[-1] + b
        Zs.append(Z)
        As.append(last(Z) if i == len(params) - 1 else f(Z))
    return Zs, As


def output_gradient(Zs: list[np.ndarray], As: list[np.ndarray], y: np.ndarray, output: str) -> np.ndarray:
    """dL/dZ_L of each example's loss (columns): A_L - Y for cross-entropy through the softmax,
    2 (Z_L - T) / k for the mean squared error over k outputs, (sigmoid(Z_L) - T) / k for the
    binary cross-entropy averaged over them."""
    k = As[-1].shape[0]
    if output == "softmax":
        return As[-1] - one_hot(y, k, As[-1].dtype)
    if output == "linear":
        return 2 * (Zs[-1] - targets(y, k)) / k
    return (As[-1] - targets(y, k)) / k


def backward_prop(params: Params, Zs: list[np.ndarray], As: list[np.ndarray], y: np.ndarray,
                  activation: str = "relu", output: str = "softmax") -> Params:
    """Mean loss gradients: dZ_L from output_gradient (A_L - Y for cross-entropy),
    dW = dZ A^T / m, db = row sums / m, dZ_{l-1} = (W_l^T dZ_l) f'(Z_{l-1})."""
    derivative = HIDDEN[activation][1]
    dZ = output_gradient(Zs, As, y, output)
    m = dZ.shape[1]
    grads: Params = []
    for i in range(len(params) - 1, -1, -1):
        grads.append((dZ @ As[i].T / m, dZ.sum(axis=1, keepdims=True) / m))
        if i > 0:
            dZ = (params[i][0].T @ dZ) * derivative(Zs[i - 1])
    return grads[::-1]


def gradients(params: Params, X: np.ndarray, y: np.ndarray, activation: str = "relu",
              output: str = "softmax") -> Params:
    """Gradients of the mean loss over the batch (X: examples as columns)."""
    Zs, As = forward_prop(params, X, activation, output)
    return backward_prop(params, Zs, As, y, activation, output)


def loss(params: Params, X: np.ndarray, y: np.ndarray, activation: str = "relu", output: str = "softmax") -> float:
    """Mean cross-entropy; for 'linear' the mean squared error, for 'sigmoid' the binary
    cross-entropy (as torch.nn.BCEWithLogitsLoss, from the logits: max(z, 0) - z t +
    log(1 + e^-|z|)), both averaged over outputs and examples."""
    Zs, As = forward_prop(params, X, activation, output)
    if output == "softmax":
        return float(-np.mean(np.log(As[-1][y, np.arange(y.size)])))
    Z, T = Zs[-1], targets(y, Zs[-1].shape[0])
    if output == "linear":
        return float(np.mean((Z - T) ** 2))
    return float(np.mean(np.maximum(Z, 0) - Z * T + np.log1p(np.exp(-np.abs(Z)))))


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
    for batch in minibatches(y.size, batch_size, order):
        params = update_params(params, gradients(params, X[:, batch], y[batch]), alpha)
    return params


def minibatches(n: int, batch_size: int, order: np.ndarray | None = None) -> list[np.ndarray]:
    """The examples' indices in ``order`` (default 0..n-1), cut into consecutive batches; the
    last may be smaller."""
    order = np.arange(n) if order is None else order
    return [order[start:start + batch_size] for start in range(0, order.size, batch_size)]


# -- Update rules ---------------------------------------------------------------------------------
#
# Each rule is one torch.optim optimizer's step on one tensor, with torch's names for its
# settings and their defaults: rule(p, g, state, lr, ...) -> (new p, new state). It changes
# neither its arguments nor anything else. ``state`` is a dict named as torch's optimizer.state
# entries ({} before the first step, where torch starts from zeros), so that the two can be
# compared entry for entry. fastnn's kernels (fastnn/kernels/optim.py) apply the same rules.

State = dict  # torch's names for the entries: arrays, and Adam's step count


def sgd_step(p: np.ndarray, g: np.ndarray, state: State, lr: float, *, momentum: float = 0.0,
             nesterov: bool = False, weight_decay: float = 0.0) -> tuple[np.ndarray, State]:
    """torch.optim.SGD, dampening 0 (b: the momentum buffer, 0 before the first step):

        g = g + weight_decay * p
        b = momentum * b + g                      (only with momentum > 0)
        d = g + momentum * b  if nesterov,  else b with momentum,  else g
        p = p - lr * d
    """
    g = g + weight_decay * p
    if momentum == 0:
        return p - lr * g, {}
    b = momentum * state.get("momentum_buffer", 0.0) + g
    d = g + momentum * b if nesterov else b
    return p - lr * d, {"momentum_buffer": b}


def rmsprop_step(p: np.ndarray, g: np.ndarray, state: State, lr: float, *, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0) -> tuple[np.ndarray, State]:
    """torch.optim.RMSprop, not centred, no momentum (v: the mean square, 0 before the first step):

        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g^2
        p = p - lr * g / (sqrt(v) + eps)
    """
    g = g + weight_decay * p
    v = alpha * state.get("square_avg", 0.0) + (1 - alpha) * g * g
    return p - lr * g / (np.sqrt(v) + eps), {"square_avg": v}


def adam_step(p: np.ndarray, g: np.ndarray, state: State, lr: float, *, betas: tuple[float, float] = (0.9, 0.999),
              eps: float = 1e-8, weight_decay: float = 0.0) -> tuple[np.ndarray, State]:
    """torch.optim.Adam, not amsgrad; weight decay is L2, added to the gradient (t: the step
    count, m and v: the moments, all 0 before the first step):

        t = t + 1
        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    that is p - lr * m_hat / (sqrt(v_hat) + eps), with the bias-corrected moments
    m_hat = m / (1 - beta1^t) and v_hat = v / (1 - beta2^t).
    """
    beta1, beta2 = betas
    t = state.get("step", 0) + 1
    g = g + weight_decay * p
    m = beta1 * state.get("exp_avg", 0.0) + (1 - beta1) * g
    v = beta2 * state.get("exp_avg_sq", 0.0) + (1 - beta2) * g * g
    step_size = lr / (1 - beta1 ** t)
    denominator = np.sqrt(v) / np.sqrt(1 - beta2 ** t) + eps
    return p - step_size * m / denominator, {"step": t, "exp_avg": m, "exp_avg_sq": v}


def adamw_step(p: np.ndarray, g: np.ndarray, state: State, lr: float, *, betas: tuple[float, float] = (0.9, 0.999),
               eps: float = 1e-8, weight_decay: float = 0.01) -> tuple[np.ndarray, State]:
    """torch.optim.AdamW: weight decay decoupled from the gradient, then Adam's step without it:

        p = p * (1 - lr * weight_decay)
        p, state = adam_step(p, g, state, lr, betas, eps, weight_decay=0)
    """
    return adam_step(p * (1 - lr * weight_decay), g, state, lr, betas=betas, eps=eps)


def global_norm(grads: Params) -> float:
    """The L2 norm of all the gradients together, as one vector."""
    return float(np.sqrt(sum(np.sum(dW * dW) + np.sum(db * db) for dW, db in grads)))


def clip_by_global_norm(grads: Params, max_norm: float) -> Params:
    """torch.nn.utils.clip_grad_norm_: every gradient times min(1, max_norm / (global_norm + 1e-6))
    (before any weight decay: the rules add it)."""
    scale = min(1.0, max_norm / (global_norm(grads) + 1e-6))
    return [(dW * scale, db * scale) for dW, db in grads]


def apply_rule(rule, params: Params, grads: Params, states: list[tuple[State, State]]
               ) -> tuple[Params, list[tuple[State, State]]]:
    """``rule(p, g, state) -> (p, state)`` on every weight and bias, each with its own state."""
    new_params, new_states = [], []
    for (W, b), (dW, db), (state_W, state_b) in zip(params, grads, states):
        W, state_W = rule(W, dW, state_W)
        b, state_b = rule(b, db, state_b)
        new_params.append((W, b))
        new_states.append((state_W, state_b))
    return new_params, new_states


def optimizer_epoch(params: Params, X: np.ndarray, y: np.ndarray, batch_size: int, rule,
                    states: list[tuple[State, State]] | None = None, order: np.ndarray | None = None,
                    clip_norm: float | None = None) -> tuple[Params, list[tuple[State, State]]]:
    """One epoch of minibatch training as ``sgd_epoch``, each batch's gradients (first clipped
    to ``clip_norm``, if given) applied by ``rule(p, g, state) -> (p, state)``: one of the rules
    above with its settings bound, e.g. functools.partial(adam_step, lr=0.01).

    ``states``: the optimizer's state per (W, b), as a previous epoch returned it (None: fresh).
    Returns (params, states).
    """
    states = [({}, {}) for _ in params] if states is None else states
    for batch in minibatches(y.size, batch_size, order):
        grads = gradients(params, X[:, batch], y[batch])
        if clip_norm is not None:
            grads = clip_by_global_norm(grads, clip_norm)
        params, states = apply_rule(rule, params, grads, states)
    return params, states
