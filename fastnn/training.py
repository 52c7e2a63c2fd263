"""The training loop on the Python side: epochs, blocks of batches, schedules, early stopping.

Python runs between blocks of batches only; each block is one call of a fused kernel
(fastnn/kernels/train.py). Everything a step depends on (weights, optimizer state, the seeded
generator that orders the examples, the epoch count that keys the dropout stream, and the
position inside an interrupted epoch) lives on the model, so training continues identically
across fit calls, and from a checkpoint (MLP.save / MLP.load).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable

import numpy as np

from .errors import TrainingDivergedError, WorkerStalledError
from .kernels.args import Opt
from .layout import aligned_zeros, cache_aligned
from .optimizers import SGD, Optimizer
from .parallel import Team, parallel_plan
from .schedules import Schedule
from .data.checks import check_positive_float, check_positive_int
from .workers import DeferredInterrupt, default_threads, max_threads

if TYPE_CHECKING:
    from .data.examples import Examples
    from .model import MLP

# An epoch shorter than this is followed by epochs of one block each: on_block then runs once an
# epoch (the progress bar and Ctrl-C wait at most this long), and small data sets do not pay a
# kernel call per block. Results do not depend on the blocks.
QUICK_EPOCH_SECONDS = 0.05


@dataclass
class History:
    """Per-epoch metrics of a fit: training loss and accuracy (over the epoch, as it trained),
    validation loss and accuracy when there is validation data, learning rate at the epoch's
    end, and seconds per epoch. ``stopped_early`` and ``best_epoch`` report early stopping,
    ``interrupted`` that on_block or on_epoch asked training to stop, or a stop request (Ctrl-C
    or SIGTERM under signals.StopRequest) did; ``workers``: the threads that trained."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    stopped_early: bool = False
    best_epoch: int | None = None
    interrupted: bool = False
    workers: int = 1


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when the monitored loss (validation loss if there is validation data, else the
    training loss) has not improved by more than ``min_delta`` for ``patience`` epochs;
    with ``restore_best_weights`` the model ends with the weights of its best epoch."""

    patience: int = 10
    min_delta: float = 0.0
    restore_best_weights: bool = True


@dataclass
class OptimizerState:
    """What an optimizer carries from step to step, in the parameters' padded layout."""

    optimizer: Optimizer
    m: np.ndarray
    v: np.ndarray
    step: int = 0

    @classmethod
    def fresh(cls, optimizer: Optimizer, n_params: int, dtype) -> "OptimizerState":
        size = n_params if optimizer.slots else 0
        return cls(optimizer, aligned_zeros(size, dtype), aligned_zeros(size if optimizer.slots > 1 else 0, dtype))

    @classmethod
    def continued(cls, state: "OptimizerState | None", optimizer: Optimizer, n_params: int,
                  dtype) -> "OptimizerState":
        """The state to train on with ``optimizer``: the previous one when it follows the same
        update rule (new settings such as lr apply from the next step, as in torch), else fresh."""
        if state is None or state.optimizer.code != optimizer.code:
            return cls.fresh(optimizer, n_params, dtype)
        return cls(optimizer, cache_aligned(state.m), cache_aligned(state.v), state.step)


