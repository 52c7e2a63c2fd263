"""Independent references for the training-feature tests.

- ``torch_train``: the same network trained by PyTorch (torch.optim, torch.optim.lr_scheduler,
  torch.nn losses) in float64, from fastnn's weights, on the same batches in the same order.
  torch is imported only when called, so this module imports without it.
- ``numpy_train``: plain minibatch SGD in NumPy with hidden activations, inverted dropout
  (the same counter-based mask as the kernels: see ``dropout_uniform_numpy``), per-example loss
  weights and a softmax/cross-entropy, linear/MSE or sigmoid/binary cross-entropy output; for
  what torch cannot reproduce (fastnn's dropout stream) and as a second opinion where it can.

Weights travel as fastnn's get_weights gives them: [(W (n_in, n_out), b (n_out,)), ...].
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

LEAKY_SLOPE = 0.01  # torch.nn.LeakyReLU's default, and fastnn's


def max_relative_error(got, expected) -> float:
    """Max over tensors (every W and b) of max|got - expected| / max|expected|."""
    errors = []
    for (W, b), (We, be) in zip(got, expected):
        for a, e in ((W, We), (b, be)):
            errors.append(np.abs(np.asarray(a) - e).max() / max(np.abs(e).max(), 1e-300))
    return float(max(errors))


def max_change(before, after) -> float:
    """How far training moved the weights (relative, as max_relative_error): guards against
    comparisons that pass because nothing happened."""
    return max_relative_error(after, before)


# -- PyTorch ----------------------------------------------------------------------------------------

@contextmanager
def float64_torch():
    import torch

    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    try:
        yield torch
    finally:
        torch.set_default_dtype(dtype)
        torch.set_num_threads(threads)


def torch_network(weights, activation="relu"):
    """nn.Sequential of nn.Linear layers (weight = W.T, bias = b) and the hidden activation."""
    import torch
    from torch import nn

    make = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE), "tanh": nn.Tanh,
            "sigmoid": nn.Sigmoid, "identity": nn.Identity, "gelu": nn.GELU, "silu": nn.SiLU}[activation]
    layers = []
    for l, (W, b) in enumerate(weights):
        linear = nn.Linear(W.shape[0], W.shape[1], dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T, dtype=np.float64)))
            linear.bias.copy_(torch.from_numpy(np.asarray(b, dtype=np.float64)))
        layers.append(linear)
        if l < len(weights) - 1:
            layers.append(make())
    return nn.Sequential(*layers)


def torch_weights(net):
    linears = [m for m in net if hasattr(m, "weight")]
    return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linears]


def torch_train(weights, X, y, *, make_optimizer, epochs, batch_size, activation="relu", output="softmax",
                make_scheduler=None, scheduler_per="epoch", clip_norm=None, class_weight=None,
                sample_weight=None):
    """Train with torch from ``weights``, batches in order (the last one may be smaller).

    ``make_optimizer(params)`` and ``make_scheduler(optimizer)`` build torch objects;
    ``scheduler_per``: 'epoch' (scheduler.step() after each epoch), 'batch' (after each
    optimizer step) or 'plateau' (scheduler.step(mean training loss of the epoch)).
    The loss: nn.CrossEntropyLoss on the logits (``weight=class_weight``), nn.MSELoss ('linear') or
    nn.BCEWithLogitsLoss ('sigmoid', y: 0/1 labels, (n,) or (n, k)), mean over the batch (and
    the outputs); with ``sample_weight``, sum(w * loss_i) / sum(w) from the per-example losses,
    each the mean over the example's outputs.
    Returns (weights, per-epoch mean training loss as it trained, lr of each epoch's last step).
    """
    with float64_torch() as torch:
        from torch import nn

        net = torch_network(weights, activation)
        optimizer = make_optimizer(net.parameters())
        scheduler = make_scheduler(optimizer) if make_scheduler else None
        Xt = torch.from_numpy(np.asarray(X, dtype=np.float64))
        if output == "softmax":
            yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
            cw = None if class_weight is None else torch.from_numpy(np.asarray(class_weight, dtype=np.float64))
            mean_loss = nn.CrossEntropyLoss(weight=cw)
            per_example = nn.CrossEntropyLoss(reduction="none")
        else:
            yt = torch.from_numpy(np.asarray(y, dtype=np.float64).reshape(len(X), -1))
            loss_class = nn.BCEWithLogitsLoss if output == "sigmoid" else nn.MSELoss
            mean_loss = loss_class()
            per_example = lambda out, t: loss_class(reduction="none")(out, t).mean(dim=1)  # noqa: E731
        sw = None if sample_weight is None else torch.from_numpy(np.asarray(sample_weight, dtype=np.float64))
        n = len(X)
        epoch_losses, lrs = [], []
        for _ in range(epochs):
            seen = []
            for start in range(0, n, batch_size):
                xb, yb = Xt[start:start + batch_size], yt[start:start + batch_size]
                optimizer.zero_grad()
                out = net(xb)
                losses = per_example(out, yb)
                if sw is not None:
                    wb = sw[start:start + batch_size]
                    loss = (wb * losses).sum() / wb.sum()
                else:
                    loss = mean_loss(out, yb)
                loss.backward()
                seen.append(losses.detach().numpy().copy())
                if clip_norm is not None:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), clip_norm)
                last_lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                if scheduler is not None and scheduler_per == "batch":
                    scheduler.step()
            epoch_losses.append(float(np.concatenate(seen).mean()))
            lrs.append(last_lr)
            if scheduler is not None and scheduler_per == "epoch":
                scheduler.step()
            elif scheduler is not None and scheduler_per == "plateau":
                scheduler.step(epoch_losses[-1])
        return torch_weights(net), epoch_losses, lrs


def torch_gradient_norms(weights, X, y, *, batch_size, activation="relu"):
    """Global gradient L2 norm of each batch at the given (fixed) weights: to check that a
    clipping test really clips."""
    with float64_torch() as torch:
        from torch import nn

        net = torch_network(weights, activation)
        norms = []
        for start in range(0, len(X), batch_size):
            net.zero_grad()
            xb = torch.from_numpy(np.asarray(X[start:start + batch_size], dtype=np.float64))
            yb = torch.from_numpy(np.asarray(y[start:start + batch_size], dtype=np.int64))
            nn.CrossEntropyLoss()(net(xb), yb).backward()
            norms.append(float(torch.sqrt(sum((p.grad ** 2).sum() for p in net.parameters()))))
        return norms


# -- NumPy ----------------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1


def dropout_key_numpy(seed: int, epoch: int) -> int:
    """fastnn.training.dropout_key, restated."""
    return (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + 1) & MASK64


def dropout_uniform_numpy(key: int, e, layer: int, j) -> np.ndarray:
    """fastnn.kernels.layers.dropout_uniform vectorised in NumPy (uint64 arithmetic wraps):
    splitmix64's finaliser over key + e * golden + layer * c + j, top 53 bits to [0, 1)."""
    u64 = np.uint64
    e = np.asarray(e, dtype=u64)
    j = np.asarray(j, dtype=u64)
    with np.errstate(over="ignore"):  # wrapping is the point
        x = (u64(key) + e * u64(0x9E3779B97F4A7C15) + np.asarray(layer, dtype=u64) * u64(0xD1B54A32D192ED03)) + j
        x = (x ^ (x >> u64(30))) * u64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> u64(27))) * u64(0x94D049BB133111EB)
        x = x ^ (x >> u64(31))
    return (x >> u64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def dropout_scale(seed: int, epoch: int, examples: np.ndarray, layer: int, n_units: int, rate: float):
    """Inverted dropout's factor per (example, unit): 1 / (1 - rate) where kept (u >= rate), else 0."""
    u = dropout_uniform_numpy(dropout_key_numpy(seed, epoch), np.asarray(examples)[:, None], layer,
                              np.arange(n_units)[None, :])
    return (u >= rate) / (1.0 - rate)


ACTIVATIONS = {
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype)),
    "leaky_relu": (lambda z: np.where(z > 0, z, LEAKY_SLOPE * z), lambda z: np.where(z > 0, 1.0, LEAKY_SLOPE)),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
    "identity": (lambda z: z, np.ones_like),
    # GELU's exact form, x Phi(x), and its derivative Phi(x) + x phi(x); SiLU, x sigmoid(x).
    "gelu": (lambda z: z * normal_cdf(z), lambda z: normal_cdf(z) + z * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)),
    "silu": (lambda z: z / (1 + np.exp(-z)),
             lambda z: 1 / (1 + np.exp(-z)) + z * np.exp(-z) / (1 + np.exp(-z)) ** 2),
}


