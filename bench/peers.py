"""The frameworks bench.compare runs, one runner function each.

Every runner trains the same network (task.layers, e.g. 784-256-128-10: ReLU
hidden layers, softmax + cross-entropy, float32) with the same optimizer and
batch size on the same data, from the same initial weights (initial_weights)
and shuffle orders where the framework lets us set them, and returns a Result:
seconds per epoch (median of the timed epochs, after one warm-up epoch that
pays for compilation) and test accuracy after training.

Optimizers, identical in every framework (fastnn.SGD and fastnn.Adam's
definitions, which are torch.optim's):
  sgd:  plain minibatch SGD, lr 0.1, no momentum, no weight decay;
  adam: Adam, lr 0.001, betas (0.9, 0.999), eps 1e-8, no weight decay,
        p -= lr / (1 - b1^k) * m / (sqrt(v) / sqrt(1 - b2^k) + eps) at step k.
Gradients are means over the batch; the last partial batch of an epoch is kept.

Frameworks are imported inside their runner, so a missing one costs nothing
and is reported by run() as a one-line status, never a traceback.
"""
import importlib.util
import inspect
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from bench.machine import cpu_snapshot, others_cores

N_INPUTS, N_CLASSES = 784, 10
OPTIMIZERS = ("sgd", "adam")
SGD_LR = 0.1
ADAM_LR, ADAM_BETAS, ADAM_EPS = 0.001, (0.9, 0.999), 1e-8  # = fastnn.Adam()'s defaults
LEARNING_RATES = {"sgd": SGD_LR, "adam": ADAM_LR}


@dataclass
class Task:
    """What to train and how; identical for every framework."""

    train_x: np.ndarray  # uint8 (n, 784)
    train_y: np.ndarray  # uint8 (n,)
    test_x: np.ndarray  # uint8 (m, 784)
    test_y: np.ndarray  # uint8 (m,)
    train_xf: np.ndarray  # float32 train_x / 255, made once for all peers
    test_xf: np.ndarray  # float32 test_x / 255
    layers: tuple  # (784, hidden widths..., 10)
    threads: int
    epochs_timed: int = 5
    budget: float = 30.0  # seconds of timed epochs after which to stop early
    batch: int = 64
    optimizer: str = "sgd"  # one of OPTIMIZERS
    seed: int = 0

    def __post_init__(self):
        self.layers = tuple(int(n) for n in self.layers)
        if len(self.layers) < 3 or self.layers[0] != N_INPUTS or self.layers[-1] != N_CLASSES:
            raise ValueError(f"layers must be {N_INPUTS}, hidden widths..., {N_CLASSES}; got {self.layers}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")

    @property
    def lr(self):
        return LEARNING_RATES[self.optimizer]

    @property
    def hidden(self):
        """The hidden widths."""
        return self.layers[1:-1]


@dataclass
class Result:
    status: str = "ok"  # "ok", or a one-line reason
    seconds: float = None  # median of the timed epochs
    epoch_times: list = field(default_factory=list)
    warmup_seconds: float = None  # first epoch, includes compilation
    accuracy: float = None  # on the test set, after all epochs
    others_cores: float = None  # cores used by other processes during the timed epochs
    note: str = ""
    round_ratios: list = field(default_factory=list)  # seconds / fastnn's, per round (--rounds)


class Unavailable(Exception):
    """The framework is installed but cannot run this benchmark here."""


def init_scheme(layers):
    """One scheme for the whole network, chosen by its widest hidden layer (fastnn.MLP takes one
    init= for all layers): the tutorial's uniform(-0.5, 0.5) trains narrow networks (widest
    hidden layer < 128); wider ones need fan-in scaling ("he")."""
    return "uniform" if max(layers[1:-1]) < 128 else "he"


