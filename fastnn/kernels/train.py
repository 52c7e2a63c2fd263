"""The fused minibatch loop: forward, loss, backward and update for a block of batches in one call.

Arguments travel in small tuples:
  net   = (sizes, strides, offsets, cols, acts, dropout, key): layer widths, the same padded to
          whole SIMD vectors, each layer's start in the flat parameter buffer, each layer's first
          column in the per-batch activation buffers, activations (the last one SOFTMAX or
          IDENTITY, which picks the loss), the hidden layers' dropout rate, and the key of this
          epoch's dropout stream;
  data  = (indptr, indices, values, scale, labels, targets, weights, halves): the inputs as sorted
          sparse rows (only the non-zero inputs; uint8 pixels scaled by ``scale`` on the fly),
          int32 class labels or float regression targets (n, k), per-example loss weights, and
          each row's first entry at or past the input where the first layer's sum splits;
  bufs  = (Z, A, D, col_ptr, col_example, col_value, weights_t, t_offsets): pre-activations,
          activations and their gradients, one row per example of the batch; room for the batch's
          inputs grouped by input unit (sparse.transpose_batch), empty when the first layer's
          gradient is summed example by example instead (narrow layers, where the transposition
          costs more than it saves); and for the weights of layers 1, 2, ... transposed at the
          start of each batch, for their input gradients (see fastnn/layout.py, batch_buffers);
  units = the gradient work split into disjoint row ranges (layer, first row, end row), taken
          by whichever worker asks next (see layout.gradient_plan);
  opt   = (kind, m, v, hyper, lrs, clip_norm): the update rule and its state (see optim.py),
          one row of hyper-parameters and one learning rate per batch, and the gradient-norm
          limit (0: none).

Each batch runs in two phases, each a list of tasks that the workers (train_worker, one per
thread) take in turn, with a barrier after each. Phase 1, over blocks of examples: forward pass,
loss, and the error signal of every layer (it needs only the weights). Phase 2, over row ranges
of the parameters: each range sums its gradient over the batch's examples in a fixed order and
applies the update to its own rows. No two threads write the same value and no sum depends on
who takes which task, so results are bit-identical for any number of threads.
"""

import numpy as np
from numba import njit

from .codes import (ADAPTIVE, ALONE, ALONE_FROM, BLOCK, JOIN, LEAVE_AFTER_PROBE, READY, SGD, SOFTMAX, SOLO_BATCHES,
                    SOLO_CYCLES, TEAM_BATCHES, TEAM_CYCLES)
from .jit import kernel
from .layers import (
    activation_backward,
    activation_forward,
    add_bias_gradient,
    dense_backward_input,
    dense_backward_rows,
    dense_forward,
    dropout_apply,
    half_sum,
    mse_backward,
    mse_forward,
    softmax_forward,
    softmax_xent_backward,
    sparse_dense_backward,
    sparse_columns_backward,
    sparse_dense_forward,
    sparse_rows_step,
    narrow_tile_width,
    store_tile,
    transpose_weights,
)
from .optim import update_segment
from .simd import lanes, prefetch, prefetch_write, vadd, vload, vstore
from .sparse import half_range, prefetch_half, prefetch_row, transpose_batch
from .sync import atomic_add, atomic_load, barrier, cycles, next_task, sleep_until, wait_until


# Phase 1 runs over blocks of BLOCK examples: the first layer tile by tile across the block
# (its W stays in cache), then each example's other layers and error signals.

