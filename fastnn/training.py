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

from .errors import TrainingDivergedError
from .kernels.codes import (ADAPTIVE, ALONE_FROM, BLOCK, SGD as SGD_CODE, SOLO_BATCHES, SOLO_CYCLES, SYNC_SIZE,
                            TEAM_BATCHES, TEAM_CYCLES)
from .layout import aligned_zeros, batch_buffers, cache_aligned, gradient_plan
from .optimizers import SGD, Optimizer
from .schedules import Schedule
from .validation import check_positive_float, check_positive_int
from .workers import default_threads, max_threads, run_workers

if TYPE_CHECKING:
    from .data import Examples
    from .model import MLP

# Workers that share the parameters, each updating some of their rows (the other layers), from
# this many multiply-adds per batch: below, moving those rows to the other core every batch costs
# more than the second core saves. Measured (batch 64, 2 workers against 1): 784-10-10 1.19x the
# time, 784-20-10 0.99x, 784-32-10 0.61x.
PARALLEL_MIN_WORK = 500_000
# Workers with replicas of their own, where they apply (parallel_plan), from this many batches per
# epoch: in fewer, the others would join worker 0 for too few batches to pay for starting their
# threads (see TEAM_RULE). Measured on 2 cores, one worker against two with replicas: 784-10-10
# 0.81x the time (batch 32 or 64), 0.79x (batch 256); 784-24-10 0.78-0.80x; split rows instead
# of replicas, 1.13-1.45x. (In this VM's slow spells, 1.45x and more: then worker 0 goes on alone.)
REPLICATED_MIN_BATCHES = 64
# Whether two workers with replicas may split the first layer by input units (splits_inputs).
BY_INPUTS = True


@dataclass
class History:
    """Per-epoch metrics of a fit: training loss and accuracy (over the epoch, as it trained),
    validation loss and accuracy when there is validation data, learning rate at the epoch's
    end, and seconds per epoch. ``stopped_early`` and ``best_epoch`` report early stopping,
    ``interrupted`` that on_block or on_epoch asked training to stop."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    stopped_early: bool = False
    best_epoch: int | None = None
    interrupted: bool = False


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


def work_per_batch(model: "MLP", examples: "Examples", batch_size: int) -> float:
    """Multiply-adds of one batch's forward and backward passes (sparse first layer)."""
    rows = examples.rows
    nnz_per_row = rows.values.size / max(rows.n_rows, 1)
    dense = sum(a * b for a, b in zip(model.sizes[1:-1], model.sizes[2:]))
    return batch_size * 2 * (nnz_per_row * model.sizes[1] + 1.5 * dense)


def dropout_key(seed: int, epoch: int) -> int:
    """The key of one epoch's dropout stream: a function of the seed and the epoch count only."""
    return (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + 1) % 2**64


def epoch_order(rng: np.random.Generator, n: int) -> np.ndarray:
    """The order of an epoch's n examples: a permutation drawn from one 64-bit word of ``rng``
    (see kernels/order.py)."""
    from .kernels.native import kernel

    if n > 2**32:  # draw_below's bound: past it the kernel's swaps would land out of bounds
        raise ValueError(f"cannot shuffle {n} examples: at most 2**32")
    order = np.empty(n, dtype=np.int64)
    kernel("shuffle_order")(order, rng.integers(2**64, dtype=np.uint64))
    return order