def initial_weights(task):
    """[W1, b1, W2, b2, ...] as float32, W of layer l shaped (n_in, n_out), from task.seed.

    Drawn layer by layer, W before b, with init_scheme(task.layers) for every layer:
    "uniform": weights and biases uniform(-0.5, 0.5), as in the tutorial.
    "he": He-uniform weights, uniform(+-sqrt(6/fan_in)), zero biases.
    """
    rng = np.random.default_rng(task.seed)
    scheme = init_scheme(task.layers)
    params = []
    for fan_in, fan_out in zip(task.layers[:-1], task.layers[1:]):
        if scheme == "uniform":
            w = rng.uniform(-0.5, 0.5, (fan_in, fan_out))
            b = rng.uniform(-0.5, 0.5, fan_out)
        else:
            limit = np.sqrt(6.0 / fan_in)
            w = rng.uniform(-limit, limit, (fan_in, fan_out))
            b = np.zeros(fan_out)
        params += [w.astype(np.float32), b.astype(np.float32)]
    return params


def epoch_order(task, epoch):
    """The shuffled sample order of one epoch, the same for every framework."""
    return np.random.default_rng([task.seed, epoch]).permutation(len(task.train_y))


def time_epochs(run_epoch, task):
    """Run one warm-up epoch, then up to task.epochs_timed timed ones; run_epoch(e) must block.

    Stops early (after at least one timed epoch) once the timed epochs took
    task.budget seconds, so a busy machine cannot make a run last forever.
    """
    t0 = time.perf_counter()
    run_epoch(0)
    warmup, times = time.perf_counter() - t0, []
    start = cpu_snapshot()
    for epoch in range(1, 1 + task.epochs_timed):
        t0 = time.perf_counter()
        run_epoch(epoch)
        times.append(time.perf_counter() - t0)
        if sum(times) > task.budget:
            break
    return warmup, times, others_cores(start, cpu_snapshot())


def _result(timing, accuracy, note=""):
    warmup, times, others = timing
    return Result(
        seconds=statistics.median(times),
        epoch_times=times,
        warmup_seconds=warmup,
        accuracy=float(accuracy),
        others_cores=others,
        note=note,
    )


# --- fastnn -----------------------------------------------------------------


def _pairs(params):
    """[W1, b1, W2, b2, ...] -> [(W1, b1), (W2, b2), ...]."""
    return list(zip(params[0::2], params[1::2]))


