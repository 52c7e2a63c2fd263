"""The fused minibatch loop: forward, loss, backward and update for a block of batches in one call.

Arguments travel in named tuples (kernels/args.py): ``net`` (the network's shape), ``data``
(the examples as sparse rows, their labels or targets and loss weights), ``bufs`` (a worker's
rows of Z, A, D and its transposed weights), ``opt`` (the update rule, its state and a row of
settings per batch); ``units``: the gradient work cut into disjoint row ranges (layer, first
row, end row), see layout.gradient_plan.

Each batch runs in two phases. Phase 1, over blocks of examples: forward pass, loss, and the
error signal of every layer (it needs only the weights). Phase 2, over row ranges of the
parameters: each range sums its gradient over the batch's examples in a fixed order and applies
the update to its own rows. Workers (train_worker, one per thread) share the phases' tasks in
one of four ways (see train_worker). No two threads write the same value and no sum depends on
who takes which task, so results are bit-identical for any number of threads.
"""

import numpy as np
from numba import njit

from .args import Buffers, Hyper, Net, Opt
from .codes import (AFTER_EXAMPLES, AFTER_HALVES, AFTER_NORM, AFTER_UPDATE, BEFORE_NORM, BLOCK, CHUNKS, RELU,
                    REPLICAS, SGD, SIGMOID, SOFTMAX, SPLIT, STOP, STOP_AT)