# Inlined into their loops: as calls, passing the argument tuples (each array is several
# machine words) cost as much as the work itself at 784-10-10.
@njit(inline="always")
def forward_example(params, net, data, e, z_row, a_row, training):
    """Forward pass of example e from its first layer's pre-activations (sparse_dense_forward,
    done for a block of examples at once); returns (loss, predicted class or -1 for regression)."""
    sizes, strides, offsets, cols, acts, dropout, key = net
    labels, targets = data[4], data[5]
    n_layers = acts.size
    for l in range(n_layers):
        n_in, n_out = sizes[l], sizes[l + 1]
        z = z_row[cols[l]:cols[l + 1]]
        if l > 0:
            dense_forward(params, offsets[l], n_in, strides[l], a_row[cols[l - 1]:cols[l]], z)
        if l < n_layers - 1:
            a = a_row[cols[l]:cols[l + 1]]
            activation_forward(acts[l], z, a, n_out)
            if training and dropout > 0:
                dropout_apply(a, n_out, key, e, l, dropout)
    k = sizes[n_layers]
    z = z_row[cols[n_layers - 1]:]
    out = a_row[cols[n_layers - 1]:]
    if acts[n_layers - 1] != SOFTMAX:
        for j in range(k):
            out[j] = z[j]
        return mse_forward(z, targets, e, k), -1
    log_partition = softmax_forward(z, out, k)
    predicted = 0
    for j in range(1, k):
        if z[j] > z[predicted]:
            predicted = j
    return log_partition - z[labels[e]], predicted


@njit(inline="always")
def first_layer_forward(params, net, data, rows, Z):
    """The first layer's pre-activations of the examples whose inputs are sparse rows ``rows``,
    into the rows of Z."""
    sizes, strides, offsets = net[0], net[1], net[2]
    sparse_dense_forward(params, offsets[0], sizes[0], strides[0], data[1], data[2], data[3], data[0], data[7], rows,
                         Z, 0)


@njit(inline="always")
def backward_example(net, data, e, weight, z_row, a_row, d_row, weights_t, t_offsets):
    """Error signal dL/dz of every layer for example e, from its forward pass and the transposed
    weights (transpose_layers)."""
    sizes, strides, offsets, cols, acts, dropout, key = net
    labels, targets = data[4], data[5]
    n_layers = acts.size
    last = cols[n_layers - 1]
    k = sizes[n_layers]
    if acts[n_layers - 1] == SOFTMAX:
        softmax_xent_backward(a_row[last:], labels[e], weight, d_row[last:], k)
    else:
        mse_backward(z_row[last:], targets, e, weight, d_row[last:], k)
    for l in range(n_layers - 1, 0, -1):
        below = d_row[cols[l - 1]:cols[l]]
        dense_backward_input(weights_t[t_offsets[l]:], sizes[l + 1], strides[l - 1], d_row[cols[l]:cols[l + 1]],
                             below)
        if dropout > 0:
            dropout_apply(below, sizes[l], key, e, l - 1, dropout)
        activation_backward(acts[l - 1], z_row[cols[l - 1]:cols[l]], below, below, sizes[l])


@njit(inline="always")
def transpose_layers(params, net, bufs):
    """The weights of layers 1, 2, ... transposed into bufs[6] (see backward_example)."""
    sizes, strides, offsets = net[0], net[1], net[2]
    weights_t, t_offsets = bufs[6], bufs[7]
    for l in range(1, sizes.size - 1):
        transpose_weights(params, offsets[l], sizes[l], strides[l], sizes[l + 1], weights_t[t_offsets[l]:],
                          strides[l - 1])


@kernel
def forward_backward_block(params, net, data, order, start, b0, b1, bufs, inverse, losses, hits, ahead):
    """Phase 1 for the batch's examples b0..b1-1: the first layer tile by tile across them, then
    each one's other layers, loss and error signals (``inverse``: 1 / the batch's total weight).
    ``ahead``: how far in ``order`` the next block this worker will do lies, for prefetching."""
    first_layer_forward(params, net, data, order[start + b0:start + b1], bufs[0][b0:b1])
    upper_layers_block(params, net, data, order, start, b0, b1, bufs, inverse, losses, hits, ahead)


@njit(inline="always")
def upper_layers_block(params, net, data, order, start, b0, b1, bufs, inverse, losses, hits, ahead):
    """forward_backward_block from the first layer's pre-activations on."""
    Z, A, D = bufs[0], bufs[1], bufs[2]
    weights = data[6]
    for b in range(b0, b1):
        e = order[start + b]
        if start + b + 2 * ahead < order.size:  # where the block after next lies, its label, weight
            later = order[start + b + 2 * ahead]
            prefetch(data[0], later), prefetch(data[4], later), prefetch(data[6], later)
        if start + b + ahead < order.size:  # the next block's inputs
            prefetch_row(data[0], data[1], data[2], order[start + b + ahead])
        loss, predicted = forward_example(params, net, data, e, Z[b], A[b], True)
        losses[start + b] = loss
        hits[start + b] = predicted == data[4][e]
        backward_example(net, data, e, weights[e] * inverse, Z[b], A[b], D[b], bufs[6], bufs[7])