@dataclass(frozen=True)
class Settings:
    """Checked options of one fit call."""

    epochs: int
    batch_size: int
    optimizer: Optimizer
    schedule: Schedule
    shuffle: bool
    early_stopping: EarlyStopping | None
    clip_norm: float
    threads: int
    blocks_per_epoch: int

    @classmethod
    def build(cls, model: "MLP", *, epochs, batch_size, lr, optimizer, schedule, shuffle, early_stopping,
              clip_norm, threads, blocks_per_epoch) -> "Settings":
        if optimizer is None:
            optimizer = SGD(lr=0.1 if lr is None else check_positive_float(lr, "lr"))
        elif not isinstance(optimizer, Optimizer):
            raise ValueError(f"optimizer must be one of fastnn.optimizers' classes, got {optimizer!r}")
        elif lr is not None:
            optimizer = replace(optimizer, lr=check_positive_float(lr, "lr"))
        if schedule is not None and not isinstance(schedule, Schedule):
            raise ValueError(f"schedule must be one of fastnn.schedules' classes, got {schedule!r}")
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
            raise ValueError("early_stopping must be an EarlyStopping(...)")
        return cls(
            epochs=check_positive_int(epochs, "epochs", minimum=0),
            batch_size=check_positive_int(batch_size, "batch_size"),
            optimizer=optimizer,
            schedule=schedule or Schedule(),
            shuffle=bool(shuffle),
            early_stopping=early_stopping,
            clip_norm=0.0 if clip_norm is None else check_positive_float(clip_norm, "clip_norm"),
            threads=default_threads() if threads is None else check_positive_int(threads, "threads"),
            blocks_per_epoch=check_positive_int(blocks_per_epoch, "blocks_per_epoch"),
        )


def dropout_key(seed: int, epoch: int) -> int:
    """The key of one epoch's dropout stream: a function of the seed and the epoch count only."""
    return (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + 1) % 2**64


def epoch_order(rng: np.random.Generator, n: int) -> np.ndarray:
    """The order of an epoch's n examples: a permutation drawn from one 64-bit word of ``rng``
    (see kernels/order.py)."""
    from .native.loader import kernel

    if n > 2**32:  # draw_below's bound: past it the kernel's swaps would land out of bounds
        raise ValueError(f"cannot shuffle {n} examples: at most 2**32")
    order = np.empty(n, dtype=np.int64)
    kernel("shuffle_order")(order, rng.integers(2**64, dtype=np.uint64))
    return order


def train(model: "MLP", examples: "Examples", validation: "Examples | None", settings: Settings,
          on_block: Callable | None, on_epoch: Callable | None) -> History:
    """Run settings.epochs epochs over examples; see MLP.fit. Ctrl-C ends the running kernel
    call after its current batch, and raises KeyboardInterrupt once the model is consistent: its
    position (or the epoch count) says where a later fit continues, exactly."""
    with DeferredInterrupt() as ctrl_c:
        history = _train(model, examples, validation, settings, on_block, on_epoch, ctrl_c)
    if ctrl_c.pending:
        raise KeyboardInterrupt
    return history


