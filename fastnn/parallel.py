"""How a fit's batches are shared between threads: the plan, the kernel calls, and the choice
between one worker and several, made by timing both on this host.

A batch is shared in one of four ways (kernels/train.py, train_worker): workers on the model's
shared weights take the batch's tasks in turn and each updates some of its rows; each worker
keeps a replica of the weights that it updates whole, and only the examples' passes are shared;
for plain SGD, two workers split the first layer's weight rows by input units; or, for large
batches, the workers take chunks of the batch that each sum a gradient of their own. Whether a
second worker pays depends on the host as much as on the shape: at 784-10-10 two workers that
split the first layer save a third of the time on one host and cost more than one worker on
another, and on one host now and then cost more for a second or longer (a vCPU that the
hypervisor takes away stalls the other at every barrier; docs/performance.md has the figures).
So where sharing may not pay, a fit runs its batches in
calls of about CALL_SECONDS and times each: one worker and the plan's each have the times per
batch of their last two calls, kept for CHOICE_SECONDS; a side with fewer is timed first, and
each call goes to the faster. A slow spell then costs two calls. Every way gives the same
weights, bit for bit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import WorkerStalledError
from .kernels.codes import ABORT, BLOCK, CHUNKS, REPLICAS, SGD, SHARED, SPLIT, STOP, STOP_AT
from .layout import aligned_zeros, batch_buffers, gradient_plan
from .workers import new_sync, run_stoppable, stall_message
from .kernels.tuning import (CALL_SECONDS, CHOICE_SECONDS, CHUNK_EXAMPLES, CHUNKED_MAX_BYTES, CHUNKED_MIN_BATCH,
                             PARALLEL_MIN_WORK, PROBE_BATCHES, SURE_WORK, TEAM_MARGIN)

if TYPE_CHECKING:
    from .data.examples import Examples
    from .model import MLP
    from .optimizers import Optimizer


# False: run the plan's workers without timing them (tests of the parallel paths).
PROBE = True


@dataclass(frozen=True)
class Plan:
    """``workers`` threads sharing batches the ``way`` kernels/codes.py names (SHARED, ...)."""

    workers: int = 1
    way: int = SHARED

    @property
    def replicas(self) -> bool:
        return self.way == REPLICAS

    @property
    def alone(self) -> "Plan":
        """The one-worker plan that computes the same bits: CHUNKS sums in chunks for any number
        of workers, the other ways as one worker on the model's weights does."""
        return Plan(1, CHUNKS) if self.way == CHUNKS else Plan()


def work_per_batch(model: "MLP", examples: "Examples", batch_size: int) -> float:
    """Multiply-adds of one batch's forward and backward passes (sparse first layer)."""
    rows = examples.rows
    nnz_per_row = rows.values.size / max(rows.n_rows, 1)
    dense = sum(a * b for a, b in zip(model.sizes[1:-1], model.sizes[2:]))
    return batch_size * 2 * (nnz_per_row * model.sizes[1] + 1.5 * dense)


