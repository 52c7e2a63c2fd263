"""The update rules without torch: fastnn's kernels against the NumPy rules of fastnn/reference.py,
and the NumPy rules against steps worked out by hand; where torch is installed, the NumPy rules
against torch.optim too.

Every case names one optimizer and its settings, spelt the same in fastnn, in the reference and
in torch.optim, so that one table builds all three.
"""

from functools import partial
from inspect import signature

import numpy as np
import pytest

import fastnn
from fastnn import MLP, reference
from helpers import random_pixels, to_reference
from torch_reference import max_change, max_relative_error

# name: (the optimizer's class name in fastnn and torch.optim, its settings)
CASES = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd+L2": ("SGD", dict(lr=0.1, weight_decay=0.05)),
    "momentum": ("SGD", dict(lr=0.05, momentum=0.9)),
    "momentum+L2": ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    "nesterov": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    "nesterov+L2": ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    "rmsprop": ("RMSprop", dict(lr=0.01)),
    "rmsprop-alpha": ("RMSprop", dict(lr=0.003, alpha=0.9, eps=1e-6)),
    "rmsprop+L2": ("RMSprop", dict(lr=0.01, weight_decay=0.01)),
    "adam": ("Adam", dict(lr=0.01)),
    "adam-betas": ("Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-7)),
    "adam+L2": ("Adam", dict(lr=0.01, weight_decay=0.05)),
    "adamw": ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    "adamw-default-decay": ("AdamW", dict(lr=0.01)),
}
NUMPY_RULES = {"SGD": reference.sgd_step, "RMSprop": reference.rmsprop_step, "Adam": reference.adam_step,
               "AdamW": reference.adamw_step}

# fastnn in float64 against the NumPy rule: the same arithmetic, summed in other orders.
KERNEL_TOLERANCE = 1e-10
SIZES = [40, 12, 8, 4]


def fastnn_optimizer(name):
    kind, settings = CASES[name]
    return getattr(fastnn, kind)(**settings)


def numpy_rule(name):
    kind, settings = CASES[name]
    return partial(NUMPY_RULES[kind], **settings)


def from_reference(params):
    """The reference's [(W (n_out, n_in), b (n_out, 1))] in fastnn's layout."""
    return [(W.T, b.ravel()) for W, b in params]


def problem(n=100, seed=0, sizes=SIZES):
    """uint8 pixels (models read them with pixels=True, as reference.scale_pixels does) and
    labels; batches of 16 leave a ragged last batch of 4."""
    X, rng = random_pixels(n, sizes[0], seed=seed)
    X[:, 0] = 0  # an input no batch uses: its weights move only by the rule's step on a zero gradient
    X[:16, 1] = 0  # one the first batch does not use
    return X, rng.integers(0, sizes[-1], n)


def reference_training(start, X, y, rule, *, epochs, batch_size=16, clip_norm=None):
    """``epochs`` epochs of the NumPy rule from fastnn's weights ``start``, in fastnn's layout."""
    params, states = to_reference(start), None
    for _ in range(epochs):
        params, states = reference.optimizer_epoch(params, reference.scale_pixels(X), y, batch_size, rule, states,
                                                   clip_norm=clip_norm)
    return from_reference(params)


def kernel_and_reference(name, *, epochs=2, clip_norm=None, seed=0, sizes=SIZES):
    """fastnn and the NumPy rule ``name``, from the same weights on the same batches in order:
    (fastnn's weights, the reference's, the starting weights)."""
    X, y = problem(seed=seed, sizes=sizes)
    model = MLP(sizes, pixels=True, seed=seed + 1, dtype="float64")
    start = model.get_weights()
    model.fit(X, y, epochs=epochs, batch_size=16, optimizer=fastnn_optimizer(name), shuffle=False,
              clip_norm=clip_norm)
    expected = reference_training(start, X, y, numpy_rule(name), epochs=epochs, clip_norm=clip_norm)
    return model.get_weights(), expected, start


# -- fastnn's kernels against the NumPy rules -------------------------------------------------------