def _steps_per_epoch(task):
    return -(-len(task.train_y) // task.batch)


def run_fastnn(task, prepared=True):
    """fastnn's fit(epochs=1) per epoch: on inputs converted once by fastnn.prepare (outside the
    timing, as JAX's device arrays are), or (prepared=False) on the uint8 array itself, which
    each fit converts again.

    One optimizer object serves every fit call: the model keeps its state (Adam's moments and
    step count) across calls when the update rule stays the same (fastnn.training.OptimizerState),
    so the timed epochs continue the warm-up's training instead of restarting Adam."""
    import fastnn

    MLP = getattr(fastnn, "MLP", None)
    if MLP is None:
        raise Unavailable("fastnn.MLP does not exist yet (core not landed?)")
    if task.optimizer == "adam":
        if not hasattr(fastnn, "Adam"):
            raise Unavailable("fastnn.Adam does not exist")
        optimizer = fastnn.Adam(lr=ADAM_LR, betas=ADAM_BETAS, eps=ADAM_EPS)
    else:
        optimizer = fastnn.SGD(lr=SGD_LR)
    # The uint8 images as X / 255, as the peers see them: pixels=True where MLP has it (before, it
    # read uint8 input as pixels).
    pixels = {"pixels": True} if "pixels" in inspect.signature(MLP).parameters else {}
    model = MLP(list(task.layers), init=init_scheme(task.layers), seed=task.seed, dtype="float32", **pixels)
    model.set_weights(_pairs(initial_weights(task)))  # the peers' weights (same law as init=)
    kwargs = dict(epochs=1, batch_size=task.batch, optimizer=optimizer, threads=task.threads)
    if "verbose" in inspect.signature(model.fit).parameters:
        kwargs["verbose"] = False  # a progress bar would be timed too
    train_x = fastnn.prepare(task.train_x) if prepared else task.train_x

    inner = []  # fastnn's own per-epoch time: the fit() call minus its input checks

    def run_epoch(epoch):
        history = model.fit(train_x, task.train_y, **kwargs)  # fastnn shuffles itself
        inner.extend(getattr(history, "seconds", []))

    timing = time_epochs(run_epoch, task)
    accuracy = model.evaluate(task.test_x, task.test_y)["accuracy"]
    note = ("inputs prepared once (fastnn.prepare)" if prepared else "uint8 array, converted by every fit") + \
        "; own shuffle from seed 0; time = whole fit(epochs=1) call"
    if len(inner) > 1:
        note += f"; training loop alone (History.seconds) {statistics.median(inner[1:]):.3f} s"
    step = getattr(getattr(model, "optimizer_state", None), "step", None)
    expected = (1 + len(timing[1])) * _steps_per_epoch(task)
    if task.optimizer == "adam" and step is not None and step != expected:
        note += f"; warning: Adam's step count is {step}, not {expected}: its state restarted"
    return _result(timing, accuracy, note)


# --- NumPy reference ----------------------------------------------------------


def _numpy_gradients(params, x, y):
    """Gradients of the mean cross-entropy over the batch, in params' order."""
    n_layers = len(params) // 2
    acts = [x]  # each layer's input; after ReLU, a > 0 is also its mask
    for l in range(n_layers):
        z = acts[-1] @ params[2 * l]
        z += params[2 * l + 1]
        if l < n_layers - 1:
            np.maximum(z, 0, out=z)
        acts.append(z)
    z = acts.pop()
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    z[np.arange(len(y)), y] -= 1  # softmax - onehot = dLoss/dlogits
    z /= len(y)
    grads = [None] * len(params)
    for l in reversed(range(n_layers)):
        grads[2 * l] = acts[l].T @ z
        grads[2 * l + 1] = z.sum(axis=0)
        if l:
            z = z @ params[2 * l].T
            z *= acts[l] > 0
    return grads


class _NumpySGD:
    def __init__(self, params, lr):
        self.lr = lr

    def __call__(self, params, grads):
        for p, g in zip(params, grads):
            p -= self.lr * g


class _NumpyAdam:
    """fastnn.Adam's update (= torch.optim.Adam's), bias corrections in float64 as fastnn's."""

    def __init__(self, params, lr):
        self.lr, self.step = lr, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def __call__(self, params, grads):
        (b1, b2), eps = ADAM_BETAS, np.float32(ADAM_EPS)
        self.step += 1
        step_size = np.float32(self.lr / (1.0 - b1 ** self.step))
        root_correction = np.float32(np.sqrt(1.0 - b2 ** self.step))
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= np.float32(b1)
            m += np.float32(1 - b1) * g
            v *= np.float32(b2)
            v += np.float32(1 - b2) * g * g
            p -= step_size * m / (np.sqrt(v) / root_correction + eps)


def _numpy_epoch(params, x_all, y_all, order, batch, update):
    """One epoch in place; gradients are means over the batch."""
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        update(params, _numpy_gradients(params, x_all[idx], y_all[idx]))


def _numpy_accuracy(params, x, y):
    for l in range(len(params) // 2):
        x = x @ params[2 * l] + params[2 * l + 1]
        if l < len(params) // 2 - 1:
            x = np.maximum(x, 0)
    return np.mean(x.argmax(axis=1) == y)


def run_numpy(task):
    params = initial_weights(task)
    update = (_NumpyAdam if task.optimizer == "adam" else _NumpySGD)(params, task.lr)
    y = task.train_y.astype(np.intp)
    with threadpool_limits(task.threads, user_api="blas"):
        def run_epoch(epoch):
            _numpy_epoch(params, task.train_xf, y, epoch_order(task, epoch), task.batch, update)

        timing = time_epochs(run_epoch, task)
        accuracy = _numpy_accuracy(params, task.test_xf, task.test_y)
    return _result(timing, accuracy)


# --- PyTorch, eager and torch.compile ------------------------------------------


def _torch_run(task, compile_step):
    import torch
    from torch import nn

    torch.set_num_threads(task.threads)
    n_layers = len(task.layers) - 1
    modules = []
    for l, (n_in, n_out) in enumerate(zip(task.layers[:-1], task.layers[1:])):
        modules.append(nn.Linear(n_in, n_out))
        if l < n_layers - 1:
            modules.append(nn.ReLU())
    model = nn.Sequential(*modules)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():  # nn.Linear keeps weights as (out, in)
        for layer, (w, b) in zip(linears, _pairs(initial_weights(task))):
            layer.weight.copy_(torch.from_numpy(w).T)
            layer.bias.copy_(torch.from_numpy(b))
    if task.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=ADAM_LR, betas=ADAM_BETAS, eps=ADAM_EPS,
                                     weight_decay=0.0)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=SGD_LR)
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    if compile_step:
        # Static shapes: the last partial batch gets its own graph in the warm-up.
        step = torch.compile(step, dynamic=False)
    x_all = torch.from_numpy(task.train_xf)
    y_all = torch.from_numpy(task.train_y.astype(np.int64))

    def run_epoch(epoch):
        order = torch.from_numpy(epoch_order(task, epoch))
        for start in range(0, len(order), task.batch):
            idx = order[start:start + task.batch]
            step(x_all[idx], y_all[idx])

    timing = time_epochs(run_epoch, task)
    with torch.no_grad():
        pred = model(torch.from_numpy(task.test_xf)).argmax(dim=1).numpy()
    return _result(timing, np.mean(pred == task.test_y))


