"""Optimizers, schedules, activations and losses against PyTorch (float64).

Each test builds a fastnn network, copies its weights into the same torch network, trains both
for 20 optimizer steps on the same batches in the same order (fit(..., shuffle=False)), and
compares every weight and bias: max|fastnn - torch| / max|torch| per tensor < 1e-5. The torch
comparisons skip, with the reason, when torch is not installed (pip install "fastnn[torch]"); the
other tests here run without it, as do those of every update rule against its NumPy version
(tests/test_optimizer_rules.py).
"""

import numpy as np
import pytest

import fastnn
from fastnn import MLP, reference, schedules
from helpers import gaussian_problem, to_reference
from torch_reference import max_change, max_relative_error, torch_gradient_norms, torch_train

try:
    import torch
except ImportError:  # only the tests marked requires_torch need it
    torch = None
requires_torch = pytest.mark.skipif(torch is None,
                                    reason="the PyTorch comparisons need torch (pip install 'fastnn[torch]')")

TOLERANCE = 1e-5
SIZES = [12, 10, 8, 4]


def problem(n, seed=0, sizes=SIZES, output="softmax"):
    return gaussian_problem(n, sizes, seed, output)


def compare(model, X, y, *, optimizer, torch_optimizer, epochs, batch_size, schedule=None, torch_scheduler=None,
            scheduler_per="epoch", clip_norm=None, class_weight=None, sample_weight=None):
    """Train model (fastnn) and its torch copy the same way; return (error, history, torch's
    losses and lrs). Asserts that the weights moved, so that equality means something."""
    start = model.get_weights()
    expected, losses, lrs = torch_train(
        start, X, y, make_optimizer=torch_optimizer, make_scheduler=torch_scheduler, scheduler_per=scheduler_per,
        epochs=epochs, batch_size=batch_size, activation=model.activation, output=model.output,
        clip_norm=clip_norm, class_weight=class_weight,
        sample_weight=sample_weight)
    history = model.fit(X, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer, schedule=schedule,
                        shuffle=False, clip_norm=clip_norm, sample_weight=sample_weight,
                        class_weight=None if class_weight is None else list(class_weight))
    assert max_change(start, expected) > 1e-3
    return max_relative_error(model.get_weights(), expected), history, losses, lrs