@pytest.mark.parametrize("name", list(CASES))
def test_kernel_follows_the_numpy_rule(name):
    """2 epochs of 7 batches (the last of 4 examples): every weight and bias as the NumPy rule's."""
    got, expected, start = kernel_and_reference(name)
    assert max_change(start, expected) > 1e-2  # the weights moved: agreement means something
    assert max_relative_error(got, expected) < KERNEL_TOLERANCE


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_follows_the_numpy_rule_from_a_transposed_batch(name):
    """As above with a first layer wide enough to sum its gradient by input unit, each row's
    sums taking the rule's step as they leave the registers (layers.sparse_columns_backward)."""
    sizes = [40, 36, 8, 4]  # 36 float64 units: 5 vectors with AVX-512, 9 with AVX2
    assert MLP(sizes, dtype="float64").layout.transposes_batch
    got, expected, start = kernel_and_reference(name, sizes=sizes)
    assert max_change(start, expected) > 1e-2
    assert max_relative_error(got, expected) < KERNEL_TOLERANCE


@pytest.mark.parametrize("name, other", [("sgd", "sgd+L2"), ("momentum", "nesterov"),
                                         ("rmsprop", "rmsprop-alpha"), ("adam", "adam-betas"),
                                         ("adam+L2", "adamw"), ("adamw", "adamw-default-decay")])
def test_kernel_comparison_tells_neighbouring_rules_apart(name, other):
    """The comparison above is sharp: fastnn's weights are far from a neighbouring rule's."""
    got, _, _ = kernel_and_reference(name)
    _, expected, _ = kernel_and_reference(other)
    assert max_relative_error(got, expected) > 1e-2


def first_epoch_gradient_norms(start, X, y, batch_size=16):
    """The global gradient norm of each batch at the (fixed) starting weights."""
    params, X = to_reference(start), reference.scale_pixels(X)
    return [reference.global_norm(reference.gradients(params, X[:, batch], y[batch]))
            for batch in reference.minibatches(y.size, batch_size)]


CLIP_NORM = 0.1


def test_clip_norm_clips_every_first_epoch_batch():
    """The clipping tests below clip: on kernel_and_reference's data and starting weights, every
    batch's gradient is longer than CLIP_NORM."""
    X, y = problem()
    assert min(first_epoch_gradient_norms(MLP(SIZES, seed=1, dtype="float64").get_weights(), X, y)) > 2 * CLIP_NORM


@pytest.mark.parametrize("name", ["sgd", "sgd+L2", "momentum", "nesterov+L2", "rmsprop", "rmsprop+L2", "adam",
                                  "adam+L2", "adamw"])
def test_kernel_clipping_follows_the_numpy_rule(name):
    """clip_norm scales the batch's gradient (before any weight decay) as clip_grad_norm_."""
    got, expected, start = kernel_and_reference(name, clip_norm=CLIP_NORM)
    assert max_change(start, expected) > 1e-2
    assert max_relative_error(got, expected) < KERNEL_TOLERANCE
    _, unclipped, _ = kernel_and_reference(name)
    assert max_relative_error(got, unclipped) > 1e-2  # clipping changed the result


@pytest.mark.parametrize("name", ["momentum", "rmsprop", "adam", "adamw"])
def test_partial_fit_carries_the_optimizer_state(name):
    """Two partial_fit calls are two epochs of the NumPy rule with its state carried over
    (momentum buffer, moments, Adam's step count)."""
    X, y = problem(seed=3)
    model = MLP(SIZES, pixels=True, seed=4, dtype="float64")
    start = model.get_weights()
    for _ in range(2):
        model.partial_fit(X, y, batch_size=16, optimizer=fastnn_optimizer(name), shuffle=False)
    expected = reference_training(start, X, y, numpy_rule(name), epochs=2)
    assert max_relative_error(model.get_weights(), expected) < KERNEL_TOLERANCE
    # a fresh state in the second epoch would be far off
    restarted = reference_training(reference_training(start, X, y, numpy_rule(name), epochs=1), X, y,
                                   numpy_rule(name), epochs=1)
    assert max_relative_error(model.get_weights(), restarted) > 1e-2


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name, clip_norm", [("nesterov+L2", None), ("rmsprop", None), ("adam", 0.3),
                                             ("adamw", None)])
