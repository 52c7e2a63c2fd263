"""The frameworks bench.compare runs, one runner function each.

Every runner trains the same 784-H-10 network (ReLU hidden layer, softmax +
cross-entropy, plain minibatch SGD, float32) on the same data from the same
initial weights and shuffle orders where the framework lets us set them, and
returns a Result: seconds per epoch (median of the timed epochs, after one
warm-up epoch that pays for compilation) and test accuracy after training.

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


@dataclass
class Task:
    """What to train and how; identical for every framework."""

    train_x: np.ndarray  # uint8 (n, 784)
    train_y: np.ndarray  # uint8 (n,)
    test_x: np.ndarray  # uint8 (m, 784)
    test_y: np.ndarray  # uint8 (m,)
    train_xf: np.ndarray  # float32 train_x / 255, made once for all peers
    test_xf: np.ndarray  # float32 test_x / 255
    hidden: int
    threads: int
    epochs_timed: int = 5
    budget: float = 30.0  # seconds of timed epochs after which to stop early
    batch: int = 64
    lr: float = 0.1
    seed: int = 0


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


def init_scheme(hidden):
    """The tutorial's uniform(-0.5, 0.5) only trains small layers; wide ones need fan-in scaling."""
    return "uniform" if hidden < 128 else "he"


def initial_weights(task):
    """W1 (784,H), b1 (H,), W2 (H,10), b2 (10,) as float32, from task.seed.

    "uniform": weights and biases uniform(-0.5, 0.5), as in the tutorial.
    "he": He-uniform weights, uniform(+-sqrt(6/fan_in)), zero biases.
    """
    rng = np.random.default_rng(task.seed)
    sizes = [(N_INPUTS, task.hidden), (task.hidden, N_CLASSES)]
    params = []
    for fan_in, fan_out in sizes:
        if init_scheme(task.hidden) == "uniform":
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


def run_fastnn(task, prepared=True):
    """fastnn's fit(epochs=1) per epoch: on inputs converted once by fastnn.prepare (outside the
    timing, as JAX's device arrays are), or (prepared=False) on the uint8 array itself, which
    each fit converts again."""
    import fastnn

    MLP = getattr(fastnn, "MLP", None)
    if MLP is None:
        raise Unavailable("fastnn.MLP does not exist yet (core not landed?)")
    model = MLP([N_INPUTS, task.hidden, N_CLASSES], init=init_scheme(task.hidden),
                seed=task.seed, dtype="float32")
    kwargs = dict(epochs=1, batch_size=task.batch, lr=task.lr, threads=task.threads)
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
        "; own init and shuffle from seed 0; time = whole fit(epochs=1) call"
    if len(inner) > 1:
        note += f"; training loop alone (History.seconds) {statistics.median(inner[1:]):.3f} s"
    return _result(timing, accuracy, note)


# --- NumPy reference ----------------------------------------------------------


def _numpy_epoch(params, x_all, y_all, order, lr, batch):
    """One SGD epoch in place; gradients are means over the batch."""
    w1, b1, w2, b2 = params
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        x, y = x_all[idx], y_all[idx]
        h = x @ w1
        h += b1
        np.maximum(h, 0, out=h)  # h > 0 is also the ReLU mask below
        z = h @ w2
        z += b2
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        z[np.arange(len(idx)), y] -= 1  # softmax - onehot = dLoss/dlogits
        z /= len(idx)
        dh = z @ w2.T
        dh *= h > 0
        w2 -= lr * (h.T @ z)
        b2 -= lr * z.sum(axis=0)
        w1 -= lr * (x.T @ dh)
        b1 -= lr * dh.sum(axis=0)


def _numpy_accuracy(params, x, y):
    w1, b1, w2, b2 = params
    logits = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    return np.mean(logits.argmax(axis=1) == y)