OPTIMIZERS = {
    "sgd": (fastnn.SGD(lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "momentum": (fastnn.SGD(lr=0.05, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    "nesterov": (fastnn.SGD(lr=0.05, momentum=0.9, nesterov=True),
                 lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
    "rmsprop": (fastnn.RMSprop(lr=0.01), lambda p: torch.optim.RMSprop(p, lr=0.01)),
    "rmsprop-alpha": (fastnn.RMSprop(lr=0.003, alpha=0.9, eps=1e-6),
                      lambda p: torch.optim.RMSprop(p, lr=0.003, alpha=0.9, eps=1e-6)),
    "adam": (fastnn.Adam(lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    "adam-betas": (fastnn.Adam(lr=0.02, betas=(0.8, 0.99), eps=1e-7),
                   lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.99), eps=1e-7)),
    "adamw": (fastnn.AdamW(lr=0.01, weight_decay=0.1), lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
    "sgd+L2": (fastnn.SGD(lr=0.1, weight_decay=0.05), lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.05)),
    "momentum+L2": (fastnn.SGD(lr=0.05, momentum=0.9, weight_decay=0.01),
                    lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01)),
    "nesterov+L2": (fastnn.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
                    lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    "rmsprop+L2": (fastnn.RMSprop(lr=0.01, weight_decay=0.01),
                   lambda p: torch.optim.RMSprop(p, lr=0.01, weight_decay=0.01)),
    "adam+L2": (fastnn.Adam(lr=0.01, weight_decay=0.05), lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.05)),
}


@requires_torch
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_matches_torch(name):
    """20 steps: 160 examples, batches of 16, 2 epochs."""
    optimizer, torch_optimizer = OPTIMIZERS[name]
    X, y = problem(160, seed=1)
    model = MLP(SIZES, init="he", seed=2, dtype="float64")
    error, *_ = compare(model, X, y, optimizer=optimizer, torch_optimizer=torch_optimizer, epochs=2, batch_size=16)
    assert error < TOLERANCE


@requires_torch
def test_ragged_last_batch_matches_torch():
    """150 examples in batches of 16: every epoch ends with a batch of 6, averaged over its 6."""
    X, y = problem(150, seed=3)
    model = MLP(SIZES, init="glorot", seed=4, dtype="float64")
    error, *_ = compare(model, X, y, optimizer=fastnn.Adam(lr=0.01),
                        torch_optimizer=lambda p: torch.optim.Adam(p, lr=0.01), epochs=2, batch_size=16)
    assert error < TOLERANCE


@requires_torch
@pytest.mark.parametrize("name, clip", [("sgd", 0.5), ("momentum", 0.3), ("adam", 0.2), ("adamw", 0.2),
                                        ("sgd+L2", 0.5)])
def test_gradient_norm_clipping_matches_torch(name, clip):
    """clip_norm against torch.nn.utils.clip_grad_norm_ over all parameters (before weight decay)."""
    optimizer, torch_optimizer = OPTIMIZERS[name]
    X, y = problem(160, seed=5)
    model = MLP(SIZES, init="he", seed=6, dtype="float64")
    norms = torch_gradient_norms(model.get_weights(), X, y, batch_size=16)
    assert min(norms) > clip  # every first-epoch batch is clipped at the starting weights
    error, *_ = compare(model, X, y, optimizer=optimizer, torch_optimizer=torch_optimizer, epochs=2, batch_size=16,
                        clip_norm=clip)
    assert error < TOLERANCE


def test_clipping_above_the_norm_changes_nothing():
    X, y = problem(160, seed=5)
    a = MLP(SIZES, init="he", seed=6, dtype="float64")
    b = MLP(SIZES, init="he", seed=6, dtype="float64")
    params = to_reference(a.get_weights())
    norms = [reference.global_norm(reference.gradients(params, X[batch].T, y[batch]))
             for batch in reference.minibatches(y.size, 16)]
    assert max(norms) < 1e3
    a.fit(X, y, epochs=2, batch_size=16, lr=0.1, shuffle=False)
    b.fit(X, y, epochs=2, batch_size=16, lr=0.1, shuffle=False, clip_norm=1e6)
    assert max_relative_error(b.get_weights(), a.get_weights()) < 1e-14


# Schedules: 64 examples in batches of 16 = 4 steps per epoch, 5 epochs = 20 steps; the torch
# schedulers step once per epoch unless said otherwise.
SCHEDULES = {
    "constant": (schedules.Constant(), None, "epoch"),
    "step": (schedules.StepDecay(step_size=2, gamma=0.5),
             lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5), "epoch"),
    "exponential": (schedules.Exponential(gamma=0.7),
                    lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.7), "epoch"),
    "cosine": (schedules.Cosine(t_max=5),
               lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5), "epoch"),
    "cosine-min": (schedules.Cosine(t_max=4, min_factor=0.1),
                   lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=4, eta_min=0.1 * 0.05), "epoch"),
    "cosine-per-step": (schedules.Cosine(t_max=5, per_step=True),
                        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5 * 4), "batch"),
    "warmup": (schedules.Warmup(steps=10),
               lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: min(1.0, (s + 1) / 10)), "batch"),
}