def test_workers_follow_the_numpy_rule(force_parallel, two_cpus, threads, name, clip_norm):
    """On workers (the update's rows shared out between threads) the rules are the same."""
    sizes = [100, 24, 12, 5]
    X, y = problem(300, seed=5, sizes=sizes)
    model = MLP(sizes, pixels=True, seed=6, dtype="float64")
    start = model.get_weights()
    if clip_norm:
        assert min(first_epoch_gradient_norms(start, X, y, batch_size=32)) > clip_norm
    history = model.fit(X, y, epochs=1, batch_size=32, optimizer=fastnn_optimizer(name), shuffle=False,
                        clip_norm=clip_norm, threads=threads)
    assert history.workers == threads
    expected = reference_training(start, X, y, numpy_rule(name), epochs=1, batch_size=32, clip_norm=clip_norm)
    assert max_relative_error(model.get_weights(), expected) < KERNEL_TOLERANCE


# -- The NumPy rules against steps worked out by hand ------------------------------------------------

# Two steps on p = 1 with gradients 0.5 then -0.25: p after each step, and the state after both.
# The values were worked out by hand (and in 40-digit decimals where square roots come in).
HAND_STEPS = {
    "sgd": (partial(reference.sgd_step, lr=0.1), [0.95, 0.975], {}),
    # g + 0.1 p: 0.6, then -0.25 + 0.094 = -0.156
    "sgd+L2": (partial(reference.sgd_step, lr=0.1, weight_decay=0.1), [0.94, 0.9556], {}),
    # b: 0.5, then 0.45 - 0.25 = 0.2
    "momentum": (partial(reference.sgd_step, lr=0.1, momentum=0.9), [0.95, 0.93], {"momentum_buffer": 0.2}),
    # b: 0.6, then 0.54 - 0.156 = 0.384
    "momentum+L2": (partial(reference.sgd_step, lr=0.1, momentum=0.9, weight_decay=0.1), [0.94, 0.9016],
                    {"momentum_buffer": 0.384}),
    # d: 0.5 + 0.45 = 0.95, then -0.25 + 0.18 = -0.07
    "nesterov": (partial(reference.sgd_step, lr=0.1, momentum=0.9, nesterov=True), [0.905, 0.912],
                 {"momentum_buffer": 0.2}),
    # v: 0.0025 (sqrt 0.05), then 0.002475 + 0.000625 = 0.0031
    "rmsprop": (partial(reference.rmsprop_step, lr=0.01, eps=0.0), [0.9, 0.9449013255066937],
                {"square_avg": 0.0031}),
    "rmsprop-eps": (partial(reference.rmsprop_step, lr=0.01), [0.90000001999999600, 0.94490133744217504],
                    {"square_avg": 0.0031}),
    # g + 0.1 p: 0.6 (v 0.0036, sqrt 0.06), then -0.25 + 0.09 = -0.16 (v 0.003564 + 0.000256)
    "rmsprop+L2": (partial(reference.rmsprop_step, lr=0.01, eps=0.0, weight_decay=0.1),
                   [0.9, 0.9258873920676229], {"square_avg": 0.00382}),
    # the first step is lr * sign(g) without eps; m: 0.05, then 0.045 - 0.025 = 0.02;
    # v: 0.00025, then 0.00024975 + 0.0000625
    "adam": (partial(reference.adam_step, lr=0.01, eps=0.0), [0.99, 0.9873366296033960],
             {"step": 2, "exp_avg": 0.02, "exp_avg_sq": 0.00031225}),
    "adam-eps": (partial(reference.adam_step, lr=0.01), [0.99000000019999999, 0.98733662987078462],
                 {"step": 2, "exp_avg": 0.02, "exp_avg_sq": 0.00031225}),
    # m: 0.1, then 0.08 - 0.05 = 0.03; v: 0.0025, then 0.002475 + 0.000625
    "adam-betas": (partial(reference.adam_step, lr=0.01, betas=(0.8, 0.99), eps=0.0), [0.99, 0.9878886295198001],
                   {"step": 2, "exp_avg": 0.03, "exp_avg_sq": 0.0031}),
    # g + 0.1 p: 0.6, then -0.25 + 0.099 = -0.151; m: 0.054 - 0.0151; v: 0.00035964 + 0.000022801
    "adam+L2": (partial(reference.adam_step, lr=0.01, eps=0.0, weight_decay=0.1), [0.99, 0.9853191990324096],
                {"step": 2, "exp_avg": 0.0389, "exp_avg_sq": 0.000382441}),
    # p * 0.999 first: 0.999 - 0.01, then 0.989 * 0.999 - (Adam's second step, as above)
    "adamw": (partial(reference.adamw_step, lr=0.01, eps=0.0, weight_decay=0.1), [0.989, 0.9853476296033960],
              {"step": 2, "exp_avg": 0.02, "exp_avg_sq": 0.00031225}),
}