def train(model: "MLP", examples: "Examples", validation: "Examples | None", settings: Settings,
          on_block: Callable | None, on_epoch: Callable | None) -> History:
    """Run settings.epochs epochs over examples; see MLP.fit."""
    n = examples.rows.n_rows
    batch_size = min(settings.batch_size, n)
    n_batches = -(-n // batch_size)
    threads = min(settings.threads, max_threads())
    workers, replicated = parallel_plan(model, examples, batch_size, threads)
    by_inputs = replicated and splits_inputs(model, settings, workers)
    sharing = workers > 1 and not replicated
    units = gradient_plan(model.layout, workers if sharing else 1,
                          np.append(examples.rows.column_counts, n) if sharing else None)
    state = OptimizerState.continued(model.optimizer_state, settings.optimizer, model.layout.n_params, model.dtype)
    bufs = batch_buffers(model.layout, examples.rows, 2 * batch_size if replicated else batch_size)
    worker_bufs = [bufs] + [(*bufs[:6], aligned_zeros(bufs[6].shape, model.dtype), bufs[7]) for _ in range(1, workers)]
    grad = aligned_zeros(model.layout.n_params, model.dtype)
    replicas = [Replica.like(model._params, state) for _ in range(1, workers)] if replicated else []
    # On a cache line, so that each block's 16 losses fill a line of their own: workers with
    # replicas take alternate blocks (numpy's arrays start 16 bytes into a line).
    losses = aligned_zeros(n, model.dtype)
    hits = aligned_zeros(n, np.bool_)
    data = examples.kernel_tuple()
    n_blocks = min(settings.blocks_per_epoch, n_batches)
    edges = [n_batches * i // n_blocks for i in range(n_blocks + 1)]
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
        if skip >= n_batches or (resumed is not None and resumed.get("n_batches") != n_batches):
            raise ValueError("the checkpoint was interrupted in an epoch of another data set or batch size")
        for first, last in zip(edges[:-1], edges[1:]):
            if last <= skip:
                continue
            first = max(first, skip)
            steps = state.step + 1 + np.arange(last - first)
            lrs = (settings.optimizer.lr * settings.schedule.factors(model.epochs_trained, first, last, n_batches)
                   ).astype(model.dtype)
            opt = (settings.optimizer.code, state.m, state.v, settings.optimizer.hyper(steps, model.dtype),
                   lrs, settings.clip_norm)
            good = (model._params.copy(), state.m.copy(), state.v.copy())
            train_on_workers(workers, model._params, grad, net, data, order, batch_size, first, last,
                             worker_bufs, units, opt, losses, hits, replicas, by_inputs)
            done = slice(first * batch_size, min(n, last * batch_size))
            if not (np.isfinite(losses[done]).all() and np.isfinite(model._params).all()):
                model._params, state.m, state.v = good
                grad[:] = 0
                raise TrainingDivergedError(
                    f"the loss became NaN or infinite in epoch {epoch + 1} (lr={lrs.max():g} may be "
                    "too high); the weights from before that block of batches were kept")
            state.step += int(last - first)
            model.optimizer_state = state
            model.position = {"rng": epoch_start_rng, "batches_done": int(last), "n_batches": n_batches}
            if on_block is not None and on_block(epoch, int(last), n_batches):
                history.interrupted = True
                if last < n_batches:  # stop mid-epoch: model.position says where to resume
                    return history
        model.position = None
        model.epochs_trained += 1
        history.seconds.append(time.perf_counter() - started)
        trained = slice(skip * batch_size, n)  # a resumed epoch reports the part it trained
        history.loss.append(float(losses[trained].mean(dtype=np.float64)))
        if model.output == "softmax":
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
        if on_epoch is not None and on_epoch(epoch, history):
            history.interrupted = True
        if stop:
            history.stopped_early = True
        if stop or history.interrupted:
            break
    stopper.finish(history)
    return history


def parallel_plan(model: "MLP", examples: "Examples", batch_size: int, threads: int) -> tuple[int, bool]:
    """How many workers train, and whether each updates a replica of its own parameters (see
    kernels.train.train_worker). Replicas suit first layers narrow enough to take their gradient
    example by example: shared, their rows would move between the cores twice a batch."""
    n_blocks = -(-batch_size // BLOCK)
    n_batches = -(-examples.rows.n_rows // batch_size)
    if threads > 1 and n_blocks > 1 and not model.layout.transposes_batch and n_batches >= REPLICATED_MIN_BATCHES:
        return min(threads, n_blocks), True
    return (threads if work_per_batch(model, examples, batch_size) >= PARALLEL_MIN_WORK else 1), False


def splits_inputs(model: "MLP", settings: Settings, workers: int) -> bool:
    """Whether two workers with replicas split the first layer by input units, each stepping half
    of its weight rows, rather than both stepping all of them (see kernels.train.by_inputs_batch):
    for plain SGD (its rows take their step directly) and first layers of tiles narrower than 8
    vectors (whose sums split in two halves)."""
    layout, optimizer = model.layout, settings.optimizer
    return (workers == 2 and optimizer.code == SGD_CODE and optimizer.weight_decay == 0 and settings.clip_norm == 0
            and layout.strides[0] < 8 * layout.lanes and BY_INPUTS)


@dataclass
class Replica:
    """A worker's own copy of what phase 2 updates: parameters, gradient, optimizer state (the
    kernel copies them from the model's when the worker joins; the gradient stays zero between
    batches)."""

    params: np.ndarray
    grad: np.ndarray
    m: np.ndarray
    v: np.ndarray

    @classmethod
    def like(cls, params: np.ndarray, state: OptimizerState) -> "Replica":
        return cls(*(aligned_zeros(a.shape, a.dtype) for a in (params, params, state.m, state.v)))


@dataclass
class TeamReport:
    """What worker 0 of workers with replicas measured in a kernel call (see
    kernels.train.train_worker): CPU cycles per batch alone and with the others (NaN: not
    timed), the batch from which it went on alone (None: it did not), and whether the team
    split the first layer by input units (splits_inputs)."""

    solo_batch_cycles: float
    team_batch_cycles: float
    alone_from: int | None
    by_inputs: bool = False

    @classmethod
    def from_sync(cls, sync: np.ndarray, by_inputs: bool = False) -> "TeamReport":
        def per_batch(cycles, batches):
            return sync[cycles] / sync[batches] if sync[batches] else float("nan")

        return cls(per_batch(SOLO_CYCLES, SOLO_BATCHES), per_batch(TEAM_CYCLES, TEAM_BATCHES),
                   int(sync[ALONE_FROM]) - 1 if sync[ALONE_FROM] else None, by_inputs)

    @property
    def team_over_solo(self) -> float:
        """The time of a batch with the others over the time of one alone (NaN: not timed)."""
        return self.team_batch_cycles / self.solo_batch_cycles


# What the last kernel call with replicas measured (for benchmarks; None before any).
last_team_report: TeamReport | None = None
# How worker 0 of workers with replicas decides whether the others stay (kernels.codes.ADAPTIVE;
# tests set the others), and how many batches it times alone, then with them, to decide: about
# 0.25 and 0.8 ms at 784-10-10. Time enough for the others' threads to start (0.1 ms).
TEAM_RULE, SOLO_PROBE, TEAM_PROBE = ADAPTIVE, 8, 32
# Worker 0's batches timed alone, kept by the shape of the kernel call for this long: the next
# fit of that shape lets the others join at once instead of timing its own (a fit's 8 batches
# alone cost 0.08 ms of a 784-10-10 epoch's 19), while the machine's speed is still looked at
# again every second. For TEAM_RULE ADAPTIVE only: the others follow their probes as told.
SOLO_MEMORY_SECONDS = 1.0
_solo_timings: dict[tuple, tuple[int, int, float]] = {}


def train_on_workers(n_workers: int, params, grad, net, data, order, batch_size, first, last, worker_bufs, units,
                     opt, losses, hits, replicas=(), by_inputs=False) -> None:
    """Batches first..last-1 on n_workers threads, each running kernels.train.train_worker with
    its own buffers worker_bufs[w]; with ``replicas`` (one per worker but the first, which
    updates params, grad and opt's state), each worker updates its own copy of them, and with
    ``by_inputs`` (two workers), the first layer's weight rows are split between them."""
    from .kernels.native import kernel

    if by_inputs and (n_workers != 2 or len(replicas) != 1):  # by_inputs_batch is written for two
        raise RuntimeError("splitting the first layer by inputs needs two workers, one of them with a replica")
    if replicas and worker_bufs[0][0].shape[0] < 2 * batch_size:  # the kernel indexes both halves unchecked
        raise RuntimeError("workers with replicas need Z, A and D of 2 x batch_size rows")
    if any((r.params.shape, r.m.shape, r.v.shape) != (params.shape, opt[1].shape, opt[2].shape) for r in replicas):
        raise RuntimeError("a replica's arrays differ in shape from the model's (the kernel copies them unchecked)")
    train_worker = kernel("train_worker")
    sync = np.zeros(SYNC_SIZE, dtype=np.int64)
    shape = (tuple(net[0]), params.dtype, data[2].dtype, batch_size, n_workers, by_inputs)
    remembered = _solo_timings.get(shape) if replicas and TEAM_RULE == ADAPTIVE else None
    if remembered is not None and time.monotonic() - remembered[2] < SOLO_MEMORY_SECONDS:
        sync[SOLO_CYCLES], sync[SOLO_BATCHES] = remembered[:2]
    passed_on = sync[SOLO_BATCHES]
    own = [(params, grad, opt)] * (n_workers - len(replicas))
    own += [(r.params, r.grad, (opt[0], r.m, r.v, *opt[3:])) for r in replicas]
    leader = (params, opt[1], opt[2])
    run_workers(n_workers, lambda w: train_worker(n_workers, sync, own[w][0], own[w][1], net, data, order, batch_size,
                                                  first, last, worker_bufs[w], units, own[w][2], losses, hits,
                                                  w if replicas else -1, leader,
                                                  (TEAM_RULE, SOLO_PROBE, TEAM_PROBE, int(by_inputs))))
    if replicas:
        global last_team_report
        last_team_report = TeamReport.from_sync(sync, by_inputs)
        if sync[SOLO_BATCHES] > passed_on:  # timed anew
            _solo_timings[shape] = (int(sync[SOLO_CYCLES]), int(sync[SOLO_BATCHES]), time.monotonic())


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