def _train(model: "MLP", examples: "Examples", validation: "Examples | None", settings: Settings,
           on_block: Callable | None, on_epoch: Callable | None, ctrl_c: DeferredInterrupt) -> History:
    n = examples.rows.n_rows
    batch_size = min(settings.batch_size, n)
    n_batches = -(-n // batch_size)
    state = OptimizerState.continued(model.optimizer_state, settings.optimizer, model.layout.n_params, model.dtype)
    plan = parallel_plan(model, examples, batch_size, min(settings.threads, max_threads()), settings.optimizer,
                         settings.clip_norm)
    team = Team(model, examples, batch_size, plan, settings.optimizer.code, settings.clip_norm > 0)
    losses = aligned_zeros(n, model.dtype)
    hits = aligned_zeros(n, np.bool_)
    data = examples.kernel_tuple()
    n_blocks = min(settings.blocks_per_epoch, n_batches)
    history = History()
    stopper = _Stopper(settings.early_stopping, model)
    for epoch in range(settings.epochs):
        started = time.perf_counter()
        resumed = model.position
        if resumed is not None:  # an epoch interrupted part-way: replay its order, skip its done batches
            model.rng.bit_generator.state = resumed["rng"]
        epoch_start_rng = model.rng.bit_generator.state
        order = epoch_order(model.rng, n) if settings.shuffle else np.arange(n)
        net = model._net(dropout_key(model.seed, model.epochs_trained))
        skip = resumed["batches_done"] if resumed is not None else 0
        if history.seconds and history.seconds[-1] < QUICK_EPOCH_SECONDS:
            n_blocks = 1  # Python gets control between epochs anyway: a call per block would cost more
        edges = [n_batches * i // n_blocks for i in range(n_blocks + 1)]
        if skip >= n_batches or (resumed is not None and resumed.get("n_batches") != n_batches):
            raise ValueError("the checkpoint was interrupted in an epoch of another data set or batch size")
        for first, last in zip(edges[:-1], edges[1:]):
            if last <= skip:
                continue
            first = max(first, skip)
            lrs = (settings.optimizer.lr * settings.schedule.factors(model.epochs_trained, first, last, n_batches)
                   ).astype(model.dtype)
            opt = Opt(settings.optimizer.code, state.m, state.v, settings.optimizer.settings(), lrs, settings.clip_norm,
                      state.step + 1)
            good = (model._params.copy(), state.m.copy(), state.v.copy())
            try:
                stopped_at, interrupted = team.train(model._params, net, data, order, first, last, opt, losses, hits)
                history.workers = team.last_plan.workers
                done = slice(first * batch_size, min(n, stopped_at * batch_size))
                if not (np.isfinite(losses[done]).all() and np.isfinite(model._params).all()):
                    raise TrainingDivergedError(
                        f"the loss became NaN or infinite in epoch {epoch + 1} (lr={lrs.max():g} may be "
                        "too high); the weights from before that block of batches were kept")
            except (TrainingDivergedError, WorkerStalledError):
                model._params, state.m, state.v = good  # new arrays: a lost thread may still write the old
                if model.position is None:  # the next fit draws this epoch's order again, the same
                    model.rng.bit_generator.state = epoch_start_rng
                raise
            ctrl_c.pending |= interrupted
            state.step += int(stopped_at - first)
            model.optimizer_state = state
            model.position = {"rng": epoch_start_rng, "batches_done": int(stopped_at), "n_batches": n_batches}
            if ctrl_c.pending and stopped_at < n_batches:
                return history  # train raises KeyboardInterrupt
            asked = on_block is not None and on_block(model.epochs_trained + 1, int(stopped_at), n_batches)
            if asked or stopped_at < last:
                history.interrupted = True
                if stopped_at < n_batches:  # stop mid-epoch: model.position says where to resume
                    return history
        model.position = None
        model.epochs_trained += 1
        history.seconds.append(time.perf_counter() - started)
        trained = slice(skip * batch_size, n)  # a resumed epoch reports the part it trained
        history.loss.append(float(losses[trained].mean(dtype=np.float64)))
        if model.classifies:
            history.accuracy.append(int(np.count_nonzero(hits[trained])) / hits[trained].size)
        history.lr.append(float(lrs[-1]))
        monitored = history.loss[-1]
        if validation is not None:
            metrics = model._metrics(validation)
            history.val_loss.append(metrics["loss"])
            history.val_accuracy.append(metrics.get("accuracy", float("nan")))
            monitored = metrics["loss"]
        settings.schedule.end_epoch(monitored)
        stop = stopper.update(epoch, monitored)
        if on_epoch is not None and on_epoch(model.epochs_trained, history):
            history.interrupted = True
        if stop:
            history.stopped_early = True
        if stop or history.interrupted or ctrl_c.pending:
            break
    stopper.finish(history)
    return history


class _Stopper:
    """Early stopping's bookkeeping: the best loss so far, its epoch and its weights."""

    def __init__(self, rule: EarlyStopping | None, model: "MLP"):
        self.rule, self.model = rule, model
        self.best, self.best_epoch, self.best_params, self.waited = np.inf, None, None, 0

    def update(self, epoch: int, loss: float) -> bool:
        if self.rule is None:
            return False
        if loss < self.best - self.rule.min_delta:
            self.best, self.best_epoch, self.waited = loss, epoch, 0
            if self.rule.restore_best_weights:
                self.best_params = self.model._params.copy()
            return False
        self.waited += 1
        return self.waited >= self.rule.patience

    def finish(self, history: History) -> None:
        history.best_epoch = self.best_epoch
        if self.best_params is not None:
            self.model._params = self.best_params