@pytest.mark.parametrize("name", list(HAND_STEPS))
def test_numpy_rule_takes_the_steps_worked_out_by_hand(name):
    rule, expected_params, expected_state = HAND_STEPS[name]
    p, state = np.array([1.0]), {}
    for g, expected in zip([0.5, -0.25], expected_params):
        p, state = rule(p, np.array([g]), state)
        assert p[0] == pytest.approx(expected, rel=1e-14, abs=0)
    assert state.keys() == expected_state.keys()
    for key, value in expected_state.items():
        assert np.ravel(state[key])[0] == pytest.approx(value, rel=1e-12, abs=0)


@pytest.mark.parametrize("name", list(CASES))
def test_numpy_rule_is_elementwise_and_changes_none_of_its_arguments(name):
    """A rule on a (3, 4) tensor is the rule on each element alone, and leaves p, g and state as
    they were."""
    rng = np.random.default_rng(0)
    rule = numpy_rule(name)
    p, g1, g2 = rng.normal(size=(3, 3, 4))
    _, state = rule(p, g1, {})
    copies = p.copy(), g2.copy(), {key: np.copy(value) for key, value in state.items()}
    new_p, new_state = rule(p, g2, state)
    np.testing.assert_array_equal(p, copies[0])
    np.testing.assert_array_equal(g2, copies[1])
    for key, value in copies[2].items():
        np.testing.assert_array_equal(state[key], value)
    assert not np.any(new_p == p)
    i, j = 1, 2
    _, alone = rule(p[i, j:j + 1], g1[i, j:j + 1], {})
    assert rule(p[i, j:j + 1], g2[i, j:j + 1], alone)[0][0] == new_p[i, j]


# torch.optim's defaults, from its documentation.
TORCH_DEFAULTS = {
    "SGD": dict(momentum=0.0, nesterov=False, weight_decay=0.0),
    "RMSprop": dict(alpha=0.99, eps=1e-8, weight_decay=0.0),
    "Adam": dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    "AdamW": dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
}


@pytest.mark.parametrize("kind", list(TORCH_DEFAULTS))
def test_defaults_are_torchs(kind):
    """The NumPy rules and fastnn's optimizers default each setting to torch.optim's value."""
    parameters = signature(NUMPY_RULES[kind]).parameters
    settings = getattr(fastnn, kind)()
    for name, value in TORCH_DEFAULTS[kind].items():
        assert parameters[name].default == value, name
        assert getattr(settings, name) == value, name


def test_clip_by_global_norm_by_hand():
    """Gradients 3 and 4 (norm 5) clipped to 1: each times 1 / (5 + 1e-6); under the norm, as they were."""
    grads = [(np.array([[3.0]]), np.array([[0.0]])), (np.array([[0.0]]), np.array([[-4.0]]))]
    (dW1, db1), (dW2, db2) = reference.clip_by_global_norm(grads, 1.0)
    assert dW1[0, 0] == pytest.approx(3 / 5.000001, rel=1e-15)
    assert db2[0, 0] == pytest.approx(-4 / 5.000001, rel=1e-15)
    assert db1[0, 0] == dW2[0, 0] == 0
    unclipped = reference.clip_by_global_norm(grads, 5.1)
    assert all(np.array_equal(a, b) for pair, same in zip(grads, unclipped) for a, b in zip(pair, same))


def test_optimizer_epoch_with_sgd_is_sgd_epoch():
    """The general epoch with plain SGD is the tutorial's sgd_epoch, bit for bit."""
    X, y = problem()
    X = reference.scale_pixels(X)
    params = reference.init_params(SIZES, seed=2)
    order = np.random.default_rng(3).permutation(y.size)
    expected = reference.sgd_epoch(params, X, y, 0.1, 16, order)
    got, states = reference.optimizer_epoch(params, X, y, 16, partial(reference.sgd_step, lr=0.1), order=order)
    assert max_change(from_reference(params), from_reference(expected)) > 1e-2
    assert all(np.array_equal(a, b) for pair, same in zip(got, expected) for a, b in zip(pair, same))
    assert states == [({}, {})] * len(SIZES[1:])


