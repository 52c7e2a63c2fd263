"""Many models at once: train K networks of one shape on the same data in one kernel call.

Sweeps over seeds and learning rates train many small networks. One at a time, each fit pays
its own set-up and, on small networks, leaves a core idle (a batch is too little work to
share). fit_many prepares the data once and runs the models side by side, one per thread at a
time, with no synchronisation between them; every model ends with exactly the weights that its
own ``model.fit`` with the same options would give.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from .layout import aligned_zeros, batch_buffers, cache_aligned, gradient_plan
from .model import MLP
from .parallel import chunk_count, parallel_plan
from .optimizers import Optimizer
from .schedules import Schedule
from .errors import TrainingDivergedError
from .kernels.args import Hyper, Opt
from .kernels.codes import BLOCK, CHUNKS, STOP
from .training import History, OptimizerState, Settings, dropout_key, epoch_order
from .workers import DeferredInterrupt, max_threads, new_sync, run_stoppable


def fit_many(models: Sequence[MLP], X, y, *, epochs: int = 1, batch_size: int = 64,
             lr: float | None = None, optimizers: Sequence[Optimizer] | Optimizer | None = None,
             schedule: Schedule | None = None, shuffle: bool = True, sample_weight=None, class_weight=None,
             clip_norm: float | None = None, threads: int | None = None) -> list[History]:
    """Train every model in ``models`` on (X, y), as ``model.fit`` would with these options.

    The models must share sizes, activation, output, dropout and dtype (seeds, initial weights
    and optimizer settings may differ). ``optimizers``: one for all, or one per model, all of
    the same class (default SGD with ``lr``). ``schedule`` is shared, stateless ones only
    (not ReduceOnPlateau). Returns one History per model (seconds are the shared wall time).
    """
    from .native.loader import kernel

    models = list(models)
    if not models or not all(isinstance(m, MLP) for m in models):
        raise ValueError("models must be a non-empty list of MLP")
    first = models[0]
    shape = lambda m: (m.sizes, m.activation, m.output, m.dropout, m.dtype, m.pixels, m.classes)  # noqa: E731
    if any(shape(m) != shape(first) for m in models):
        raise ValueError("fit_many needs models of one shape: same sizes, activation, output, dropout, dtype, "
                         "pixels and classes")
    if len({id(m) for m in models}) != len(models):
        raise ValueError("a model appears twice in models")
    if optimizers is None or isinstance(optimizers, Optimizer):
        optimizers = [optimizers] * len(models)
    if len(optimizers) != len(models):
        raise ValueError(f"{len(optimizers)} optimizers for {len(models)} models")
    settings = [Settings.build(m, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=o, schedule=schedule,
                               shuffle=shuffle, early_stopping=None, clip_norm=clip_norm, threads=threads,
                               blocks_per_epoch=1) for m, o in zip(models, optimizers)]
    if len({type(s.optimizer) for s in settings}) != 1 or len({s.optimizer.code for s in settings}) != 1:
        raise ValueError("fit_many needs optimizers of one kind")
    examples = first._examples(X, y, sample_weight, class_weight, learn=all(m.epochs_trained == 0 for m in models))
    for m in models:  # the classes the first one learnt from the labels
        m.classes = first.classes
    common = settings[0]
    n, K = examples.rows.n_rows, len(models)
    size = min(common.batch_size, n)
    n_batches = -(-n // size)
    dtype = first.dtype
    states = []
    for m, s in zip(models, settings):
        if m.position is not None:
            raise ValueError("a model holds an interrupted epoch: finish it with fit first")
        states.append(OptimizerState.continued(m.optimizer_state, s.optimizer, m.layout.n_params, dtype))
    # Each model the way its own fit on one thread goes (fit's ways give the same bits for any
    # number of workers): on its weights, or in chunks for large batches.
    way = parallel_plan(first, examples, size, 1, common.optimizer, common.clip_norm).way
    params = cache_aligned(np.stack([m._params for m in models]))
    grads = aligned_zeros((K, first.layout.n_params * (chunk_count(size) if way == CHUNKS else 1)), dtype)
    m_state = cache_aligned(np.stack([s.m for s in states]))
    v_state = cache_aligned(np.stack([s.v for s in states]))
    bufs = batch_buffers(first.layout, examples.rows, BLOCK if way == CHUNKS else size, models=(K,))
    losses = np.empty((K, n), dtype=dtype)
    hits = np.empty((K, n), dtype=np.bool_)
    units = gradient_plan(first.layout, 1)
    histories = [History() for _ in models]
    workers = min(common.threads, max_threads(), K)
    each = [s.optimizer.settings() for s in settings]  # one array per setting, a value per model
    hyper = Hyper(*(np.array(values, dtype=np.float64) for values in zip(*each)))
    train_many_worker = kernel("train_many_worker")
    with DeferredInterrupt() as ctrl_c:
        try:
            for _ in range(common.epochs):
                started = time.perf_counter()
                rng_states = [m.rng.bit_generator.state for m in models]
                orders = np.stack([epoch_order(m.rng, n) if shuffle else np.arange(n) for m in models])
                keys = np.array([dropout_key(m.seed, m.epochs_trained) for m in models], dtype=np.uint64)
                lrs = np.array([s.optimizer.lr * common.schedule.factors(m.epochs_trained, 0, n_batches, n_batches)
                                for m, s in zip(models, settings)], dtype=dtype)
                opt = Opt(common.optimizer.code, m_state, v_state, hyper, lrs, common.clip_norm,
                          np.array([st.step + 1 for st in states], dtype=np.int64))
                good = (params.copy(), m_state.copy(), v_state.copy())
                net, data, tasks = first._net(), examples.kernel_tuple(), new_sync()
                syncs = np.stack([new_sync() for _ in models])  # each model's own: it runs as one worker
                interrupted = run_stoppable(
                    workers, lambda w: train_many_worker(tasks, way, params, grads, net, keys, data, orders, size, 0,
                                                         n_batches, bufs, units, opt, losses, hits, syncs),
                    stop=lambda: syncs.__setitem__((slice(None), STOP), 1), abort=lambda: None, together=False)
                if syncs[:, STOP].any():  # some models stopped part-way: none keeps this epoch
                    params[:], m_state[:], v_state[:] = good
                    for m, rng_state in zip(models, rng_states):
                        m.rng.bit_generator.state = rng_state
                    ctrl_c.pending |= interrupted
                    for h in histories:
                        h.interrupted = True
                    break
                diverged = [k for k in range(K)
                            if not (np.isfinite(losses[k]).all() and np.isfinite(params[k]).all())]
                if diverged:
                    params[:], m_state[:], v_state[:] = good
                    raise TrainingDivergedError(f"the loss became NaN or infinite for models {diverged}; every model "
                                                "keeps its weights from before this epoch")
                seconds = time.perf_counter() - started
                for k, (m, st, h) in enumerate(zip(models, states, histories)):
                    st.step += n_batches
                    m.epochs_trained += 1
                    h.seconds.append(seconds)
                    h.loss.append(float(losses[k].mean(dtype=np.float64)))
                    if m.classifies:
                        h.accuracy.append(float(hits[k].mean()))
                    h.lr.append(float(lrs[k, -1]))
                if ctrl_c.pending:
                    break
        finally:
            for k, (m, st) in enumerate(zip(models, states)):
                m._params = params[k].copy()
                st.m, st.v = m_state[k].copy(), v_state[k].copy()
                m.optimizer_state = st
    if ctrl_c.pending:
        raise KeyboardInterrupt
    return histories