@requires_torch
@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("opt", ["momentum", "adam"])
def test_schedule_matches_torch(name, opt):
    schedule, torch_scheduler, per = SCHEDULES[name]
    optimizer, torch_optimizer = {
        "momentum": (fastnn.SGD(lr=0.05, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
        "adam": (fastnn.Adam(lr=0.05), lambda p: torch.optim.Adam(p, lr=0.05)),
    }[opt]
    X, y = problem(64, seed=7)
    model = MLP(SIZES, init="he", seed=8, dtype="float64")
    error, history, _, lrs = compare(model, X, y, optimizer=optimizer, torch_optimizer=torch_optimizer, epochs=5,
                                     batch_size=16, schedule=schedule, torch_scheduler=torch_scheduler,
                                     scheduler_per=per)
    assert error < TOLERANCE
    np.testing.assert_allclose(history.lr, lrs, rtol=1e-12)  # the lr of each epoch's last step


class _StepCount(schedules.Schedule):
    """A user's schedule that changes within the epoch and does not say so (per_step)."""

    def factor(self, epoch, step, steps_per_epoch):
        return 1.0 / (1 + epoch * steps_per_epoch + step)


@pytest.mark.parametrize("schedule", [s for s, _, _ in SCHEDULES.values()]
                         + [schedules.Warmup(steps=6, then=schedules.Cosine(t_max=3, per_step=True)), _StepCount()])
def test_schedule_factors_are_its_factor_at_each_step(schedule):
    """The lr of a block of steps (fit's form, by the epoch for per-epoch schedules) is the
    schedule's factor at each step."""
    for epoch in range(3):
        expected = [schedule.factor(epoch, step, 4) for step in range(1, 4)]
        np.testing.assert_array_equal(schedule.factors(epoch, 1, 4, 4), expected)


@requires_torch
def test_reduce_on_plateau_matches_torch():
    """ReduceOnPlateau watches the training loss (no validation data): torch's ReduceLROnPlateau
    gets the same metric, the mean per-example loss of the epoch as it trained, computed by torch.
    A 15% relative threshold makes plateaus (the loss falls by 10-12% an epoch after the first
    two), so that the lr really drops (patience=0: at the first bad epoch)."""
    X, y = problem(64, seed=9)
    model = MLP(SIZES, init="he", seed=10, dtype="float64")
    schedule = schedules.ReduceOnPlateau(reduce_by=0.5, patience=0, threshold=0.15)
    error, history, losses, lrs = compare(
        model, X, y, optimizer=fastnn.SGD(lr=0.05, momentum=0.9),
        torch_optimizer=lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), epochs=5, batch_size=16,
        schedule=schedule,
        torch_scheduler=lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, factor=0.5, patience=0,
                                                                             threshold=0.15),
        scheduler_per="plateau")
    assert error < TOLERANCE
    np.testing.assert_allclose(history.loss, losses, rtol=1e-10)
    np.testing.assert_allclose(history.lr, lrs, rtol=1e-12)
    assert len(set(lrs)) > 1, "the plateau never triggered: the test would not test it"


@requires_torch
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "identity", "gelu", "silu"])
@pytest.mark.parametrize("init", ["uniform", "he", "glorot"])
def test_activation_matches_torch(activation, init):
    """Hidden activations (leaky slope 0.01, as nn.LeakyReLU's default; gelu as nn.GELU(), the
    exact erf form) with each initialiser."""
    X, y = problem(160, seed=11)
    model = MLP(SIZES, activation=activation, init=init, seed=12, dtype="float64")
    error, *_ = compare(model, X, y, optimizer=fastnn.SGD(lr=0.1, momentum=0.5),
                        torch_optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5), epochs=2, batch_size=16)
    assert error < TOLERANCE


def test_leaky_relu_sees_negative_inputs():
    """The leaky slope must matter in the comparison above: many hidden pre-activations are negative."""
    X, _ = problem(160, seed=11)
    (W, b), *_ = MLP(SIZES, activation="leaky_relu", init="uniform", seed=12, dtype="float64").get_weights()
    assert ((X @ W + b) < 0).mean() > 0.2