# -- The NumPy rules against torch.optim ------------------------------------------------------------

# Both in float64; they differ in rounding only (torch's Adam updates m as m + (1 - beta1)(g - m)).
TORCH_TOLERANCE = 1e-13


def relative_error(got, expected):
    return float(np.abs(np.asarray(got) - np.asarray(expected)).max() / np.abs(np.asarray(expected)).max())


@pytest.mark.parametrize("name", list(CASES))
def test_numpy_rule_matches_torch_optim(name):
    """8 steps on a (3, 5) tensor with random gradients: the tensor and every state entry."""
    torch = pytest.importorskip("torch")
    kind, settings = CASES[name]
    rng = np.random.default_rng(7)
    p = rng.normal(size=(3, 5))
    tensor = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    optimizer = getattr(torch.optim, kind)([tensor], **settings)
    rule, state = numpy_rule(name), {}
    for g in rng.normal(size=(8, 3, 5)):
        tensor.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
        p, state = rule(p, g, state)
    expected = tensor.detach().numpy()
    assert relative_error(p, expected) < TORCH_TOLERANCE
    torch_state = optimizer.state[tensor]
    for key, value in state.items():
        assert relative_error(value, torch_state[key].detach().numpy() if torch.is_tensor(torch_state[key])
                              else torch_state[key]) < TORCH_TOLERANCE, key
    assert ("momentum_buffer" in state) == (settings.get("momentum", 0) > 0)


def test_clip_by_global_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    grads = [(rng.normal(size=(4, 3)), rng.normal(size=(4, 1))), (rng.normal(size=(2, 4)), rng.normal(size=(2, 1)))]
    tensors = [torch.zeros(a.shape, dtype=torch.float64, requires_grad=True) for pair in grads for a in pair]
    for tensor, g in zip(tensors, [a for pair in grads for a in pair]):
        tensor.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_norm_(tensors, 0.5)
    clipped = [a for pair in reference.clip_by_global_norm(grads, 0.5) for a in pair]
    for got, tensor in zip(clipped, tensors):
        assert relative_error(got, tensor.grad.numpy()) < TORCH_TOLERANCE
    assert reference.global_norm(reference.clip_by_global_norm(grads, 0.5)) == pytest.approx(0.5, rel=1e-5)


def test_rmsprop_keeps_one_state_vector_and_loads_files_that_kept_it_in_v(tmp_path):
    """RMSprop's state is the squares' average alone (in m): no unused second vector is kept or
    saved; a checkpoint from when it was kept in v resumes the same."""
    import fastnn.io

    rng = np.random.default_rng(40)
    X, y = rng.normal(size=(96, 12)), rng.integers(0, 3, 96)
    model = MLP([12, 8, 3], seed=41, dtype="float64")
    model.fit(X, y, epochs=1, batch_size=16, optimizer=fastnn.RMSprop(lr=0.01))
    state = model.optimizer_state
    assert state.v.size == 0 and np.abs(state.m).max() > 0
    model.save(tmp_path / "new.npz")
    arrays, meta = fastnn.io.load_arrays(tmp_path / "new.npz")
    assert "optimizer_v" not in arrays
    arrays["optimizer_v"] = arrays.pop("optimizer_m")  # the former layout
    arrays["optimizer_m"] = np.zeros_like(arrays["optimizer_v"])
    fastnn.io.save_arrays(tmp_path / "old.npz", arrays, {k: v for k, v in meta.items() if k not in ("format", "version",
                                                                                                 "sha256")})
    for path in ("new.npz", "old.npz"):
        resumed = MLP.load(tmp_path / path)
        resumed.fit(X, y, epochs=1, batch_size=16, optimizer=fastnn.RMSprop(lr=0.01))
        again = MLP.load(tmp_path / "new.npz")
        again.fit(X, y, epochs=1, batch_size=16, optimizer=fastnn.RMSprop(lr=0.01))
        assert np.array_equal(resumed.get_params(), again.get_params()), path