def run_torch(task):
    return _torch_run(task, compile_step=False)


def run_torch_compile(task):
    import torch  # noqa: F401  (a missing torch is "not installed", not "unavailable")

    try:
        return _torch_run(task, compile_step=True)
    except Exception as exc:  # compiler missing, inductor error, ...
        raise Unavailable(_one_line(exc)) from exc


# --- JAX ----------------------------------------------------------------------


def run_jax(task):
    # XLA_FLAGS for the thread count must be set before this import (bench.compare does).
    import jax
    import jax.numpy as jnp

    n, batch, lr = len(task.train_y), task.batch, task.lr
    n_full = n // batch
    (beta1, beta2), eps = ADAM_BETAS, ADAM_EPS
    tree_map = jax.tree_util.tree_map

    def forward(params, x):
        for w, b in params[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = params[-1]
        return x @ w + b

    def loss(params, x, y):
        logp = jax.nn.log_softmax(forward(params, x))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    # The carried state: the parameters, and for Adam also (m, v, step count).
    def sgd_step(params, x, y):
        grads = jax.grad(loss)(params, x, y)
        return tree_map(lambda p, g: p - lr * g, params, grads)

    def adam_step(state, x, y):
        params, m, v, step = state
        grads = jax.grad(loss)(params, x, y)
        step = step + 1
        k = step.astype(jnp.float32)
        step_size = lr / (1 - beta1 ** k)
        root_correction = jnp.sqrt(1 - beta2 ** k)
        m = tree_map(lambda m, g: beta1 * m + (1 - beta1) * g, m, grads)
        v = tree_map(lambda v, g: beta2 * v + (1 - beta2) * g * g, v, grads)
        params = tree_map(lambda p, m, v: p - step_size * m / (jnp.sqrt(v) / root_correction + eps),
                          params, m, v)
        return params, m, v, step

    step_fn = adam_step if task.optimizer == "adam" else sgd_step

    # One compiled epoch: lax.scan over the full batches, then the last
    # partial batch as one more step.  Data is an argument, not a constant,
    # so it is not baked into the compiled program.
    @jax.jit
    def epoch(state, x_all, y_all, order):
        full = order[: n_full * batch].reshape(n_full, batch)
        state, _ = jax.lax.scan(
            lambda s, idx: (step_fn(s, x_all[idx], y_all[idx]), None), state, full)
        rest = order[n_full * batch:]
        if rest.shape[0]:
            state = step_fn(state, x_all[rest], y_all[rest])
        return state

    params = tuple((jnp.asarray(w), jnp.asarray(b)) for w, b in _pairs(initial_weights(task)))
    if task.optimizer == "adam":
        zeros = tree_map(jnp.zeros_like, params)
        state = (params, zeros, zeros, jnp.zeros((), jnp.int32))
    else:
        state = params
    x_all = jnp.asarray(task.train_xf)
    y_all = jnp.asarray(task.train_y.astype(np.int32))

    def run_epoch(e):
        nonlocal state
        state = epoch(state, x_all, y_all, jnp.asarray(epoch_order(task, e)))
        jax.block_until_ready(state)

    timing = time_epochs(run_epoch, task)
    params = state[0] if task.optimizer == "adam" else state
    logits = forward(params, jnp.asarray(task.test_xf))
    accuracy = np.mean(np.asarray(logits.argmax(axis=1)) == task.test_y)
    rest = n - n_full * batch
    note = "Adam written out in the jitted step, (m, v, step) in the scanned carry" \
        if task.optimizer == "adam" else ""
    if rest:
        note = "; ".join(filter(None, [f"jit epoch: scan over {n_full} batches + 1 step of {rest}", note]))
    return _result(timing, accuracy, note)


# --- scikit-learn -------------------------------------------------------------


def run_sklearn(task):
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=task.hidden, activation="relu", solver=task.optimizer,
        alpha=0.0, batch_size=task.batch, learning_rate="constant",
        learning_rate_init=task.lr, momentum=0.0, nesterovs_momentum=False,
        beta_1=ADAM_BETAS[0], beta_2=ADAM_BETAS[1], epsilon=ADAM_EPS,
        shuffle=True, random_state=task.seed,
    )
    x, y = task.train_xf, task.train_y
    classes = np.arange(N_CLASSES)
    note = "own shuffle; partial_fit also computes the loss"
    with threadpool_limits(task.threads, user_api="blas"):
        # sklearn makes its weights on the first partial_fit; then we
        # overwrite them in place (its optimizer holds these arrays).
        clf.partial_fit(x[:task.batch], y[:task.batch], classes=classes)
        params = initial_weights(task)
        for dst, src in zip(clf.coefs_ + clf.intercepts_, params[0::2] + params[1::2]):
            dst[...] = src
        if task.optimizer == "adam":
            # ... and forget the step that first call took (sklearn's private state).
            adam = getattr(clf, "_optimizer", None)
            if adam is not None and hasattr(adam, "ms"):
                adam.t = 0
                adam.ms = [np.zeros_like(m) for m in adam.ms]
                adam.vs = [np.zeros_like(v) for v in adam.vs]
            else:
                note += "; Adam state of one setup step kept"
            note += "; sklearn's Adam adds eps before the bias correction of sqrt(v)"

        def run_epoch(epoch):
            clf.partial_fit(x, y)  # one pass, shuffled by sklearn itself

        timing = time_epochs(run_epoch, task)
        accuracy = clf.score(task.test_xf, task.test_y)
    return _result(timing, accuracy, note)