@requires_torch
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_mse_regression_matches_torch(opt):
    """output='linear': MSE (mean over outputs and over the batch) as nn.MSELoss."""
    optimizer, torch_optimizer = OPTIMIZERS[opt]
    X, y = problem(160, seed=13, output="linear")
    model = MLP(SIZES, activation="tanh", output="linear", init="glorot", seed=14, dtype="float64")
    error, history, losses, _ = compare(model, X, y, optimizer=optimizer, torch_optimizer=torch_optimizer, epochs=2,
                                        batch_size=16)
    assert error < TOLERANCE
    np.testing.assert_allclose(history.loss, losses, rtol=1e-10)


@requires_torch
@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("k", [1, 3], ids=["two-classes", "three-labels"])
def test_binary_cross_entropy_matches_torch(opt, k):
    """output='sigmoid': nn.BCEWithLogitsLoss (mean over outputs and over the batch), for one
    output (1-D 0/1 labels, two classes) and for three labels per example."""
    optimizer, torch_optimizer = OPTIMIZERS[opt]
    sizes = [12, 10, 8, k]
    X, y = problem(160, seed=30 + k, sizes=sizes, output="sigmoid")
    y = y.ravel() if k == 1 else y
    assert 0.2 < y.mean() < 0.8
    model = MLP(sizes, activation="gelu", output="sigmoid", init="he", seed=31, dtype="float64")
    error, history, losses, _ = compare(model, X, y, optimizer=optimizer, torch_optimizer=torch_optimizer, epochs=2,
                                        batch_size=16)
    assert error < TOLERANCE
    np.testing.assert_allclose(history.loss, losses, rtol=1e-10)


@requires_torch
def test_binary_cross_entropy_with_sample_weight_matches_torch():
    """sample_weight with a sigmoid output: sum(w l) / sum(w) per batch, l each example's mean
    binary cross-entropy over its labels."""
    sizes = [12, 10, 3]
    X, y = problem(160, seed=32, sizes=sizes, output="sigmoid")
    w = np.random.default_rng(33).uniform(0, 3, 160)
    model = MLP(sizes, activation="silu", output="sigmoid", init="he", seed=34, dtype="float64")
    error, *_ = compare(model, X, y, optimizer=fastnn.SGD(lr=0.1, momentum=0.9),
                        torch_optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), epochs=2, batch_size=16,
                        sample_weight=w)
    assert error < TOLERANCE


@requires_torch
def test_mse_single_output_from_1d_targets_matches_torch():
    sizes = [12, 10, 1]
    X, y = problem(160, seed=15, sizes=sizes, output="linear")
    model = MLP(sizes, output="linear", init="he", seed=16, dtype="float64")
    error, *_ = compare(model, X, y.ravel(), optimizer=fastnn.Adam(lr=0.01),
                        torch_optimizer=lambda p: torch.optim.Adam(p, lr=0.01), epochs=2, batch_size=16)
    assert error < TOLERANCE


@requires_torch
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_class_weight_matches_torch_cross_entropy_weight(opt):
    """class_weight as nn.CrossEntropyLoss(weight=...): each batch's loss is sum(w_y l) / sum(w_y)."""
    optimizer, torch_optimizer = OPTIMIZERS[opt]
    X, y = problem(160, seed=17)
    class_weight = np.array([0.2, 1.0, 3.0, 0.7])
    model = MLP(SIZES, init="he", seed=18, dtype="float64")
    error, *_ = compare(model, X, y, optimizer=optimizer, torch_optimizer=torch_optimizer, epochs=2, batch_size=16,
                        class_weight=class_weight)
    assert error < TOLERANCE


def test_class_weight_dict_equals_array():
    X, y = problem(160, seed=17)
    a = MLP(SIZES, init="he", seed=18, dtype="float64")
    b = MLP(SIZES, init="he", seed=18, dtype="float64")
    a.fit(X, y, epochs=1, batch_size=16, shuffle=False, class_weight=[0.2, 1.0, 3.0, 1.0])
    b.fit(X, y, epochs=1, batch_size=16, shuffle=False, class_weight={0: 0.2, 2: 3.0})
    assert max_relative_error(b.get_weights(), a.get_weights()) == 0