from .jit import kernel
from .layers import (
    activation_backward,
    activation_forward,
    add_bias_gradient,
    bce_backward,
    bce_forward,
    dense_backward_rows,
    dense_block_backward_input,
    dense_block_forward,
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
from .optim import rule_settings, update_segment
from .simd import lanes, prefetch, vadd, vload, vstore, vzero
from .sparse import half_range, prefetch_half, prefetch_row, transpose_batch
from .subnormals import flush_subnormals, restore_float_mode
from .sync import atomic_add, atomic_load, barrier, next_task
from .tuning import CHUNK_EXAMPLES, WIDE_BLOCK_MAX, WIDE_BLOCK_MIN_BYTES


# Phase 1 runs over blocks of BLOCK examples, layer by layer: the first layer tile by tile
# across the block (its W stays in cache), the other layers as matrix products over the block
# (layers.dense_block_forward), then each example's loss and output error, then the error
# signals back down, again a product over the block per layer.

@njit(inline="always")
def first_layer_forward(params, net, data, rows, Z):
    """The first layer's pre-activations of the examples whose inputs are sparse rows ``rows``,
    into the rows of Z."""
    sizes, strides, offsets = net.sizes, net.strides, net.offsets
    sparse_dense_forward(params, offsets[0], sizes[0], strides[0], data.indices, data.values, data.scale, data.indptr,
                         data.halves, rows,
                         Z, 0)


@njit(inline="always")
def hidden_forward_block(params, net, rows, b0, b1, Z, A, training, panel):
    """Forward pass of the examples in rows b0..b1-1 of Z and A from their first layer's
    pre-activations up to the output layer's (Z); rows[b]: example b's row in the data (for
    dropout's mask)."""
    sizes, strides, offsets, cols, acts, dropout, key = net
    n_layers = acts.size
    for l in range(n_layers):
        if l > 0:
            dense_block_forward(params, offsets[l], sizes[l], strides[l], True, A, cols[l - 1], Z, cols[l], b0, b1,
                                panel)
        if l < n_layers - 1:
            for b in range(b0, b1):
                a = A[b, cols[l]:cols[l + 1]]
                activation_forward(acts[l], Z[b, cols[l]:cols[l + 1]], a, sizes[l + 1])
                if training and dropout > 0:
                    dropout_apply(a, sizes[l + 1], key, rows[b], l, dropout)


@njit(inline="always")
def output_forward(net, data, e, z_row, a_row):
    """The output layer of example e from its pre-activations: its outputs (class probabilities,
    regression values or sigmoid probabilities) into a_row; returns (loss, hit): whether the
    prediction is right (the most probable class is the label; every sigmoid output is on its
    0/1 target's side of 1/2; never for regression)."""
    sizes, cols, acts = net.sizes, net.cols, net.acts
    n_layers = acts.size
    k = sizes[n_layers]
    z = z_row[cols[n_layers - 1]:]
    out = a_row[cols[n_layers - 1]:]
    if acts[n_layers - 1] == SIGMOID:
        return bce_forward(z, out, data.targets, e, k)
    if acts[n_layers - 1] != SOFTMAX:
        for j in range(k):
            out[j] = z[j]
        return mse_forward(z, data.targets, e, k), False
    log_partition = softmax_forward(z, out, k)
    predicted = 0
    for j in range(1, k):
        if z[j] > z[predicted]:
            predicted = j
    return log_partition - z[data.labels[e]], predicted == data.labels[e]


@njit(inline="always")
def output_backward(net, data, e, weight, z_row, a_row, d_row):
    """The output layer's error signal dL/dz of example e, scaled by its ``weight``."""
    sizes, cols, acts = net.sizes, net.cols, net.acts
    n_layers = acts.size
    last = cols[n_layers - 1]
    if acts[n_layers - 1] == SOFTMAX:
        softmax_xent_backward(a_row[last:], data.labels[e], weight, d_row[last:], sizes[n_layers])
    elif acts[n_layers - 1] == SIGMOID:
        bce_backward(a_row[last:], data.targets, e, weight, d_row[last:], sizes[n_layers])
    else:
        mse_backward(z_row[last:], data.targets, e, weight, d_row[last:], sizes[n_layers])


@njit(inline="always")
def transposed(bufs, l):
    """Whether layer l's input gradient comes from its transposed weights (transpose_layers):
    where bufs.weights_t has room for them (layout.batch_buffers leaves none for wide layers,
    whose input gradient is summed along W's rows, dense_block_backward_input)."""
    return bufs.t_offsets[l + 1] > bufs.t_offsets[l]


@njit(inline="always")
def hidden_backward_block(params, net, rows, b0, b1, bufs):
    """The error signal dL/dz of every hidden layer for rows b0..b1-1 of D, from the output
    layer's (output_backward) down; rows[b] as in hidden_forward_block."""
    sizes, strides, offsets, cols, acts, dropout, key = net
    Z, D = bufs.Z, bufs.D
    for l in range(acts.size - 1, 0, -1):
        if transposed(bufs, l):
            dense_block_forward(bufs.weights_t, bufs.t_offsets[l], sizes[l + 1], strides[l - 1], False, D, cols[l], D,
                                cols[l - 1], b0, b1, bufs.panel)
        else:
            dense_block_backward_input(params, offsets[l], sizes[l], strides[l], D, cols[l], D, cols[l - 1], b0, b1,
                                       Z, cols[l - 1], acts[l - 1] == RELU)
        for b in range(b0, b1):
            below = D[b, cols[l - 1]:cols[l]]
            if dropout > 0:
                dropout_apply(below, sizes[l], key, rows[b], l - 1, dropout)
            activation_backward(acts[l - 1], Z[b, cols[l - 1]:cols[l]], below, below, sizes[l])


@njit(inline="always")
def transpose_layers(params, net, bufs):
    """The weights of the narrow layers among 1, 2, ... transposed into bufs.weights_t (see
    hidden_backward_block)."""
    sizes, strides, offsets = net.sizes, net.strides, net.offsets
    weights_t, t_offsets = bufs.weights_t, bufs.t_offsets
    for l in range(1, sizes.size - 1):
        if transposed(bufs, l):
            transpose_weights(params, offsets[l], sizes[l], strides[l], sizes[l + 1], weights_t[t_offsets[l]:],
                              strides[l - 1])


@kernel
def forward_backward_block(params, net, data, order, start, b0, b1, bufs, inverse, losses, hits, ahead):
    """Phase 1 for the batch's examples b0..b1-1: the first layer tile by tile across them, then
    the other layers, each one's loss, and the error signals (``inverse``: 1 / the batch's total
    weight). ``ahead``: how far in ``order`` the next block this worker will do lies, for
    prefetching."""
    first_layer_forward(params, net, data, order[start + b0:start + b1], bufs.Z[b0:b1])
    upper_layers_block(params, net, data, order, start, b0, b1, bufs, inverse, losses, hits, ahead)


@njit(inline="always")
def upper_layers_block(params, net, data, order, start, b0, b1, bufs, inverse, losses, hits, ahead):
    """forward_backward_block from the first layer's pre-activations on."""
    Z, A, D = bufs.Z, bufs.A, bufs.D
    weights = data.weights
    rows = order[start:]
    hidden_forward_block(params, net, rows, b0, b1, Z, A, True, bufs.panel)
    for b in range(b0, b1):
        e = rows[b]
        if start + b + 2 * ahead < order.size:  # where the block after next lies, its label, weight
            later = order[start + b + 2 * ahead]
            prefetch(data.indptr, later), prefetch(data.labels, later), prefetch(data.weights, later)
        if start + b + ahead < order.size:  # the next block's inputs
            prefetch_row(data.indptr, data.indices, data.values, order[start + b + ahead])
        losses[start + b], hits[start + b] = output_forward(net, data, e, Z[b], A[b])
        output_backward(net, data, e, weights[e] * inverse, Z[b], A[b], D[b])
    hidden_backward_block(params, net, rows, b0, b1, bufs)


@njit(inline="always")
def block_examples(params, net, n_batch, n_workers):
    """Examples per block of phase 1: where a layer after the first (a dense product per block)
    has weights of WIDE_BLOCK_MIN_BYTES or more, each worker's share of the batch, a whole
    number of BLOCKs, up to WIDE_BLOCK_MAX (tuning.py); else BLOCK. The sums do not depend on
    the blocks (layers.py), only the time."""
    share = min(WIDE_BLOCK_MAX, n_batch // n_workers // BLOCK * BLOCK)
    if share > BLOCK:
        for l in range(1, net.strides.size):
            if net.sizes[l] * net.strides[l] * params.itemsize >= WIDE_BLOCK_MIN_BYTES:
                return share
    return BLOCK


@njit(inline="always")
def inverse_weight(params, data, order, start, n_batch):
    """1 / the batch's total loss weight (0 when it is 0), summed in a fixed order."""
    weights = data.weights
    total = params.dtype.type(0)
    for b in range(n_batch):
        total += weights[order[start + b]]
    return params.dtype.type(1) / total if total > 0 else params.dtype.type(0)


@njit(inline="always")
def rule_step(params, opt, batch):
    """What accumulate_units needs for the other layers' rows to take the step of opt's rule as
    their sums leave the registers (layers.dense_backward_rows; no clipping): (rule, m, v, its
    settings for the batch in row ``batch`` of opt.lrs)."""
    return opt.kind, opt.m, opt.v, rule_settings(opt.kind, params, opt.lrs[batch], opt.hyper, opt.step + batch,
                                                 params.dtype.type(1))


@njit(inline="always")
def no_step(params, grad):
    """As rule_step, for gradients stored in grad, not stepped."""
    zero = vzero(params)
    return -1, grad, grad, (zero, zero, zero, zero, zero, zero, zero, zero)


@kernel
def accumulate_units(grad, params, rate, net, data, order, start, n_batch, bufs, units, u0, u1, step):
    """Gradient rows of units u0..u1-1, summed over the batch in order. With ``step`` =
    rule_step(...) (no_step: stored), each tile of sums takes the rule's step as it leaves the
    registers, the gradient never stored: every row but a narrow first layer's (taken example
    by example), whose weight rows step right away with rate != 0 (plain SGD, rate = its lr;
    sparse_dense_backward). first_layer_stepped says which rows of the first layer stepped."""
    for u in range(u0, u1):
        accumulate_rows(grad, params, rate, net, data, order, start, n_batch, bufs, units[u, 0], units[u, 1],
                        units[u, 2], step)


@njit(inline="always")
def accumulate_rows(grad, params, rate, net, data, order, start, n_batch, bufs, l, r0, r1, step):
    """accumulate_units for rows r0..r1-1 of layer l."""
    sizes, strides, offsets, cols = net.sizes, net.strides, net.offsets, net.cols
    indptr, indices, values, scale = data.indptr, data.indices, data.values, data.scale
    A, D, col_ptr, col_example, col_value = bufs.A, bufs.D, bufs.col_ptr, bufs.col_example, bufs.col_value
    if l == 0 and col_ptr.size > 0:
        sparse_columns_backward(grad, offsets[0], strides[0], col_ptr, col_example, col_value, D, cols[0], r0,
                                min(r1, sizes[0]), params, step[1], step[2], step[0], step[3], rate != 0)
        if r1 == sizes[0] + 1:  # the bias row: its input is 1 for every example
            dense_backward_rows(grad, offsets[0], sizes[0], strides[0], A, 0, D, cols[0], n_batch,
                                sizes[0], sizes[0] + 1, params, step[1], step[2], step[0], step[3])
    elif l == 0:
        for b in range(n_batch):
            row = order[start + b]
            sparse_dense_backward(grad, params, rate, offsets[0], sizes[0], strides[0], indices, values, scale,
                                  indptr[row], indptr[row + 1], D[b, cols[0]:cols[1]], r0, r1)
    else:
        dense_backward_rows(grad, offsets[l], sizes[l], strides[l], A, cols[l - 1], D, cols[l],
                            n_batch, r0, r1, params, step[1], step[2], step[0], step[3])


@njit(inline="always")
def first_layer_stepped(net, bufs, rate):
    """How many of the first layer's rows accumulate_units steps with a rule_step: all of them
    (the bias too) from a transposed batch, the weight rows for plain SGD (rate != 0), else
    none."""
    if bufs.col_ptr.size > 0:
        return net.sizes[0] + 1
    return net.sizes[0] if rate != 0 else 0


@kernel
def update_units(params, grad, net, units, opt, batch, grad_scale, u0, u1, first_stepped, fused):
    """Apply the update rule to the rows of units u0..u1-1 but those accumulate_units stepped:
    the first layer's first ``first_stepped`` rows, and the other layers' if ``fused``;
    ``batch``: the batch's row in opt.lrs."""
    strides, offsets = net.strides, net.offsets
    for u in range(u0, u1):
        l, r0, r1 = units[u, 0], units[u, 1], units[u, 2]
        if l > 0 and fused:
            continue
        if l == 0:
            r0 = max(r0, first_stepped)
        update_segment(opt.kind, params, grad, opt.m, opt.v, offsets[l] + r0 * strides[l],
                       offsets[l] + r1 * strides[l], opt.lrs[batch], opt.hyper, opt.step + batch, grad_scale)


@kernel(nogil=True)
def train_worker(worker, n_workers, plan, sync, params, grad, net, data, order, batch_size, first, last, bufs, units,
                 opt, losses, hits):
    """train_batches with subnormals flushed to zero in this thread (kernels/subnormals.py)."""
    mode = flush_subnormals()
    train_batches(worker, n_workers, plan, sync, params, grad, net, data, order, batch_size, first, last, bufs, units,
                  opt, losses, hits)
    restore_float_mode(mode)


@njit(inline="always")
def train_batches(worker, n_workers, plan, sync, params, grad, net, data, order, batch_size, first, last, bufs, units,
                  opt, losses, hits):
    """Batches first..last-1 of an epoch that visits examples order[0], order[1], ..., as worker
    ``worker`` of the ``n_workers`` that run this at once, each in its own thread, sharing
    ``sync`` (the protocol: sync.py), the data, and Z, A and D; bufs.weights_t is each worker's own
    (it transposes the weights for itself).

    Per batch, phase 1 (forward and backward passes of blocks of examples, and transposing the
    batch by input unit when the first layer's gradient needs it), a barrier, then phase 2 (the
    gradient and update of each unit of rows). ``plan`` says how the workers share a batch:
    - SHARED: params, grad and the optimizer's state are the model's. Each task of either phase
      goes to whichever worker asks next, and a second barrier ends phase 2.
    - REPLICAS (first layers narrow enough to take their gradient example by example): each
      worker has its own copy of params, grad and optimizer state, identical at the start, and
      does all of phase 2 on it, so the copies stay identical and no weight moves between
      cores. Worker w does phase 1's blocks w, w + n_workers, ... (its rows stay in its cache).
      No barrier ends phase 2: the next batch's phase 1 writes the other half of Z, A and D
      (2 x batch_size rows), while another worker may still read this batch's half.
    - SPLIT: two workers, plain SGD, a narrow first layer; see split_batch.
    - CHUNKS: large batches, a narrow first layer, any number of workers; see chunked_batch.
    The call ends early, after a batch, when the caller asks (sync's STOP) or a wait gives up."""
    n = order.size
    clip_norm = opt.clip_norm
    n_units = units.shape[0]
    transposing = 1 if bufs.col_ptr.size > 0 else 0
    replicas = plan == REPLICAS
    passed, base = 0, 0
    for batch in range(first, last):
        start = batch * batch_size
        n_batch = min(batch_size, n - start)
        if plan == CHUNKS:
            passed, base = chunked_batch(sync, worker, n_workers, params, grad, net, data, order, start, n_batch, bufs,
                                         units, opt, losses, hits, batch, batch - first, base, passed)
            if passed < 0 or atomic_load(sync, STOP_AT) == batch + 1:
                return
            continue
        if plan == SPLIT:
            passed = split_batch(sync, worker, params, grad, net, data, order, start, n_batch, batch_size, bufs, units,
                                 opt, losses, hits, batch, batch - first, passed)
            if passed < 0 or atomic_load(sync, STOP_AT) == batch + 1:
                return
            continue
        rows = (batch % 2) * batch_size if replicas else 0
        here = Buffers(bufs.Z[rows:rows + batch_size], bufs.A[rows:rows + batch_size], bufs.D[rows:rows + batch_size],
                       bufs.col_ptr, bufs.col_example, bufs.col_value, bufs.weights_t, bufs.t_offsets, bufs.panel)
        transpose_layers(params, net, here)
        inverse = inverse_weight(params, data, order, start, n_batch)
        block = block_examples(params, net, n_batch, n_workers)
        n_tasks = (n_batch + block - 1) // block + transposing
        task = worker if replicas else next_task(sync, base)
        while task < n_tasks:
            if task < transposing:  # first, as the longest task
                transpose_batch(data.indptr, data.indices, data.values, data.scale, order, start, n_batch, bufs.col_ptr,
                                bufs.col_example, bufs.col_value)
            else:
                b0 = (task - transposing) * block
                forward_backward_block(params, net, data, order, start, b0, min(n_batch, b0 + block), here, inverse,
                                       losses, hits, n_workers * block if replicas else block)
            task = task + n_workers if replicas else next_task(sync, base)
        base += n_tasks + n_workers
        if replicas:
            ask_to_stop(sync, worker, batch)
        passed = barrier(sync, n_workers, passed, batch, AFTER_EXAMPLES, worker)
        if passed < 0:
            return
        if clip_norm <= 0:
            # Every rule steps each tile of sums as it leaves the registers, so the gradient is never
            # stored, read back and cleared: the same bits as summing first. But a narrow first
            # layer sums example by example: there plain SGD steps by each example's term, p - lr *
            # (g + 0 * p) being p - lr * g (the same math, float rounding apart), and other rules
            # store its gradient.
            plain = opt.kind == SGD and opt.hyper.weight_decay == 0
            rate = opt.lrs[batch - first] if plain else params.dtype.type(0)
            step = rule_step(params, opt, batch - first)
            u = 0 if replicas else next_task(sync, base)
            while u < n_units:
                accumulate_units(grad, params, rate, net, data, order, start, n_batch, here, units, u, u + 1, step)
                update_units(params, grad, net, units, opt, batch - first, params.dtype.type(1), u, u + 1,
                             first_layer_stepped(net, here, rate), True)
                u = u + 1 if replicas else next_task(sync, base)
        else:  # clipping needs the whole gradient's norm before any update
            u = 0 if replicas else next_task(sync, base)
            while u < n_units:
                accumulate_units(grad, params, params.dtype.type(0), net, data, order, start, n_batch, here, units,
                                 u, u + 1, no_step(params, grad))
                u = u + 1 if replicas else next_task(sync, base)
            if not replicas:
                base += n_units + n_workers
                passed = barrier(sync, n_workers, passed, batch, BEFORE_NORM, worker)
                if passed < 0:
                    return
            squares = 0.0
            for i in range(grad.size):  # every worker sums it, in the same order
                squares += np.float64(grad[i]) * np.float64(grad[i])
            scale = params.dtype.type(min(1.0, clip_norm / (np.sqrt(squares) + 1e-6)))
            if not replicas:  # the updates clear the gradient's rows: none may start while a worker sums them
                passed = barrier(sync, n_workers, passed, batch, AFTER_NORM, worker)
                if passed < 0:
                    return
            u = 0 if replicas else next_task(sync, base)
            while u < n_units:
                update_units(params, grad, net, units, opt, batch - first, scale, u, u + 1, 0, False)
                u = u + 1 if replicas else next_task(sync, base)
        if not replicas:
            base += n_units + n_workers
            ask_to_stop(sync, worker, batch)
            passed = barrier(sync, n_workers, passed, batch, AFTER_UPDATE, worker)
            if passed < 0:
                return
        if atomic_load(sync, STOP_AT) == batch + 1:
            return


# Two workers that split the first layer by input units (plan SPLIT): each owns the weight rows
# of one half of the inputs (prepared.balanced_column), and is the only one to read or write
# them; both use the model's parameters, and worker 0 alone steps the rest of them. Per batch:
# A, each sums its half of every example's first layer (into its own half of Z); past a barrier,
# B, each finishes the forward and backward passes of its blocks of examples from the two halves;
# past another, C, each steps its half of W's rows for every example, and worker 0 the rest of
# the model. The next batch's B reads what worker 0 stepped in C, past the next batch's first
# barrier. Replicas of the whole model would both step all of W's rows: at 784-10-10 that step
# is a third of a batch.

@njit(inline="always")
def split_batch(sync, half, params, grad, net, data, order, start, n_batch, batch_size, bufs, units, opt, losses, hits,
                batch, step, passed):
    """One batch as worker ``half`` of two that split the first layer (see above); ``step``:
    the batch's row in opt's learning rates. Returns the barriers passed (-1: the call ends)."""
    Z = bufs.Z
    here = Buffers(Z[:batch_size], bufs.A[:batch_size], bufs.D[:batch_size], bufs.col_ptr, bufs.col_example,
                   bufs.col_value, bufs.weights_t, bufs.t_offsets, bufs.panel)
    inverse = inverse_weight(params, data, order, start, n_batch)
    first_layer_half(params, net, data, order[start:start + n_batch], Z[half * batch_size:], half)
    passed = barrier(sync, 2, passed, batch, AFTER_HALVES, half)
    if passed < 0:
        return passed
    transpose_layers(params, net, here)  # past the barrier: worker 0's step of the last batch is done
    for task in range(half, (n_batch + BLOCK - 1) // BLOCK, 2):
        b0, b1 = task * BLOCK, min(n_batch, (task + 1) * BLOCK)
        add_halves(Z, batch_size, b0, b1, net.strides[0])
        upper_layers_block(params, net, data, order, start, b0, b1, here, inverse, losses, hits, order.size)
    ask_to_stop(sync, half, batch)
    passed = barrier(sync, 2, passed, batch, AFTER_EXAMPLES, half)
    if passed < 0:
        return passed
    rate = opt.lrs[step]
    first_layer_half_step(params, net, data, order, start, n_batch, batch_size, bufs.D, rate, half)
    if half == 0:
        upper_units_step(grad, params, rate, net, data, order, start, n_batch, here, units, opt, step)
    return passed


@kernel
def first_layer_half(params, net, data, rows, Z, half):
    """A: half ``half`` of the first layer's pre-activations (layers.half_sum) of the examples
    whose inputs are sparse rows ``rows``, into the rows of Z."""
    sizes, strides, offsets = net.sizes, net.strides, net.offsets
    indptr, indices, values, scale, halves = data.indptr, data.indices, data.values, data.scale, data.halves
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
    offsets, strides, cols = net.offsets, net.strides, net.cols
    indptr, indices, values, scale, halves = data.indptr, data.indices, data.values, data.scale, data.halves
    for b in range(n_batch):
        if start + batch_size + b < order.size:
            prefetch_half(indptr, halves, indices, values, order[start + batch_size + b], half)
        if start + 2 * batch_size + b < order.size:
            later = order[start + 2 * batch_size + b]
            prefetch(indptr, later), prefetch(halves, later), prefetch(data.labels, later), prefetch(data.weights, later)
        row = order[start + b]
        lo, hi = half_range(indptr, halves, row, half)
        sparse_rows_step(params, -rate, offsets[0], strides[0], indices, values, scale, lo, hi, D[b, cols[0]:cols[1]])


@kernel
def upper_units_step(grad, params, rate, net, data, order, start, n_batch, bufs, units, opt, step):
    """C: the rest of the SGD step: the first layer's bias, then the other layers' units (one
    per layer, as gradient_plan makes them for a single worker)."""
    sizes, strides, offsets, cols = net.sizes, net.strides, net.offsets, net.cols
    D = bufs.D
    bias = offsets[0] + sizes[0] * strides[0]
    for b in range(n_batch):
        add_bias_gradient(grad, bias, strides[0], D[b, cols[0]:cols[1]])
    fused = rule_step(params, opt, step)
    for u in range(units.shape[0]):
        if units[u, 0] > 0:
            accumulate_units(grad, params, rate, net, data, order, start, n_batch, bufs, units, u, u + 1, fused)
    update_units(params, grad, net, units, opt, step, params.dtype.type(1), 0, units.shape[0], net.sizes[0], True)


# Large batches (plan CHUNKS), such as the tutorial's full batch: the batch's examples in chunks
# of CHUNK_EXAMPLES, taken by whichever worker asks next. A chunk sums its gradient into a buffer
# of its own (row c of ``grad``, which holds one per chunk) block by block, right after each
# block's forward and backward passes, while the block's inputs and its rows of Z, A and D are
# still in cache (the other plans write them for the whole batch, then read them back). Past a
# barrier, each unit of rows adds the chunks' sums in chunk order and takes the rule's step.
# The chunks are cut by the batch alone, so the sums do not depend on the number of workers.

@njit(inline="always")
def chunked_batch(sync, worker, n_workers, params, grad, net, data, order, start, n_batch, bufs, units, opt, losses,
                  hits, batch, step, base, passed):
    """One batch of plan CHUNKS (see above) as worker ``worker``; ``step``: the batch's row in
    opt's learning rates. Returns the barriers passed (-1: the call ends) and the task base."""
    rows = worker * BLOCK  # a block's rows of Z, A and D of this worker's own
    here = Buffers(bufs.Z[rows:rows + BLOCK], bufs.A[rows:rows + BLOCK], bufs.D[rows:rows + BLOCK], bufs.col_ptr,
                   bufs.col_example, bufs.col_value, bufs.weights_t, bufs.t_offsets, bufs.panel)
    transpose_layers(params, net, here)
    inverse = inverse_weight(params, data, order, start, n_batch)
    n_params = params.size
    n_chunks = (n_batch + CHUNK_EXAMPLES - 1) // CHUNK_EXAMPLES
    chunk = next_task(sync, base)
    while chunk < n_chunks:
        first = chunk * CHUNK_EXAMPLES
        chunk_gradient(grad[chunk * n_params:(chunk + 1) * n_params], params, net, data, order, start + first,
                       min(CHUNK_EXAMPLES, n_batch - first), here, inverse, losses, hits)
        chunk = next_task(sync, base)
    base += n_chunks + n_workers
    passed = barrier(sync, n_workers, passed, batch, AFTER_EXAMPLES, worker)
    if passed < 0:
        return passed, base
    u = next_task(sync, base)
    while u < units.shape[0]:
        add_chunks(grad, n_params, n_chunks, net, units, u)
        update_units(params, grad, net, units, opt, step, params.dtype.type(1), u, u + 1, 0, False)
        u = next_task(sync, base)
    base += units.shape[0] + n_workers
    ask_to_stop(sync, worker, batch)
    return barrier(sync, n_workers, passed, batch, AFTER_UPDATE, worker), base


@kernel
def chunk_gradient(grad, params, net, data, order, start, n, bufs, inverse, losses, hits):
    """grad = the gradient of examples order[start:start + n] (weighted by ``inverse``, 1 / the
    batch's total weight), block after block: each block's passes, then its sums, layer by layer."""
    grad[:] = 0
    stored = no_step(params, grad)
    for b0 in range(0, n, BLOCK):
        n_block = min(BLOCK, n - b0)
        forward_backward_block(params, net, data, order, start + b0, 0, n_block, bufs, inverse, losses, hits, BLOCK)
        for l in range(net.acts.size):
            accumulate_rows(grad, params, params.dtype.type(0), net, data, order, start + b0, n_block, bufs, l, 0,
                            net.sizes[l] + 1, stored)


@kernel
def add_chunks(grad, n_params, n_chunks, net, units, u):
    """Unit u's rows of chunk 0's gradient (the start of ``grad``) += those of chunks 1, 2, ...,
    in that order."""
    l, r0, r1 = units[u, 0], units[u, 1], units[u, 2]
    lo, hi = net.offsets[l] + r0 * net.strides[l], net.offsets[l] + r1 * net.strides[l]
    for c in range(1, n_chunks):
        at = c * n_params
        for i in range(lo, hi):
            grad[i] += grad[at + i]


@njit(inline="always")
def ask_to_stop(sync, worker, batch):
    """Worker 0, before the batch's last barrier: when the caller asked to stop, name this batch
    as the last (sync.py)."""
    if worker == 0 and atomic_load(sync, STOP) > 0:
        atomic_add(sync, STOP_AT, batch + 1)


@kernel
def batch_gradient(params, grad, net, data, order, bufs, units, losses, hits):
    """The mean gradient over the examples ``order`` (one batch), added into ``grad``; no update.
    Subnormals are flushed to zero, as in training."""
    mode = flush_subnormals()
    n_batch = order.size
    transpose_layers(params, net, bufs)
    inverse = inverse_weight(params, data, order, 0, n_batch)
    for b0 in range(0, n_batch, BLOCK):
        forward_backward_block(params, net, data, order, 0, b0, min(n_batch, b0 + BLOCK), bufs, inverse, losses,
                               hits, BLOCK)
    if bufs.col_ptr.size > 0:
        transpose_batch(data.indptr, data.indices, data.values, data.scale, order, 0, n_batch, bufs.col_ptr,
                        bufs.col_example, bufs.col_value)
    accumulate_units(grad, params, params.dtype.type(0), net, data, order, 0, n_batch, bufs, units, 0, units.shape[0],
                     no_step(params, grad))
    restore_float_mode(mode)


@kernel(nogil=True)
def predict_worker(sync, params, net, data, rows, Z, A, outputs, losses, hits):
    """Forward pass of every example, as one of the workers sharing ``sync`` (see sync.py), each
    taking the next block of BLOCK examples in turn: outputs (class probabilities or regression
    values), loss and hit (against the labels or targets in data; pass zeros when there are
    none). rows: 0, 1, ..., n - 1; Z, A: this worker's buffers, BLOCK rows each. Subnormals are
    flushed to zero, as in training."""
    mode = flush_subnormals()
    n = outputs.shape[0]
    block = next_task(sync, 0)
    while block * BLOCK < n:
        predict_block(params, net, data, rows, block * BLOCK, min(n, (block + 1) * BLOCK), Z, A, outputs, losses,
                      hits)
        block = next_task(sync, 0)
    restore_float_mode(mode)


@kernel
def predict_block(params, net, data, rows, first, last, Z, A, outputs, losses, hits):
    """predict_worker's work for examples first..last-1, in the buffers Z and A (one row each)."""
    cols = net.cols
    k = outputs.shape[1]
    first_layer_forward(params, net, data, rows[first:last], Z[:last - first])
    hidden_forward_block(params, net, rows[first:], 0, last - first, Z, A, False, Z[0, :0])
    for e in range(first, last):
        losses[e], hits[e] = output_forward(net, data, e, Z[e - first], A[e - first])
        for j in range(k):
            outputs[e, j] = A[e - first, cols[-2] + j]


@kernel(nogil=True)
def train_many_worker(tasks, plan, params, grads, net, keys, data, orders, batch_size, first, last, bufs, units, opt,
                      losses, hits, syncs):
    """One worker's share of training K models of one shape: it takes the next model from the
    counter ``tasks`` (a sync array shared by the workers) until none is left, and trains it with
    train_worker as that model's only worker, the ``plan`` way (SHARED, or CHUNKS for large
    batches, as the model's own fit takes them), each reading the sparse rows where they lie, in
    its own order.

    Row k of params, grads, keys (dropout), orders, of every array of bufs and of the optimizer's
    m, v, settings (each field of opt.hyper an array), lrs and step belongs to model k. Models never wait for each other, and each runs
    exactly the single-worker kernel (with its own row of syncs), so each ends bit-identical to
    its own single run, whichever worker took it.
    """
    k = next_task(tasks, 0)
    while k < params.shape[0]:
        own_net = Net(net.sizes, net.strides, net.offsets, net.cols, net.acts, net.dropout, keys[k])
        own_bufs = Buffers(bufs.Z[k], bufs.A[k], bufs.D[k], bufs.col_ptr[k], bufs.col_example[k], bufs.col_value[k],
                           bufs.weights_t[k], bufs.t_offsets[k], bufs.panel[k])
        hyper = opt.hyper
        own_opt = Opt(opt.kind, opt.m[k], opt.v[k],
                      Hyper(hyper.beta1[k], hyper.beta2[k], hyper.eps[k], hyper.weight_decay[k]), opt.lrs[k],
                      opt.clip_norm, opt.step[k])
        train_worker(0, 1, plan, syncs[k], params[k], grads[k], own_net, data, orders[k], batch_size, first, last,
                     own_bufs, units, own_opt, losses[k], hits[k])
        if atomic_load(syncs[k], STOP_AT) > 0:  # stopped: no model starts after this one
            return
        k = next_task(tasks, 0)
