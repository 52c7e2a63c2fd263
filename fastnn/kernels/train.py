"""The fused minibatch loop: forward, loss, backward and update for a block of batches in one call.

Arguments travel in small tuples:
  net   = (sizes, strides, offsets, cols, acts): layer widths, the same padded to whole SIMD
          vectors, each layer's start in the flat parameter buffer, each layer's first column in
          the per-batch activation buffers, activations;
  data  = (indptr, indices, values, scale, labels): the inputs as sorted sparse rows (only the
          non-zero inputs, with uint8 pixels scaled by ``scale`` on the fly) and int32 labels;
  bufs  = (Z, A, D): pre-activations, activations and their gradients, one row per example of
          the batch;
  plan  = (units, assign_ptr, assign): the gradient work split into disjoint row ranges
          (layer, first row, last row), and which ranges each thread takes.

Each batch runs two parallel phases. Phase 1, over examples: forward pass, loss, and the error
signal of every layer (it needs only the weights). Phase 2, over row ranges of the parameters:
each range sums its gradient over the batch's examples in a fixed order and applies the update
to its own rows. No two threads write the same value and no sum depends on how the work is
split, so results are bit-identical for any number of threads.
"""

import numpy as np
from numba import njit, prange

from .layers import (
    activation_backward,
    activation_forward,
    dense_backward_input,
    dense_backward_rows,
    dense_forward,
    softmax_forward,
    softmax_xent_backward,
    sparse_dense_backward,
    sparse_dense_forward,
)
from .optim import sgd_update


@njit(cache=True)
def forward_example(params, net, data, e, z_row, a_row):
    """Forward pass of example e; returns (cross-entropy loss, predicted class)."""
    sizes, strides, offsets, cols, acts = net
    indptr, indices, values, scale, labels = data
    n_layers = acts.size
    for l in range(n_layers):
        n_in, n_out = sizes[l], sizes[l + 1]
        z = z_row[cols[l]:cols[l + 1]]
        if l == 0:
            sparse_dense_forward(params, offsets[0], n_in, strides[0], indices, values, scale,
                                 indptr[e], indptr[e + 1], z)
        else:
            dense_forward(params, offsets[l], n_in, strides[l], a_row[cols[l - 1]:cols[l]], z)
        if l < n_layers - 1:
            activation_forward(acts[l], z, a_row[cols[l]:cols[l + 1]], n_out)
    k = sizes[n_layers]
    z = z_row[cols[n_layers - 1]:]
    log_partition = softmax_forward(z, a_row[cols[n_layers - 1]:], k)
    predicted = 0
    for j in range(1, k):
        if z[j] > z[predicted]:
            predicted = j
    return log_partition - z[labels[e]], predicted


@njit(cache=True)
def backward_example(params, net, label, weight, z_row, a_row, d_row):
    """Error signal dL/dz of every layer for one example, from its forward pass."""
    sizes, strides, offsets, cols, acts = net
    n_layers = acts.size
    last = cols[n_layers - 1]
    softmax_xent_backward(a_row[last:], label, weight, d_row[last:], sizes[n_layers])
    for l in range(n_layers - 1, 0, -1):
        below = d_row[cols[l - 1]:cols[l]]
        dense_backward_input(params, offsets[l], sizes[l], strides[l], d_row[cols[l]:cols[l + 1]], below)
        activation_backward(acts[l - 1], z_row[cols[l - 1]:cols[l]], a_row[cols[l - 1]:cols[l]],
                            below, below, sizes[l])


@njit(inline="always")
def forward_backward_batch(params, net, data, order, start, n_batch, bufs, losses, hits):
    """Phase 1, parallel over the batch's examples."""
    Z, A, D = bufs
    labels = data[4]
    weight = params.dtype.type(1) / params.dtype.type(n_batch)  # gradient of the batch mean
    for b in prange(n_batch):
        e = order[start + b]
        loss, predicted = forward_example(params, net, data, e, Z[b], A[b])
        losses[start + b] = loss
        hits[start + b] = predicted == labels[e]
        backward_example(params, net, labels[e], weight, Z[b], A[b], D[b])


@njit(inline="always")
def gradient_and_update(params, grad, net, data, order, start, n_batch, bufs, plan, lr, update):
    """Phase 2, parallel over disjoint row ranges of the parameters."""
    sizes, strides, offsets, cols, acts = net
    indptr, indices, values, scale, labels = data
    Z, A, D = bufs
    units, assign_ptr, assign = plan
    for t in prange(assign_ptr.size - 1):
        for q in range(assign_ptr[t], assign_ptr[t + 1]):
            l, r0, r1 = units[assign[q], 0], units[assign[q], 1], units[assign[q], 2]
            n_in, stride = sizes[l], strides[l]
            if l == 0:
                for b in range(n_batch):
                    e = order[start + b]
                    sparse_dense_backward(grad, offsets[0], n_in, stride, indices, values, scale,
                                          indptr[e], indptr[e + 1], D[b, cols[0]:cols[1]], r0, r1)
            else:
                dense_backward_rows(grad, offsets[l], n_in, stride, A, cols[l - 1], D, cols[l],
                                    n_batch, r0, r1)
            if update:
                sgd_update(params, grad, offsets[l] + r0 * stride, offsets[l] + r1 * stride, lr)


@njit(inline="always")
def train_batches(params, grad, net, data, order, batch_size, first, last, lr, bufs, plan, losses, hits):
    """Batches first..last-1 of the epoch whose example order is ``order``."""
    n = order.size
    for batch in range(first, last):
        start = batch * batch_size
        n_batch = min(batch_size, n - start)
        forward_backward_batch(params, net, data, order, start, n_batch, bufs, losses, hits)
        gradient_and_update(params, grad, net, data, order, start, n_batch, bufs, plan, lr, True)


# Two compiled copies of the same loop: threads pay only where a batch has enough work to share.
@njit(cache=True, parallel=True)
def train_batches_parallel(params, grad, net, data, order, batch_size, first, last, lr, bufs, plan,
                           losses, hits):
    train_batches(params, grad, net, data, order, batch_size, first, last, lr, bufs, plan, losses, hits)


@njit(cache=True)
def train_batches_serial(params, grad, net, data, order, batch_size, first, last, lr, bufs, plan,
                         losses, hits):
    train_batches(params, grad, net, data, order, batch_size, first, last, lr, bufs, plan, losses, hits)


@njit(cache=True)
def batch_gradient(params, grad, net, data, order, bufs, plan, losses, hits):
    """The mean gradient over the examples ``order`` (one batch), added into ``grad``; no update."""
    n_batch = order.size
    forward_backward_batch(params, net, data, order, 0, n_batch, bufs, losses, hits)
    gradient_and_update(params, grad, net, data, order, 0, n_batch, bufs, plan, params.dtype.type(0), False)


@njit(cache=True, parallel=True)
def predict_rows(params, net, data, probs, losses, hits):
    """Forward pass of every example: class probabilities, loss and hit (needs labels in data)."""
    sizes, strides, offsets, cols, acts = net
    n = probs.shape[0]
    k = probs.shape[1]
    chunk = 256
    for c in prange((n + chunk - 1) // chunk):
        z_row = np.zeros(cols[-1], dtype=params.dtype)
        a_row = np.zeros(cols[-1], dtype=params.dtype)
        for e in range(c * chunk, min(n, (c + 1) * chunk)):
            loss, predicted = forward_example(params, net, data, e, z_row, a_row)
            losses[e] = loss
            hits[e] = predicted == data[4][e]
            for j in range(k):
                probs[e, j] = a_row[cols[-2] + j]