def normal_cdf(z):
    from scipy.special import erf

    return 0.5 * (1 + erf(z / np.sqrt(2)))


def numpy_train(weights, X, y, *, lr, epochs, batch_size, activation="relu", output="softmax", dropout=0.0,
                seed=0, sample_weight=None, first_epoch=0, orders=None):
    """Minibatch SGD, batches in order: each batch minimises sum(w_i loss_i) / sum(w_i) with
    loss_i cross-entropy (softmax output), the mean over outputs of the squared error (linear)
    or of the binary cross-entropy with logits (sigmoid; y: 0/1 labels, (n,) or (n, k)).
    With ``dropout``, hidden activations are multiplied by dropout_scale(seed, epoch, example
    index, layer, ...) in the forward pass and their gradients by the same in the backward pass.
    ``orders``: each epoch's order of the examples (default: in order); dropout's mask follows
    the example's index, not its place in the epoch.
    Returns (weights, per-epoch mean of the unweighted per-example losses)."""
    f, df = ACTIVATIONS[activation]
    params = [(np.array(W, dtype=np.float64), np.array(b, dtype=np.float64)) for W, b in weights]
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    w_all = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    epoch_losses = []
    for epoch in range(first_epoch, first_epoch + epochs):
        order = np.arange(n) if orders is None else np.asarray(orders[epoch - first_epoch])
        seen = []
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            A, Zs, As, masks = X[idx], [], [X[idx]], []
            for l, (W, b) in enumerate(params):
                Z = A @ W + b
                Zs.append(Z)
                if l < len(params) - 1:
                    A = f(Z)
                    mask = dropout_scale(seed, epoch, idx, l, Z.shape[1], dropout) if dropout else 1.0
                    masks.append(mask)
                    A = A * mask
                    As.append(A)
            Z = Zs[-1]
            w = w_all[idx] / w_all[idx].sum()
            if output == "softmax":
                E = np.exp(Z - Z.max(axis=1, keepdims=True))
                P = E / E.sum(axis=1, keepdims=True)
                seen.append(-np.log(P[np.arange(len(idx)), y[idx]]))
                P[np.arange(len(idx)), y[idx]] -= 1
                dZ = P * w[:, None]
            elif output == "sigmoid":
                T = np.asarray(y, dtype=np.float64).reshape(n, -1)[idx]
                seen.append((np.logaddexp(0, Z) - Z * T).mean(axis=1))  # -t log s - (1 - t) log(1 - s)
                dZ = (1 / (1 + np.exp(-Z)) - T) / Z.shape[1] * w[:, None]
            else:
                T = np.asarray(y, dtype=np.float64).reshape(n, -1)[idx]
                seen.append(((Z - T) ** 2).mean(axis=1))
                dZ = 2 * (Z - T) / Z.shape[1] * w[:, None]
            grads = []
            for l in range(len(params) - 1, -1, -1):
                grads.append((As[l].T @ dZ, dZ.sum(axis=0)))
                if l > 0:
                    dZ = (dZ @ params[l][0].T) * masks[l - 1] * df(Zs[l - 1])
            params = [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(params, grads[::-1])]
        epoch_losses.append(float(np.concatenate(seen).mean()))
    return params, epoch_losses
