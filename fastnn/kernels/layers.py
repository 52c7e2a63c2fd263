"""Paired forward/backward functions for one example, over flat buffers.

Layout (see fastnn/layout.py): layer l keeps its parameters as one (n_in + 1, n_out) row-major
block of the flat parameter buffer starting at ``off``: rows 0..n_in-1 are the weights of each
input unit, row n_in is the bias. One input's contribution is then a contiguous row, which is
what lets the first layer skip zero pixels. All functions are inlined into the training and
inference kernels; none allocates, and all arithmetic stays in the dtype of the buffers.
"""

import numpy as np
from numba import njit

# Activation codes (hidden layers; the output layer uses SOFTMAX or IDENTITY).
IDENTITY, RELU, LEAKY_RELU, TANH, SIGMOID, SOFTMAX = 0, 1, 2, 3, 4, 5
LEAKY_SLOPE = 0.01


@njit(inline="always")
def sparse_dense_forward(params, off, n_in, n_out, indices, values, scale, start, stop, z):
    """z = b + sum_k (scale * values[k]) W[indices[k], :] over one example's non-zero inputs."""
    bias = off + n_in * n_out
    for j in range(n_out):
        z[j] = params[bias + j]
    for k in range(start, stop):
        v = values[k] * scale
        row = off + indices[k] * n_out
        for j in range(n_out):
            z[j] += v * params[row + j]


@njit(inline="always")
def sparse_dense_backward(grad, off, n_in, n_out, indices, values, scale, start, stop, dz, r0, r1):
    """grad[rows r0..r1) += x^T dz for one example: only the rows of its non-zero inputs in range.

    ``r1 == n_in + 1`` includes the bias row. Indices are sorted, so the range is found by bisection.
    """
    lo, hi = start, stop
    while lo < hi:  # first k with indices[k] >= r0
        mid = (lo + hi) // 2
        if indices[mid] < r0:
            lo = mid + 1
        else:
            hi = mid
    for k in range(lo, stop):
        p = indices[k]
        if p >= r1:
            break
        v = values[k] * scale
        row = off + p * n_out
        for j in range(n_out):
            grad[row + j] += v * dz[j]
    if r1 == n_in + 1:
        bias = off + n_in * n_out
        for j in range(n_out):
            grad[bias + j] += dz[j]


@njit(inline="always")
def dense_forward(params, off, n_in, n_out, a, z):
    """z = b + a W, skipping zero inputs (half of a ReLU layer's outputs are zero)."""
    bias = off + n_in * n_out
    for j in range(n_out):
        z[j] = params[bias + j]
    for i in range(n_in):
        ai = a[i]
        if ai != 0:
            row = off + i * n_out
            for j in range(n_out):
                z[j] += ai * params[row + j]


@njit(inline="always")
def dense_backward_input(params, off, n_in, n_out, dz, da):
    """da = W dz: the gradient with respect to the layer's input."""
    for i in range(n_in):
        row = off + i * n_out
        s = dz[0] * params[row]
        for j in range(1, n_out):
            s += dz[j] * params[row + j]
        da[i] = s


@njit(inline="always")
def dense_backward_rows(grad, off, n_in, n_out, A, a_col, D, d_col, n_batch, r0, r1):
    """grad[rows r0..r1) += sum over the batch of a_b^T dz_b, examples added in order.

    A[b, a_col + i] is input i of example b, D[b, d_col + j] its output gradient j; row n_in is
    the bias (input 1).
    """
    one = grad.dtype.type(1)
    for i in range(r0, r1):
        row = off + i * n_out
        for b in range(n_batch):
            ai = A[b, a_col + i] if i < n_in else one
            if ai != 0:
                for j in range(n_out):
                    grad[row + j] += ai * D[b, d_col + j]


@njit(inline="always")
def activation_forward(code, z, a, n):
    """a = f(z) for a hidden activation."""
    zero, one = z.dtype.type(0), z.dtype.type(1)
    if code == RELU:
        for j in range(n):
            a[j] = z[j] if z[j] > 0 else zero
    elif code == LEAKY_RELU:
        slope = z.dtype.type(LEAKY_SLOPE)
        for j in range(n):
            a[j] = z[j] if z[j] > 0 else slope * z[j]
    elif code == TANH:
        for j in range(n):
            a[j] = np.tanh(z[j])
    elif code == SIGMOID:
        for j in range(n):
            a[j] = one / (one + np.exp(-z[j]))
    else:
        for j in range(n):
            a[j] = z[j]


@njit(inline="always")
def activation_backward(code, z, a, da, dz, n):
    """dz = da * f'(z), with f' taken from z or from a = f(z), whichever is cheaper."""
    zero, one = z.dtype.type(0), z.dtype.type(1)
    if code == RELU:
        for j in range(n):
            dz[j] = da[j] if z[j] > 0 else zero
    elif code == LEAKY_RELU:
        slope = z.dtype.type(LEAKY_SLOPE)
        for j in range(n):
            dz[j] = da[j] if z[j] > 0 else slope * da[j]
    elif code == TANH:
        for j in range(n):
            dz[j] = da[j] * (one - a[j] * a[j])
    elif code == SIGMOID:
        for j in range(n):
            dz[j] = da[j] * a[j] * (one - a[j])
    else:
        for j in range(n):
            dz[j] = da[j]


@njit(inline="always")
def softmax_forward(z, p, n):
    """p = softmax(z); returns log(sum(exp(z - max))) + max, the log-partition, for the loss."""
    m = z[0]
    for j in range(1, n):
        if z[j] > m:
            m = z[j]
    s = z.dtype.type(0)
    for j in range(n):
        e = np.exp(z[j] - m)
        p[j] = e
        s += e
    inv = z.dtype.type(1) / s
    for j in range(n):
        p[j] *= inv
    return np.log(s) + m


@njit(inline="always")
def softmax_xent_backward(p, label, weight, dz, n):
    """dz = weight * (p - onehot(label)): the cross-entropy gradient through the softmax."""
    for j in range(n):
        dz[j] = weight * p[j]
    dz[label] -= weight
