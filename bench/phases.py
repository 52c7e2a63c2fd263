"""Time each phase of the fused training loop separately, one thread, over one epoch of MNIST.

    python -m bench.phases [H]     # 784-H-10, batch 64, SGD; fastest and median of 7 passes per phase

Phase 1 is the forward pass, loss and error signals over the batch's examples; phase 2 is the
gradient summed over each batch (for wide first layers, over the batch transposed by input unit),
then the update (fastnn/kernels/train.py).
"""

import os
import sys
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

import fastnn  # noqa: E402
from fastnn.data.datasets import load_mnist  # noqa: E402
from fastnn.kernels.args import Opt  # noqa: E402
from fastnn.layout import batch_buffers, gradient_plan  # noqa: E402
from fastnn.kernels.sparse import transpose_batch  # noqa: E402
from fastnn.kernels.train import (BLOCK, accumulate_units, no_step, forward_backward_block, inverse_weight,  # noqa: E402
                                  transpose_layers, update_units)


@njit
def phase1(params, net, data, order, bufs, losses, hits, n_batches, batch_size):
    for batch in range(n_batches):
        start = batch * batch_size
        n_batch = min(batch_size, order.size - start)
        transpose_layers(params, net, bufs)
        inverse = inverse_weight(params, data, order, start, n_batch)
        for b0 in range(0, n_batch, BLOCK):
            forward_backward_block(params, net, data, order, start, b0, min(n_batch, b0 + BLOCK), bufs, inverse,
                                   losses, hits, BLOCK)


@njit
def phase2_gradient(grad, net, data, order, bufs, units, n_batches, batch_size):
    for batch in range(n_batches):
        start = batch * batch_size
        n_batch = min(batch_size, order.size - start)
        if bufs[3].size > 0:
            transpose_batch(data[0], data[1], data[2], data[3], order, start, n_batch, bufs[3], bufs[4], bufs[5])
        accumulate_units(grad, grad, grad.dtype.type(0), net, data, order, start, n_batch, bufs, units, 0,
                         units.shape[0], no_step(grad, grad))


@njit
def phase2_transpose(data, order, bufs, n_batches, batch_size):
    for batch in range(n_batches):
        start = batch * batch_size
        transpose_batch(data[0], data[1], data[2], data[3], order, start, min(batch_size, order.size - start),
                        bufs[3], bufs[4], bufs[5])


@njit
def phase2_update(params, grad, net, units, opt, n_batches):
    for batch in range(n_batches):
        update_units(params, grad, net, units, opt, batch, params.dtype.type(1), 0, units.shape[0], 0, False)


def main(hidden: int = 10, batch_size: int = 64) -> None:
    mnist = load_mnist(os.path.join(os.environ.get("FASTNN_DATA", "../shared/data"), "mnist"))
    model = fastnn.MLP([784, hidden, 10], seed=0, pixels=True)  # uint8 pixels, read as bytes
    examples = model._examples(mnist.train_images, mnist.train_labels)
    data = examples.kernel_tuple()
    n = mnist.train_images.shape[0]
    n_batches = -(-n // batch_size)
    bufs = batch_buffers(model.layout, examples.rows, batch_size)
    grad = np.zeros(model.layout.n_params, model.dtype)
    units = gradient_plan(model.layout, 1)
    losses, hits, order = np.empty(n, model.dtype), np.empty(n, np.bool_), np.arange(n)
    sgd = fastnn.SGD(lr=0.1)
    opt = Opt(sgd.code, np.zeros(0, model.dtype), np.zeros(0, model.dtype), sgd.settings(),
              np.full(n_batches, 0.1, model.dtype), 0.0, 1)
    params, net = model._params.copy(), model._net(0)
    phases = [("phase 1: forward, loss, error signals",
               lambda: phase1(params, net, data, order, bufs, losses, hits, n_batches, batch_size)),
              ("phase 2: gradients", lambda: phase2_gradient(grad, net, data, order, bufs, units, n_batches,
                                                             batch_size)),
              ("phase 2: SGD update", lambda: phase2_update(params, grad, net, units, opt, n_batches))]
    if bufs[3].size > 0:
        phases.insert(2, ("  of which transposing the batch",
                          lambda: phase2_transpose(data, order, bufs, n_batches, batch_size)))
    for name, run in phases:
        run()  # compile
        seconds = []
        for _ in range(7):
            started = time.perf_counter()
            run()
            seconds.append(time.perf_counter() - started)
        print(f"784-{hidden}-10  {name:40s} {1000 * min(seconds):7.1f} ms per epoch, median {1000 * np.median(seconds):.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
