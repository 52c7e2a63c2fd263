"""The dense layers' matrix products against the machine's SGEMM, one core each.

    python -m bench.products [--shapes 128x1024x1024,64x256x128] [--dtype float32] [--repeats 20]
    python -m bench.products --density 0.05   # inputs mostly zero, as a sparse ReLU layer's

For each shape BxIxO (batch rows, layer inputs, layer outputs), times fastnn's three products
of a dense layer over a batch, as phase 1 and 2 run them (kernels/layers.py):
- forward: Z = A W + b (dense_block_forward, in phase 1's blocks: 16 rows, or up to 128 where W
  takes WIDE_BLOCK_MIN_BYTES or more);
- input gradient: dA = dZ W^T (dense_block_backward_input for wide layers; dense_block_forward
  on the transposed weights for narrow ones, as hidden_backward_block chooses);
- weight gradient: dW = A^T dZ over the whole batch (dense_backward_rows);
and numpy's matmul of the same shapes on one BLAS thread. Prints GFLOP/s (2 x B x I x O per
product; fastnn's padded columns are not counted) and each product's rate over the BLAS rate.
With --density P < 1, each input is non-zero with probability P: the forward product and the
weight gradient skip zeros where most of a group's are (design.md), so their figures are the
dense product's FLOPs over the time taken.
"""

import argparse
import time

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

from fastnn.kernels.layers import (dense_backward_rows, dense_block_backward_input, dense_block_forward,
                                   transpose_weights)
from fastnn.kernels.simd import vzero
from fastnn.kernels.tuning import BLOCK, DOT_MIN_VECTORS, PANEL_ROWS, WIDE_BLOCK_MAX, WIDE_BLOCK_MIN_BYTES
from fastnn.layout import Layout


@njit(cache=True)
def stored_weight_gradient(grad, n_in, stride, A, D, d_col, batch):
    """dense_backward_rows storing its sums in grad (no update rule: kind -1)."""
    zero = vzero(grad)
    dense_backward_rows(grad, 0, n_in, stride, A, 0, D, d_col, batch, 0, n_in + 1, grad, grad, grad, -1,
                        (zero, zero, zero, zero, zero, zero, zero, zero))


def best_seconds(run, repeats):
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(batch, n_in, n_out, dtype, repeats, density=1.0):
    """GFLOP/s of (numpy, forward, input gradient, weight gradient) at one shape, with inputs
    non-zero with probability ``density``."""
    rng = np.random.default_rng(0)
    layout = Layout((n_in, n_out), np.dtype(dtype))
    stride, lanes = int(layout.strides[0]), layout.lanes
    stride_in = -(-n_in // lanes) * lanes
    width = Layout((1, n_in, n_out), np.dtype(dtype)).row_width  # as training's buffers: n_in's columns, then n_out's
    params = (rng.random(layout.n_params) - 0.5).astype(dtype)
    A = rng.random((batch, width)).astype(dtype)  # inputs, then the outputs' columns
    A[:, :n_in] *= rng.random((batch, n_in)) < density
    D = rng.random((batch, width)).astype(dtype)
    grad = np.zeros_like(params)
    weights_t = np.zeros(n_out * stride_in, dtype)
    panel = np.zeros(PANEL_ROWS * 3 * lanes, dtype)
    wide = n_in * stride * np.dtype(dtype).itemsize >= WIDE_BLOCK_MIN_BYTES  # blocks as train.block_examples's
    block = min(batch, WIDE_BLOCK_MAX) if wide else BLOCK
    blocks = range(0, batch, block)

    def forward():
        for b0 in blocks:
            dense_block_forward(params, 0, n_in, stride, True, A, 0, A, stride_in, b0, min(batch, b0 + block), panel)

    def input_gradient():
        if stride >= DOT_MIN_VECTORS * lanes:
            for b0 in blocks:
                dense_block_backward_input(params, 0, n_in, stride, D, stride_in, D, 0, b0, min(batch, b0 + block),
                                           D, 0, False)
        else:
            transpose_weights(params, 0, n_in, stride, n_out, weights_t, stride_in)
            for b0 in blocks:
                dense_block_forward(weights_t, 0, n_out, stride_in, False, D, stride_in, D, 0, b0,
                                    min(batch, b0 + block), panel)

    def weight_gradient():
        stored_weight_gradient(grad, n_in, stride, A, D, stride_in, batch)

    x, w = rng.random((batch, n_in)).astype(dtype), rng.random((n_in, n_out)).astype(dtype)
    with threadpool_limits(1):
        blas = best_seconds(lambda: x @ w, repeats)
    flops = 2 * batch * n_in * n_out
    return [flops / best_seconds(f, repeats) / 1e9 for f in (forward, input_gradient, weight_gradient)], \
        flops / blas / 1e9


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.products", description=__doc__.split("\n")[0])
    p.add_argument("--shapes", default="128x1024x1024,64x1024x1024,64x256x128,64x512x512,128x2048x2048,64x128x10")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--density", type=float, default=1.0, help="fraction of inputs that are not zero (default 1)")
    args = p.parse_args(argv)
    print(f"one thread, {args.dtype}, inputs {args.density:.0%} non-zero; GFLOP/s, and in brackets over numpy's "
          "matmul (one BLAS thread)")
    print(f"{'B x I x O':>16}  {'numpy':>7}  {'forward':>14}  {'input grad':>14}  {'weight grad':>14}")
    for shape in args.shapes.split(","):
        batch, n_in, n_out = (int(v) for v in shape.lower().split("x"))
        rates, blas = measure(batch, n_in, n_out, args.dtype, args.repeats, args.density)
        cells = "  ".join(f"{r:6.1f} ({r / blas:4.2f})" for r in rates)
        print(f"{shape:>16}  {blas:7.1f}  {cells}")


if __name__ == "__main__":
    main()