@njit(inline="always")
def inverse_weight(params, data, order, start, n_batch):
    """1 / the batch's total loss weight (0 when it is 0), summed in a fixed order."""
    weights = data[6]
    total = params.dtype.type(0)
    for b in range(n_batch):
        total += weights[order[start + b]]
    return params.dtype.type(1) / total if total > 0 else params.dtype.type(0)


@kernel
def accumulate_units(grad, params, rate, net, data, order, start, n_batch, bufs, units, u0, u1):
    """Gradient rows of units u0..u1-1, summed over the batch in order. With rate != 0 (plain
    SGD, see train_worker) the first layer's weight rows take their step in params right away
    instead (sparse_columns_backward, sparse_dense_backward), their gradient never stored."""
    sizes, strides, offsets, cols = net[0], net[1], net[2], net[3]
    indptr, indices, values, scale = data[0], data[1], data[2], data[3]
    A, D, col_ptr, col_example, col_value = bufs[1], bufs[2], bufs[3], bufs[4], bufs[5]
    for u in range(u0, u1):
        l, r0, r1 = units[u, 0], units[u, 1], units[u, 2]
        if l == 0 and col_ptr.size > 0:
            sparse_columns_backward(params if rate != 0 else grad, offsets[0], strides[0], col_ptr, col_example,
                                    col_value, D, cols[0], r0, min(r1, sizes[0]), rate)
            if r1 == sizes[0] + 1:  # the bias row: its input is 1 for every example
                dense_backward_rows(grad, offsets[0], sizes[0], strides[0], A, 0, D, cols[0], n_batch,
                                    sizes[0], sizes[0] + 1)
        elif l == 0:
            for b in range(n_batch):
                row = order[start + b]
                sparse_dense_backward(grad, params, rate, offsets[0], sizes[0], strides[0], indices, values, scale,
                                      indptr[row], indptr[row + 1], D[b, cols[0]:cols[1]], r0, r1)
        else:
            dense_backward_rows(grad, offsets[l], sizes[l], strides[l], A, cols[l - 1], D, cols[l],
                                n_batch, r0, r1)


@kernel
def update_units(params, grad, net, units, opt, batch, grad_scale, u0, u1, stepped):
    """Apply the update rule to the rows of units u0..u1-1 (but the first layer's weight rows
    if ``stepped``: accumulate_units took their step)."""
    sizes, strides, offsets = net[0], net[1], net[2]
    kind, m, v, hyper, lrs = opt[0], opt[1], opt[2], opt[3], opt[4]
    for u in range(u0, u1):
        l, r0, r1 = units[u, 0], units[u, 1], units[u, 2]
        if l == 0 and stepped:
            r0 = max(r0, sizes[0])
        update_segment(kind, params, grad, m, v, offsets[l] + r0 * strides[l], offsets[l] + r1 * strides[l],
                       lrs[batch], hyper[batch], grad_scale)


@njit(inline="always")
def next_unit(sync, base, previous, replica):
    """The next unit of phase 2 for this worker: every unit in turn when it updates a replica of
    its own, else whichever one no other worker has taken yet."""
    return previous + 1 if replica >= 0 else next_task(sync, base)


@njit(inline="always")
def next_block(sync, base, previous, replica, team):
    """The next task of phase 1 for this worker: with replicas, worker w of the ``team`` workers
    on this batch takes tasks w, w + team, ... (its rows of Z, A and D stay in its own cache,
    and it knows which block it will do next); else whichever one no other worker has taken yet."""
    if replica >= 0:
        return replica if previous < 0 else previous + team
    return next_task(sync, base)