def chunk_count(batch_size: int) -> int:
    """The chunks of CHUNK_EXAMPLES examples that a batch of plan CHUNKS is cut into."""
    return -(-batch_size // CHUNK_EXAMPLES)


def parallel_plan(model: "MLP", examples: "Examples", batch_size: int, threads: int, optimizer: "Optimizer",
                  clip_norm: float) -> Plan:
    """The way for ``threads`` workers to share a batch, where more than one may pay. Where the
    first layer is narrow enough to take its gradient example by example (its rows, shared,
    would cross between the cores twice a batch): for large batches, chunks that each sum their
    own gradient, for one worker too (the sums do not depend on the workers, but differ from the
    other ways'); else two workers that split it, for plain SGD, whose first layer's step is a
    large part of a batch; else replicas. Elsewhere shared weights, where a batch is work enough."""
    layout = model.layout
    if (batch_size >= CHUNKED_MIN_BATCH and not layout.transposes_batch and clip_norm == 0
            and chunk_count(batch_size) * layout.n_params * np.dtype(model.dtype).itemsize <= CHUNKED_MAX_BYTES):
        return Plan(max(1, min(threads, chunk_count(batch_size))), CHUNKS)
    if threads > 1 and batch_size > BLOCK and not layout.transposes_batch:
        if optimizer.code == SGD and optimizer.weight_decay == 0 and clip_norm == 0:
            return Plan(2, SPLIT)
        return Plan(min(threads, -(-batch_size // BLOCK)), REPLICAS)
    if threads > 1 and work_per_batch(model, examples, batch_size) >= PARALLEL_MIN_WORK:
        return Plan(threads)
    return Plan()


# By shape and plan: the seconds per batch of the last two calls of one worker and of the plan's
# workers, and when each call ended.
_timings: dict[tuple, dict[Plan, list[tuple[float, float]]]] = {}


def next_call(timings: dict[Plan, list[tuple[float, float]]], plan: Plan, remaining: int,
              now: float) -> tuple[Plan, int]:
    """The plan and number of batches of the next timed call, from the times per batch of each
    side's last two calls (``timings``: plan -> [(seconds, when), ...]). A side is known by the
    faster of two calls within CHOICE_SECONDS: one call may have met a slow moment of the host
    (a thread placed on a busy core, a vCPU taken away), and it must not decide alone. A side not
    known is timed first, if PROBE_BATCHES remain; else the call goes to the faster (``plan`` only
    by TEAM_MARGIN; one worker when neither is known). A call runs about CALL_SECONDS by the time
    per batch known, at least PROBE_BATCHES: a short call's time is mostly waking its threads."""
    fresh = {p: [s for s, when in calls if now - when < CHOICE_SECONDS] for p, calls in timings.items()}
    known = {p: min(seconds) for p, seconds in fresh.items() if len(seconds) == 2}
    untimed = [p for p in (plan.alone, plan) if p not in known]
    if untimed and remaining >= PROBE_BATCHES:
        choice = untimed[0]
    else:
        choice = plan if known.get(plan, np.inf) < TEAM_MARGIN * known.get(plan.alone, np.inf) else plan.alone
    per_batch = known.get(choice, min((s for seconds in fresh.values() for s in seconds), default=None))
    batches = PROBE_BATCHES if per_batch is None else max(PROBE_BATCHES, round(CALL_SECONDS / max(per_batch, 1e-9)))
    return choice, min(remaining, batches)


class Team:
    """The threads of one fit and their buffers: trains blocks of batches on its plan, or on one
    worker where the timed calls find that faster."""

    def __init__(self, model: "MLP", examples: "Examples", batch_size: int, plan: Plan, optimizer_code: int,
                 clipped: bool):
        layout, dtype = model.layout, model.dtype
        self.plan, self.batch_size = plan, batch_size
        rows = {SHARED: batch_size, CHUNKS: plan.workers * BLOCK}.get(plan.way, 2 * batch_size)
        self.bufs = batch_buffers(layout, examples.rows, rows)
        self.scratch = [(self.bufs.weights_t, self.bufs.panel)] + [  # each worker's own
            (aligned_zeros(self.bufs.weights_t.shape, dtype), aligned_zeros(self.bufs.panel.shape, dtype))
            for _ in range(1, plan.workers)]
        grad_size = layout.n_params * (chunk_count(batch_size) if plan.way == CHUNKS else 1)
        self.grads = [aligned_zeros(grad_size, dtype) for _ in range(plan.workers if plan.replicas else 1)]
        self.replicas: list[list[np.ndarray]] = [[] for _ in range(1, plan.workers)] if plan.replicas else []
        self.units = {plan.alone: gradient_plan(layout, 1)}
        if plan.way == SHARED and plan.workers > 1:  # ranges of rows that balance their non-zero inputs
            costs = np.append(examples.rows.column_counts, examples.rows.n_rows)
            self.units[plan] = gradient_plan(layout, plan.workers, costs)
        elif plan.way == CHUNKS:  # ranges of rows to add the chunks' sums over, and step
            self.units[plan] = gradient_plan(layout, plan.workers)
        else:
            self.units[plan] = self.units[plan.alone]
        self.probing = (plan.workers > 1 and PROBE
                        and work_per_batch(model, examples, batch_size) < SURE_WORK)
        self.key = (model.sizes, np.dtype(dtype).name, examples.rows.values.dtype.name, batch_size, optimizer_code,
                    clipped, plan)
        self.last_plan = plan if not self.probing else plan.alone

    def train(self, params: np.ndarray, net, data, order, first: int, last: int, opt, losses, hits) -> tuple[int, bool]:
        """Batches first..last-1 (opt's learning rates and step count start at ``first``).
        Returns the batch after the last one done (``last`` unless a stop was asked for) and
        whether a KeyboardInterrupt arrived meanwhile. Raises WorkerStalledError when a worker
        gave up waiting for the others."""
        if not self.probing:
            return self._call(self.plan, params, net, data, order, first, last, opt, losses, hits)
        timings = _timings.setdefault(self.key, {})
        while first < last:
            plan, n_batches = next_call(timings, self.plan, last - first, time.monotonic())
            end = first + n_batches
            started = time.perf_counter()
            stopped_at, interrupted = self._call(plan, params, net, data, order, first, end, opt, losses, hits)
            seconds = (time.perf_counter() - started) / max(stopped_at - first, 1)
            timings[plan] = [*timings.get(plan, [])[-1:], (seconds, time.monotonic())]
            if stopped_at < end or interrupted:
                return stopped_at, interrupted
            done = end - first
            first, opt = end, opt._replace(lrs=opt.lrs[done:], step=opt.step + done)
        return last, False

    def _call(self, plan: Plan, params, net, data, order, first, last, opt, losses, hits) -> tuple[int, bool]:
        """One kernel call: batches first..last-1 on ``plan``."""
        from .native.loader import kernel

        train_worker = kernel("train_worker")
        own = [(params, self.grads[0], opt)] * plan.workers
        if plan.replicas:  # each a copy of the model's weights and optimizer state, as they are now
            for w, replica in enumerate(self.replicas[:plan.workers - 1], 1):
                if [a.shape for a in replica] != [params.shape, opt.m.shape, opt.v.shape]:
                    replica[:] = [aligned_zeros(a.shape, a.dtype) for a in (params, opt.m, opt.v)]
                for copy, source in zip(replica, (params, opt.m, opt.v)):
                    copy[...] = source
                own[w] = (replica[0], self.grads[w], opt._replace(m=replica[1], v=replica[2]))
        bufs = [self.bufs._replace(weights_t=weights_t, panel=panel) for weights_t, panel in self.scratch]
        units, sync = self.units[plan], new_sync()
        self.last_plan = plan
        interrupted = run_stoppable(
            plan.workers,
            lambda w: train_worker(w, plan.workers, plan.way, sync, own[w][0], own[w][1], net, data, order,
                                   self.batch_size, first, last, bufs[w], units, own[w][2], losses, hits),
            stop=lambda: sync.__setitem__(STOP, 1), abort=lambda: sync.__setitem__(ABORT, first + 1))
        if sync[ABORT]:
            raise WorkerStalledError(stall_message(sync, plan.workers))
        return (int(sync[STOP_AT]) if sync[STOP_AT] else last), interrupted