def run_numpy(task):
    params = initial_weights(task)
    y = task.train_y.astype(np.intp)
    with threadpool_limits(task.threads, user_api="blas"):
        def run_epoch(epoch):
            _numpy_epoch(params, task.train_xf, y, epoch_order(task, epoch), task.lr, task.batch)

        timing = time_epochs(run_epoch, task)
        accuracy = _numpy_accuracy(params, task.test_xf, task.test_y)
    return _result(timing, accuracy)


# --- PyTorch, eager and torch.compile ------------------------------------------


def _torch_run(task, compile_step):
    import torch
    from torch import nn

    torch.set_num_threads(task.threads)
    w1, b1, w2, b2 = (torch.from_numpy(p) for p in initial_weights(task))
    model = nn.Sequential(nn.Linear(N_INPUTS, task.hidden), nn.ReLU(),
                          nn.Linear(task.hidden, N_CLASSES))
    with torch.no_grad():  # nn.Linear keeps weights as (out, in)
        model[0].weight.copy_(w1.T)
        model[0].bias.copy_(b1)
        model[2].weight.copy_(w2.T)
        model[2].bias.copy_(b2)
    optimizer = torch.optim.SGD(model.parameters(), lr=task.lr)
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

    def loss(params, x, y):
        w1, b1, w2, b2 = params
        logits = jax.nn.relu(x @ w1 + b1) @ w2 + b2
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def sgd_step(params, x, y):
        grads = jax.grad(loss)(params, x, y)
        return tuple(p - lr * g for p, g in zip(params, grads))

    # One compiled epoch: lax.scan over the full batches, then the last
    # partial batch as one more step.  Data is an argument, not a constant,
    # so it is not baked into the compiled program.
    @jax.jit
    def epoch(params, x_all, y_all, order):
        full = order[: n_full * batch].reshape(n_full, batch)
        params, _ = jax.lax.scan(
            lambda p, idx: (sgd_step(p, x_all[idx], y_all[idx]), None), params, full)
        rest = order[n_full * batch:]
        if rest.shape[0]:
            params = sgd_step(params, x_all[rest], y_all[rest])
        return params

    params = tuple(jnp.asarray(p) for p in initial_weights(task))
    x_all = jnp.asarray(task.train_xf)
    y_all = jnp.asarray(task.train_y.astype(np.int32))

    def run_epoch(e):
        nonlocal params
        params = epoch(params, x_all, y_all, jnp.asarray(epoch_order(task, e)))
        jax.block_until_ready(params)

    timing = time_epochs(run_epoch, task)
    w1, b1, w2, b2 = params
    logits = jax.nn.relu(jnp.asarray(task.test_xf) @ w1 + b1) @ w2 + b2
    accuracy = np.mean(np.asarray(logits.argmax(axis=1)) == task.test_y)
    rest = n - n_full * batch
    return _result(timing, accuracy,
                   f"jit epoch: scan over {n_full} batches + 1 step of {rest}" if rest else "")


# --- scikit-learn -------------------------------------------------------------


def run_sklearn(task):
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=(task.hidden,), activation="relu", solver="sgd",
        alpha=0.0, batch_size=task.batch, learning_rate="constant",
        learning_rate_init=task.lr, momentum=0.0, nesterovs_momentum=False,
        shuffle=True, random_state=task.seed,
    )
    x, y = task.train_xf, task.train_y
    classes = np.arange(N_CLASSES)
    with threadpool_limits(task.threads, user_api="blas"):
        # sklearn makes its weights on the first partial_fit; then we
        # overwrite them in place (its optimizer holds these arrays).
        clf.partial_fit(x[:task.batch], y[:task.batch], classes=classes)
        w1, b1, w2, b2 = initial_weights(task)
        for dst, src in zip(clf.coefs_ + clf.intercepts_, [w1, w2, b1, b2]):
            dst[...] = src

        def run_epoch(epoch):
            clf.partial_fit(x, y)  # one pass, shuffled by sklearn itself

        timing = time_epochs(run_epoch, task)
        accuracy = clf.score(task.test_xf, task.test_y)
    return _result(timing, accuracy, "own shuffle; partial_fit also computes the loss")


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