@njit(inline="always")
def join_worker_zero(sync, params, m, v, leader, last):
    """For a worker with a replica, on starting: say it is ready, wait for worker 0 to name the
    batch to join at, and copy worker 0's parameters and optimizer state ``leader`` then (worker
    0 only reads them until that batch's barrier). Returns that batch (``last`` or later: none)."""
    atomic_add(sync, READY, 1)
    sleep_until(sync, JOIN, 1)
    batch = atomic_load(sync, JOIN) - 1
    if batch < last:
        for own, source in ((params, leader[0]), (m, leader[1]), (v, leader[2])):
            for i in range(own.size):
                own[i] = source[i]
    return batch


# Two workers that split the first layer by input units (train_worker's ``by_inputs``): each owns
# the rows of W for one half of the inputs, in the model's parameters, and is the only one to read
# or write them. Per batch: each sums its half of every example's first layer (A); past a
# barrier, each finishes the forward and backward passes of its blocks of examples from the two
# halves (B, with the model's other layers); past another, each steps its half of W's rows for
# every example, and worker 0 the rest of the model (C). Replicas of the whole model, instead,
# would both step all of W's rows: at 784-10-10 that step is a third of a batch. Worker 1 steps
# no replica of the other layers either: that took it 2,000 of a batch's 48,000 cycles, and it
# read every example's rows of A and D from the other core for it.

@kernel
def first_layer_half(params, net, data, rows, Z, half):
    """A: half ``half`` of the first layer's pre-activations (layers.half_sum) of the examples
    whose inputs are sparse rows ``rows``, into the rows of Z (a first layer of tiles narrower
    than 8 vectors)."""
    sizes, strides, offsets = net[0], net[1], net[2]
    indptr, indices, values, scale, halves = data[0], data[1], data[2], data[3], data[7]
    L = lanes(params)
    t = 0
    while t < strides[0]:
        width = narrow_tile_width(strides[0], t, L)
        for b in range(rows.size):
            row = rows[b]
            lo, hi = half_range(indptr, halves, row, half)
            h0, h1, h2, h3 = half_sum(params, offsets[0], sizes[0], strides[0], t, width, indices, values, scale, lo,
                                      hi, half)
            store_tile(Z[b], t, width, L, h0, h1, h2, h3)
        t += width


@njit(inline="always")
def add_halves(Z, other, b0, b1, stride):
    """B: the first layer's pre-activations of examples b0..b1-1, Z[b] + Z[other + b] (the two
    halves' sums, in the order sparse_dense_forward_tile adds them)."""
    for b in range(b0, b1):
        z, partner = Z[b], Z[other + b]
        for t in range(0, stride, lanes(Z)):
            vstore(z, t, vadd(vload(z, t), vload(partner, t)))


@kernel
def first_layer_half_step(params, net, data, order, start, n_batch, batch_size, D, rate, half):
    """C: the SGD step of half ``half`` of the first layer's weight rows, example after example
    (as sparse_dense_backward); meanwhile, the next batch's inputs come towards the cache (this
    half of them), and the labels and weights of the one after."""
    sizes, strides, offsets, cols = net[0], net[1], net[2], net[3]
    indptr, indices, values, scale, halves = data[0], data[1], data[2], data[3], data[7]
    for b in range(n_batch):
        if start + batch_size + b < order.size:
            prefetch_half(indptr, halves, indices, values, order[start + batch_size + b], half)
        if start + 2 * batch_size + b < order.size:
            later = order[start + 2 * batch_size + b]
            prefetch(indptr, later), prefetch(halves, later), prefetch(data[4], later), prefetch(data[6], later)
        row = order[start + b]
        lo, hi = half_range(indptr, halves, row, half)
        sparse_rows_step(params, -rate, offsets[0], strides[0], indices, values, scale, lo, hi,
                         D[b, cols[0]:cols[1]])