# --- registry -----------------------------------------------------------------

# name: (runner, package whose absence means "not installed", how to install it)
FRAMEWORKS = {
    "fastnn": (run_fastnn, "fastnn", "pip install -e ."),
    "fastnn.array": (lambda task: run_fastnn(task, prepared=False), "fastnn", "pip install -e ."),
    "numpy": (run_numpy, "numpy", "pip install numpy"),
    "torch": (run_torch, "torch", "pip install torch==2.13.0"),
    "torch.compile": (run_torch_compile, "torch", "pip install torch==2.13.0"),
    "jax": (run_jax, "jax", "pip install jax jaxlib"),
    "sklearn": (run_sklearn, "sklearn", "pip install scikit-learn"),
}


def _one_line(exc):
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()[:200]


def _installed(package):
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # ValueError: None in sys.modules (blocked on purpose)
        return False


def run(name, task):
    """Run one framework; any failure becomes Result.status, never a traceback."""
    runner, package, install = FRAMEWORKS[name]
    try:
        return runner(task)
    except Unavailable as exc:
        return Result(status=f"unavailable: {exc}")
    except ImportError as exc:
        if not _installed(package):
            return Result(status=f"not installed: {install}")
        return Result(status=f"import failed: {_one_line(exc)}")
    except Exception as exc:
        return Result(status=f"failed: {_one_line(exc)}")