@requires_torch
def test_sample_weight_matches_torch():
    """sample_weight: sum(w l) / sum(w) per batch, from torch's per-example losses."""
    X, y = problem(160, seed=19)
    w = np.random.default_rng(20).uniform(0, 3, 160)
    model = MLP(SIZES, init="he", seed=21, dtype="float64")
    error, *_ = compare(model, X, y, optimizer=fastnn.SGD(lr=0.1, momentum=0.9),
                        torch_optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), epochs=2, batch_size=16,
                        sample_weight=w)
    assert error < TOLERANCE


@requires_torch
@pytest.mark.parametrize("opt", ["momentum", "adam", "rmsprop"])
def test_partial_fit_continues_the_optimizer_state(opt):
    """Two partial_fit calls with the same optimizer = two epochs of torch (momentum, moments and
    Adam's step count carry over)."""
    optimizer, torch_optimizer = OPTIMIZERS[opt]
    X, y = problem(160, seed=22)
    model = MLP(SIZES, init="he", seed=23, dtype="float64")
    expected, _, _ = torch_train(model.get_weights(), X, y, make_optimizer=torch_optimizer, epochs=2, batch_size=16)
    for _ in range(2):
        model.partial_fit(X, y, batch_size=16, optimizer=optimizer, shuffle=False)
    assert max_relative_error(model.get_weights(), expected) < TOLERANCE


@requires_torch
@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_pixel_inputs_match_torch(dtype):
    """pixels=True: 0..255 inputs (uint8 bytes, or floats) are scaled by 1/255 inside the first
    layer; torch gets X / 255 as float64."""
    sizes = [64, 16, 10]
    rng = np.random.default_rng(24)
    X = ((rng.random((160, 64)) < 0.3) * rng.integers(1, 256, (160, 64))).astype(dtype)
    y = rng.integers(0, 10, 160)
    model = MLP(sizes, init="he", pixels=True, seed=25, dtype="float64")
    start = model.get_weights()
    expected, _, _ = torch_train(start, X / 255.0, y, make_optimizer=lambda p: torch.optim.Adam(p, lr=0.01), epochs=2,
                                 batch_size=16)
    model.fit(X, y, epochs=2, batch_size=16, optimizer=fastnn.Adam(lr=0.01), shuffle=False)
    assert max_relative_error(model.get_weights(), expected) < TOLERANCE


@requires_torch
@pytest.mark.parametrize("threads", [1, 2])
def test_workers_with_clipping_match_torch(force_parallel, threads):
    """Training on workers (gradient rows taken by whichever thread asks, the norm summed by each) with
    Adam and clipping: the same weights as torch, whatever the number of threads."""
    sizes = [64, 24, 12, 10]
    rng = np.random.default_rng(26)
    X = ((rng.random((160, 64)) < 0.3) * rng.integers(1, 256, (160, 64))).astype(np.uint8)
    y = rng.integers(0, 10, 160)
    model = MLP(sizes, init="he", pixels=True, seed=27, dtype="float64")
    start = model.get_weights()
    assert min(torch_gradient_norms(start, X / 255.0, y, batch_size=16)) > 0.3
    expected, _, _ = torch_train(start, X / 255.0, y, make_optimizer=lambda p: torch.optim.Adam(p, lr=0.01),
                                 epochs=2, batch_size=16, clip_norm=0.3)
    model.fit(X, y, epochs=2, batch_size=16, optimizer=fastnn.Adam(lr=0.01), shuffle=False, clip_norm=0.3,
              threads=threads)
    assert max_relative_error(model.get_weights(), expected) < TOLERANCE