@kernel
def upper_units_step(grad, params, rate, net, data, order, start, n_batch, bufs, units, opt, batch):
    """C: the rest of the SGD step, in this worker's replica: the first layer's bias, then the
    other layers' units (one per layer, as gradient_plan makes them for a single worker)."""
    sizes, strides, offsets, cols = net[0], net[1], net[2], net[3]
    D = bufs[2]
    bias = offsets[0] + sizes[0] * strides[0]
    for b in range(n_batch):
        add_bias_gradient(grad, bias, strides[0], D[b, cols[0]:cols[1]])
    for u in range(units.shape[0]):
        if units[u, 0] > 0:
            accumulate_units(grad, params, rate, net, data, order, start, n_batch, bufs, units, u, u + 1)
    update_units(params, grad, net, units, opt, batch, params.dtype.type(1), 0, units.shape[0], True)


# The two workers' rows of Z, A and D cross between their cores twice a batch. Asked for all at
# once when a phase starts, their trips overlap, instead of each store waiting for its line in
# turn (paired epochs at 784-10-10, two threads: 0.98-0.99x the time for each of the two).

@njit(inline="always")
def half_sums_ahead(Z, batch_size, half, n_batch):
    """A: ask for the lines of this worker's half sums, which the other read in the last batch."""
    row = Z.shape[1]
    for b in range(n_batch):
        prefetch_write(Z, (half * batch_size + b) * row)


@njit(inline="always")
def own_rows_ahead(Z, A, D, batch_size, half, n_batch):
    """B: ask for the rows of Z, A and D of this worker's examples, which the other read in the
    last batch, and for the second half's sums of them (add_halves adds them in)."""
    row, step = Z.shape[1], 64 // Z.itemsize
    for task in range(half, (n_batch + BLOCK - 1) // BLOCK, 2):
        for b in range(task * BLOCK, min(n_batch, (task + 1) * BLOCK)):
            prefetch(Z, (batch_size + b) * row)
            for j in range(0, row, step):
                prefetch_write(Z, b * row + j), prefetch_write(A, b * row + j), prefetch_write(D, b * row + j)


@njit(inline="always")
def by_inputs_batch(sync, params, grad, net, data, order, start, n_batch, batch_size, bufs, units, opt, losses, hits,
                    half, model_params, batch, leaving, passed):
    """One batch of two workers that split the first layer by input units (see first_layer_half),
    as worker ``half``; ``model_params`` holds the first layer's weight rows. With ``leaving``
    (worker 0), it tells the other to stop after this batch. Returns the barriers passed."""
    Z = bufs[0]
    here = (Z[:batch_size], bufs[1][:batch_size], bufs[2][:batch_size], bufs[3], bufs[4], bufs[5], bufs[6], bufs[7])
    if half == 1:  # the other layers are worker 0's (the model's): it alone steps them, in C
        params = model_params
    inverse = inverse_weight(params, data, order, start, n_batch)
    half_sums_ahead(Z, batch_size, half, n_batch)
    first_layer_half(model_params, net, data, order[start:start + n_batch], Z[half * batch_size:], half)
    passed = barrier(sync, 2, passed)
    own_rows_ahead(Z, bufs[1], bufs[2], batch_size, half, n_batch)
    transpose_layers(params, net, bufs)  # past the barrier: worker 0's step of the last batch is done
    for task in range(half, (n_batch + BLOCK - 1) // BLOCK, 2):
        b0, b1 = task * BLOCK, min(n_batch, (task + 1) * BLOCK)
        add_halves(Z, batch_size, b0, b1, net[1][0])
        upper_layers_block(params, net, data, order, start, b0, b1, here, inverse, losses, hits, order.size)
    if leaving:  # the other sees it past the next barrier: it finishes its half of this batch, and stops
        atomic_add(sync, ALONE, 1)
    passed = barrier(sync, 2, passed)
    rate = opt[4][batch]
    first_layer_half_step(model_params, net, data, order, start, n_batch, batch_size, bufs[2], rate, half)
    if half == 0:
        upper_units_step(grad, params, rate, net, data, order, start, n_batch, here, units, opt, batch)
    if atomic_load(sync, ALONE) > 0:  # worker 0 goes on alone once the other's rows have taken their step
        passed = barrier(sync, 2, passed)
    return passed


@kernel(nogil=True)
def train_worker(n_workers, sync, params, grad, net, data, order, batch_size, first, last, bufs, units,
                 opt, losses, hits, replica, leader, schedule):
    """Batches first..last-1 of an epoch that visits examples order[0], order[1], ..., as one of
    ``n_workers`` workers that run this at once, each in its own thread, sharing ``sync`` (see
    sync.py) and everything else but bufs[6] (each transposes the weights for itself).

    Per batch, phase 1's tasks (blocks of examples, and transposing the batch by input unit when
    the first layer's gradient needs it), then phase 2's (the units), go to whichever worker asks
    next. The sparse rows are read where they lie, the next block's prefetched: copying them
    into visiting order each epoch measured no faster.

    ``replica`` >= 0 (this worker's index): each worker has its own params, grad and optimizer
    state, which it updates whole in phase 2 (the same steps in the same order: the replicas
    stay identical), and only phase 1 is shared, by fixed blocks (next_block). Then no weight
    moves between cores, and a worker needs no barrier after phase 2: it goes on to the next
    batch's phase 1, in the other half of Z, A and D (2 x batch_size rows), while the other may
    still read this batch's half. With ``by_inputs`` (schedule[3]; two workers, plain SGD, a
    first layer of tiles narrower than 8 vectors), the two instead split the first layer's
    weight rows, which stay in the model's params, and run by_inputs_batch: the first layer's
    step, a third of a 784-10-10 batch, is then shared too (0.85x the time of whole replicas).

    Worker 0 (whose replica is the model's, ``leader``: params, m and v) starts alone: it does
    not wait for the other threads to start. ``schedule`` = (rule, solo probe, team probe, by_inputs):
    once the others are ready and worker 0 has timed ``solo probe`` (>= 1) batches alone (not
    the call's first, whose caches are cold; those an earlier call timed count, when the caller
    leaves them in sync's SOLO_CYCLES and SOLO_BATCHES), they copy its replica and join it
    (join_worker_zero). After timing ``team probe`` batches together (not the one they copied
    in), it keeps them only if those took less time per batch (rule ADAPTIVE; KEEP_TEAM and
    LEAVE_AFTER_PROBE, for tests, decide regardless, and wait for the others to join). A shared
    batch costs its rows' trips between the cores, which vary with where the host places them:
    on this VM two workers took 0.8x the time of one, or 1.45x. No result depends on who did
    which block. What worker 0 measured is left in sync (codes.SOLO_CYCLES ...)."""
    n = order.size
    clip_norm = opt[5]
    by_inputs = schedule[3]
    n_units = units.shape[0]
    transposing = 1 if bufs[3].size > 0 else 0
    team = n_workers if replica < 0 else 1  # the workers sharing this batch's phase 1
    begin = first
    if replica > 0:
        begin = join_worker_zero(sync, params, opt[1], opt[2], leader, last)
        team = n_workers
    joined_at = -1 if replica == 0 else first  # worker 0: the batch the others joined at (-1: not yet)
    leaving = False
    solo_cycles, solo_batches, team_cycles, team_batches, alone_from = 0, 0, 0, 0, 0
    if replica == 0:  # batches an earlier call timed alone, if the caller passes them on
        solo_cycles, solo_batches = sync[SOLO_CYCLES], sync[SOLO_BATCHES]
    passed, base = 0, 0
    ready = False  # worker 0: the others wait to join (asleep), so a batch alone is timed fairly
    for batch in range(begin, last):
        if joined_at < 0 and n_workers > 1 and not ready and batch > first:
            if schedule[0] != ADAPTIVE:
                wait_until(sync, READY, n_workers - 1)
            ready = atomic_load(sync, READY) == n_workers - 1
        if ready and joined_at < 0 and solo_batches >= schedule[1]:
            atomic_add(sync, JOIN, batch + 1)
            joined_at, team = batch, n_workers
        started = cycles()
        start = batch * batch_size
        n_batch = min(batch_size, n - start)
        if by_inputs and team > 1:
            passed = by_inputs_batch(sync, params, grad, net, data, order, start, n_batch, batch_size, bufs, units,
                                     opt, losses, hits, replica, leader[0], batch - first, leaving, passed)
            if atomic_load(sync, ALONE) > 0:
                if replica > 0:
                    return
                team, alone_from = 1, batch + 2
        else:
            half = (batch % 2) * batch_size if replica >= 0 else 0
            ahead = team * BLOCK if replica >= 0 else BLOCK  # this worker's next block (next_block)
            bufs_now = (bufs[0][half:half + batch_size], bufs[1][half:half + batch_size],
                        bufs[2][half:half + batch_size], bufs[3], bufs[4], bufs[5], bufs[6], bufs[7])
            transpose_layers(params, net, bufs)
            inverse = inverse_weight(params, data, order, start, n_batch)
            n_tasks = (n_batch + BLOCK - 1) // BLOCK + transposing
            task = next_block(sync, base, -1, replica, team)
            while task < n_tasks:
                if task < transposing:  # first, as the longest task
                    transpose_batch(data[0], data[1], data[2], data[3], order, start, n_batch, bufs[3], bufs[4],
                                    bufs[5])
                else:
                    b0 = (task - transposing) * BLOCK
                    forward_backward_block(params, net, data, order, start, b0, min(n_batch, b0 + BLOCK), bufs_now,
                                           inverse, losses, hits, ahead)
                task = next_block(sync, base, task, replica, team)
            base += n_tasks + n_workers
            if team > 1:
                if leaving:  # the others see it past this barrier, and stop
                    atomic_add(sync, ALONE, 1)
                passed = barrier(sync, team, passed)
                if replica > 0 and atomic_load(sync, ALONE) > 0:
                    return
                if leaving:
                    team, alone_from = 1, batch + 2
            if clip_norm <= 0:
                # Plain SGD steps the first layer's weight rows inside the gradient's loop: p - lr * (g +
                # 0 * p) is p - lr * g, so that gradient (most of the parameters) is never stored. A
                # transposed batch steps by each row's whole sum (the same bits as summing first); the
                # per-example loop by each example's term (the same math, float rounding apart).
                plain = opt[0] == SGD and opt[3][batch - first, 3] == 0
                rate = opt[4][batch - first] if plain else params.dtype.type(0)
                u = next_unit(sync, base, -1, replica)
                while u < n_units:
                    accumulate_units(grad, params, rate, net, data, order, start, n_batch, bufs_now, units, u, u + 1)
                    update_units(params, grad, net, units, opt, batch - first, params.dtype.type(1), u, u + 1,
                                 rate != 0)
                    u = next_unit(sync, base, u, replica)
            else:  # clipping needs the whole gradient's norm before any update
                u = next_unit(sync, base, -1, replica)
                while u < n_units:
                    accumulate_units(grad, params, params.dtype.type(0), net, data, order, start, n_batch, bufs_now,
                                     units, u, u + 1)
                    u = next_unit(sync, base, u, replica)
                if replica < 0:
                    base += n_units + n_workers
                    passed = barrier(sync, n_workers, passed)
                squares = 0.0
                for i in range(grad.size):  # every worker sums it, in the same order
                    squares += np.float64(grad[i]) * np.float64(grad[i])
                scale = params.dtype.type(min(1.0, clip_norm / (np.sqrt(squares) + 1e-6)))
                if replica < 0:  # the updates clear the gradient's rows: none may start while a worker sums them
                    passed = barrier(sync, n_workers, passed)
                u = next_unit(sync, base, -1, replica)
                while u < n_units:
                    update_units(params, grad, net, units, opt, batch - first, scale, u, u + 1, False)
                    u = next_unit(sync, base, u, replica)
        if replica < 0:
            base += n_units + n_workers
            passed = barrier(sync, n_workers, passed)
        elif replica == 0:
            elapsed = cycles() - started
            if joined_at < 0:
                if ready:  # not the call's first batch either, whose caches are cold
                    solo_cycles, solo_batches = solo_cycles + elapsed, solo_batches + 1
            elif team > 1 and batch > joined_at and team_batches < schedule[2]:
                team_cycles, team_batches = team_cycles + elapsed, team_batches + 1
                if team_batches == schedule[2]:
                    leaving = schedule[0] == LEAVE_AFTER_PROBE or (
                        schedule[0] == ADAPTIVE and team_cycles * solo_batches >= solo_cycles * team_batches)
    if replica == 0:
        if joined_at < 0:  # the others have nothing left to join
            atomic_add(sync, JOIN, last + 1)
        sync[SOLO_CYCLES], sync[SOLO_BATCHES], sync[TEAM_CYCLES] = solo_cycles, solo_batches, team_cycles
        sync[TEAM_BATCHES], sync[ALONE_FROM] = team_batches, alone_from


@kernel
def batch_gradient(params, grad, net, data, order, bufs, units, losses, hits):
    """The mean gradient over the examples ``order`` (one batch), added into ``grad``; no update."""
    n_batch = order.size
    transpose_layers(params, net, bufs)
    inverse = inverse_weight(params, data, order, 0, n_batch)
    for b0 in range(0, n_batch, BLOCK):
        forward_backward_block(params, net, data, order, 0, b0, min(n_batch, b0 + BLOCK), bufs, inverse, losses,
                               hits, BLOCK)
    if bufs[3].size > 0:
        transpose_batch(data[0], data[1], data[2], data[3], order, 0, n_batch, bufs[3], bufs[4], bufs[5])
    accumulate_units(grad, params, params.dtype.type(0), net, data, order, 0, n_batch, bufs, units, 0, units.shape[0])


@kernel(nogil=True)
def predict_worker(sync, params, net, data, rows, Z, A, outputs, losses, hits):
    """Forward pass of every example, as one of the workers sharing ``sync`` (see sync.py), each
    taking the next block of BLOCK examples in turn: outputs (class probabilities or regression
    values), loss and hit (against the labels or targets in data; pass zeros when there are
    none). rows: 0, 1, ..., n - 1; Z, A: this worker's buffers, BLOCK rows each."""
    n = outputs.shape[0]
    block = next_task(sync, 0)
    while block * BLOCK < n:
        predict_block(params, net, data, rows, block * BLOCK, min(n, (block + 1) * BLOCK), Z, A, outputs, losses,
                      hits)
        block = next_task(sync, 0)


@kernel
def predict_block(params, net, data, rows, first, last, Z, A, outputs, losses, hits):
    """predict_worker's work for examples first..last-1, in the buffers Z and A (one row each)."""
    cols = net[3]
    k = outputs.shape[1]
    first_layer_forward(params, net, data, rows[first:last], Z[:last - first])
    for e in range(first, last):
        loss, predicted = forward_example(params, net, data, e, Z[e - first], A[e - first], False)
        losses[e] = loss
        hits[e] = predicted == data[4][e]
        for j in range(k):
            outputs[e, j] = A[e - first, cols[-2] + j]


@kernel(nogil=True)
def train_many_worker(tasks, params, grads, net, keys, data, orders, batch_size, first, last, bufs, units, opt, losses,
                      hits, syncs):
    """One worker's share of training K models of one shape: it takes the next model from the
    counter ``tasks`` (a sync array shared by the workers) until none is left, and trains it with
    train_worker as that model's only worker (each reading the sparse rows where they lie, in
    its own order).

    Row k of params, grads, keys (dropout), orders, of every array of bufs and of the optimizer's
    m, v, hyper and lrs belongs to model k. Models never wait for each other, and each runs
    exactly the single-worker kernel (with its own row of syncs), so each ends bit-identical to
    its own single run, whichever worker took it.
    """
    sizes, strides, offsets, cols, acts, dropout = net[0], net[1], net[2], net[3], net[4], net[5]
    kind, m, v, hyper, lrs, clip_norm = opt
    k = next_task(tasks, 0)
    while k < params.shape[0]:
        train_worker(1, syncs[k], params[k], grads[k], (sizes, strides, offsets, cols, acts, dropout, keys[k]), data,
                     orders[k], batch_size, first, last,
                     (bufs[0][k], bufs[1][k], bufs[2][k], bufs[3][k], bufs[4][k], bufs[5][k], bufs[6][k], bufs[7][k]),
                     units, (kind, m[k], v[k], hyper[k], lrs[k], clip_norm), losses[k], hits[k], -1,
                     (params[k], m[k], v[k]), (ADAPTIVE, 0, 0, 0))
        k = next_task(tasks, 0)
