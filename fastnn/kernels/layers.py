"""Paired forward/backward functions for one example, over flat buffers.

Layout (see fastnn/layout.py): layer l keeps its parameters as one (n_in + 1) x stride row-major
block of the flat parameter buffer starting at ``off``: rows 0..n_in-1 are the weights leaving
each input unit, row n_in is the bias; ``stride`` is n_out padded to whole SIMD vectors. One
input's contribution is a contiguous row, which lets the first layer visit only the non-zero
pixels; a tile of outputs (up to eight vectors in the first layer's forward pass and gradient,
up to four in the other layers) stays in registers while the inputs stream by. The helpers
marked @njit(inline="always") are inlined into their callers; the @kernel functions (see jit.py)
are compiled functions of their own, called from the training and inference kernels. None
allocates, and all arithmetic stays in the dtype of the buffers.
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .codes import VECTOR_BYTES, GELU, LEAKY_RELU, LEAKY_SLOPE, RELU, SIGMOID, SILU, TANH
from .tuning import GRADIENT_COLUMN_BYTES, PACK_MIN_ROWS, PANEL_ROWS, ZERO_SKIP_MIN_VECTORS
from .jit import kernel
from .optim import step_vector
from .simd import (bit_count, lanes, load, lowest_bit, nonzero_lanes, store, vadd, vexp, vfma, vlargest, vload, vmax,
                   vmul, vsplat, vstore, vsub, vsum, vtail, vwhere_positive, vzero)


# -- dense layer, sparse input (the first layer): z = b + sum_k x_k W[i_k, :] -----------------

# uint8 pixel -> pixel / 255, as one load from a table of 256 (instead of a conversion and a
# multiplication per input); float inputs are used as they are (scale 1).
_PIXELS_32 = np.arange(256, dtype=np.float32) * np.float32(1 / 255)
_PIXELS_64 = np.arange(256, dtype=np.float64) * np.float64(1 / 255)


def input_value(values, k, scale):
    """The k-th non-zero input, scaled: values[k] * scale."""
    return values[k] * scale


@overload(input_value, jit_options={"cache": True})
def _input_value(values, k, scale):
    if values.dtype == types.uint8:
        table = _PIXELS_32 if scale == types.float32 else _PIXELS_64
        return lambda values, k, scale: table[load(values, k)]
    return lambda values, k, scale: load(values, k) * scale


@kernel
def tile_width(stride, t, L, most):
    """Values in the tile of a padded row that starts at t: ``most`` (8 or 4), 4, 2 or 1 vectors
    (a remainder of 3 is done as 2 + 1, of 7 as 4 + 2 + 1)."""
    left = (stride - t) // L
    return L * (most if left >= most else (4 if left >= 4 else (2 if left >= 2 else 1)))


@njit(inline="always")
def narrow_tile_width(stride, t, L):
    """Values in the tile that starts at t of a row of the first layer narrower than 8 vectors
    from t on: the rest of the row when it is 4 vectors or fewer (one pass over the inputs
    where tile_width would make two of 2 + 1 vectors), else 4 vectors."""
    return min(stride - t, 4 * L)


@njit(inline="always")
def sparse_sum(params, off, stride, t, width, indices, values, scale, lo, hi, a0, a1, a2, a3):
    """(a0, a1, a2, a3) + sum over the non-zero inputs lo..hi-1 of (scale * values[k]) *
    W[indices[k], t:t + width] (``width``: 1 to 4 vectors; the unused sums pass through).

    Inputs alternate between two sets of sums, added at the end, so that each FMA waits on the
    one two inputs back: a single chain would run at the FMA's latency.
    """
    L = lanes(params)
    b0, b1, b2, b3 = vzero(params), vzero(params), vzero(params), vzero(params)
    k = lo
    while k + 1 < hi:
        x, y = vsplat(input_value(values, k, scale)), vsplat(input_value(values, k + 1, scale))
        r, q = off + load(indices, k) * stride + t, off + load(indices, k + 1) * stride + t
        a0, b0 = vfma(x, vload(params, r), a0), vfma(y, vload(params, q), b0)
        if width > L:
            a1, b1 = vfma(x, vload(params, r + L), a1), vfma(y, vload(params, q + L), b1)
        if width > 2 * L:
            a2, b2 = vfma(x, vload(params, r + 2 * L), a2), vfma(y, vload(params, q + 2 * L), b2)
        if width > 3 * L:
            a3, b3 = vfma(x, vload(params, r + 3 * L), a3), vfma(y, vload(params, q + 3 * L), b3)
        k += 2
    if k < hi:
        x, r = vsplat(input_value(values, k, scale)), off + load(indices, k) * stride + t
        a0 = vfma(x, vload(params, r), a0)
        if width > L:
            a1 = vfma(x, vload(params, r + L), a1)
        if width > 2 * L:
            a2 = vfma(x, vload(params, r + 2 * L), a2)
        if width > 3 * L:
            a3 = vfma(x, vload(params, r + 3 * L), a3)
    return vadd(a0, b0), vadd(a1, b1), vadd(a2, b2), vadd(a3, b3)


@njit(inline="always")
def store_tile(z, t, width, L, v0, v1, v2, v3):
    """z[t:t + width] = the tile's 1 to 4 vectors."""
    vstore(z, t, v0)
    if width > L:
        vstore(z, t + L, v1)
    if width > 2 * L:
        vstore(z, t + 2 * L, v2)
    if width > 3 * L:
        vstore(z, t + 3 * L, v3)


@njit(inline="always")
def half_sum(params, off, n_in, stride, t, width, indices, values, scale, lo, hi, half):
    """One half's share of a tile of the first layer's pre-activations (see
    sparse_dense_forward_tile): the bias plus the sum over the inputs below the split (half 0),
    or the sum over the others (half 1); lo..hi-1: those inputs' entries."""
    L = lanes(params)
    a0, a1, a2, a3 = vzero(params), vzero(params), vzero(params), vzero(params)
    if half == 0:
        bias = off + n_in * stride + t
        a0 = vload(params, bias)
        if width > L:
            a1 = vload(params, bias + L)
        if width > 2 * L:
            a2 = vload(params, bias + 2 * L)
        if width > 3 * L:
            a3 = vload(params, bias + 3 * L)
    return sparse_sum(params, off, stride, t, width, indices, values, scale, lo, hi, a0, a1, a2, a3)


@kernel
def sparse_dense_forward_tile(params, off, n_in, stride, t, width, indices, values, scale, start, mid, stop, z):
    """z[t:t + width] = b + sum over the example's non-zero inputs k of
    (scale * values[k]) * W[indices[k], t:t + width]; ``mid``: its first entry at or past the
    input where the sum splits (prepared.balanced_column).

    A tile of 8 vectors has 8 independent sums. Narrower tiles sum the two halves of the inputs
    apart, (b + sum below the split) + (sum above), each as sparse_sum: then two workers that
    own half of W's rows each (kernels/train.py, split_batch) compute the same bits as one.
    """
    L = lanes(params)
    if width == 8 * L:
        bias = off + n_in * stride + t
        a0, a1, a2, a3 = vload(params, bias), vload(params, bias + L), vload(params, bias + 2 * L), \
            vload(params, bias + 3 * L)
        b0, b1 = vload(params, bias + 4 * L), vload(params, bias + 5 * L)
        b2, b3 = vload(params, bias + 6 * L), vload(params, bias + 7 * L)
        for k in range(start, stop):
            x, r = vsplat(input_value(values, k, scale)), off + load(indices, k) * stride + t
            a0, a1 = vfma(x, vload(params, r), a0), vfma(x, vload(params, r + L), a1)
            a2, a3 = vfma(x, vload(params, r + 2 * L), a2), vfma(x, vload(params, r + 3 * L), a3)
            b0, b1 = vfma(x, vload(params, r + 4 * L), b0), vfma(x, vload(params, r + 5 * L), b1)
            b2, b3 = vfma(x, vload(params, r + 6 * L), b2), vfma(x, vload(params, r + 7 * L), b3)
        vstore(z, t, a0), vstore(z, t + L, a1), vstore(z, t + 2 * L, a2), vstore(z, t + 3 * L, a3)
        vstore(z, t + 4 * L, b0), vstore(z, t + 5 * L, b1), vstore(z, t + 6 * L, b2), vstore(z, t + 7 * L, b3)
        return
    h0, h1, h2, h3 = half_sum(params, off, n_in, stride, t, width, indices, values, scale, start, mid, 0)
    g0, g1, g2, g3 = half_sum(params, off, n_in, stride, t, width, indices, values, scale, mid, stop, 1)
    store_tile(z, t, width, L, vadd(h0, g0), vadd(h1, g1), vadd(h2, g2), vadd(h3, g3))


@kernel
def sparse_dense_forward(params, off, n_in, stride, indices, values, scale, indptr, mids, rows, Z, col):
    """Z[b, col:col + stride] = b + sum over the non-zero inputs k of example b (sparse row
    rows[b]) of (scale * values[k]) * W[indices[k], :], for every row b of Z (mids: each row's
    first entry at or past the split).

    Tile by tile across the examples: the tile's column of W (n_in x 1-8 vectors) stays in
    cache from one example to the next, where a wide layer's whole W does not fit.
    """
    L = lanes(params)
    t = 0
    while t < stride:
        width = tile_width(stride, t, L, 8) if stride - t >= 8 * L else narrow_tile_width(stride, t, L)
        for b in range(Z.shape[0]):
            row = rows[b]
            sparse_dense_forward_tile(params, off, n_in, stride, t, width, indices, values, scale, indptr[row],
                                      mids[row], indptr[row + 1], Z[b, col:])
        t += width


@kernel
def first_at_least(indices, lo, hi, value):
    """The first k in lo..hi-1 with indices[k] >= value (hi if none), in sorted indices."""
    while lo < hi:
        mid = (lo + hi) // 2
        if indices[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(inline="always")
def sparse_rows_step(out, step, off, stride, indices, values, scale, lo, hi, dz):
    """out[row of input k] += step * x_k dz for the non-zero inputs lo..hi-1 of one example."""
    L = lanes(out)
    t = 0
    while t + 2 * L <= stride:
        d0, d1 = vmul(vsplat(step), vload(dz, t)), vmul(vsplat(step), vload(dz, t + L))
        for k in range(lo, hi):
            v = vsplat(input_value(values, k, scale))
            r = off + load(indices, k) * stride + t
            vstore(out, r, vfma(v, d0, vload(out, r)))
            vstore(out, r + L, vfma(v, d1, vload(out, r + L)))
        t += 2 * L
    if t < stride:
        d0 = vmul(vsplat(step), vload(dz, t))
        for k in range(lo, hi):
            r = off + load(indices, k) * stride + t
            vstore(out, r, vfma(vsplat(input_value(values, k, scale)), d0, vload(out, r)))


@njit(inline="always")
def add_bias_gradient(grad, bias, stride, dz):
    """grad[bias:bias + stride] += dz: one example's term of a layer's bias gradient."""
    for t in range(0, stride, lanes(grad)):
        vstore(grad, bias + t, vadd(vload(grad, bias + t), vload(dz, t)))


@kernel
def sparse_dense_backward(grad, params, rate, off, n_in, stride, indices, values, scale, start, stop, dz, r0, r1):
    """grad[rows r0..r1) += x^T dz for one example: the rows of its non-zero inputs in range;
    with rate != 0, the weight rows take the SGD step params[row] -= rate * x dz right away.

    ``r1 == n_in + 1`` includes the bias row (always into grad). Indices are sorted, so the
    range is found by bisection.
    """
    out = params if rate != 0 else grad
    lo = first_at_least(indices, start, stop, r0) if r0 > 0 else start
    end = first_at_least(indices, lo, stop, r1) if r1 <= n_in else stop
    sparse_rows_step(out, grad.dtype.type(-rate) if rate != 0 else grad.dtype.type(1), off, stride, indices, values,
                     scale, lo, end, dz)
    if r1 == n_in + 1:
        add_bias_gradient(grad, off + n_in * stride, stride, dz)


@njit(inline="always")
def _row_sum_start(grad, i, kind):
    """A tile's running sum: grad[i:i + lanes], or zero when the sums become steps (kind >= 0;
    the gradient buffer holds zeros then, and is left so)."""
    return vzero(grad) if kind >= 0 else vload(grad, i)


@njit(inline="always")
def _row_sum_end(grad, params, m, v, i, g, kind, settings):
    """Store a tile's sum g in grad[i:...], or (kind >= 0) take rule kind's step with it."""
    if kind >= 0:
        step_vector(kind, params, m, v, i, g, settings)
    else:
        vstore(grad, i, g)


@kernel
def sparse_columns_backward(grad, off, stride, col_ptr, col_example, col_value, D, d_col, r0, r1, params, m, v, kind,
                            settings, plain):
    """grad[rows r0..r1) += X^T D over a batch, from its columns (see sparse.transpose_batch);
    with kind >= 0, each tile of sums takes the step of update rule ``kind`` on params instead
    (optim.step_vector, as dense_backward_rows), its gradient never stored: the same values as
    summing, then optim.update_segment.

    The same sums as sparse_dense_backward example by example, added in the same order, but each
    row's tile of sums stays in registers while the examples that use its input stream by: one
    store per row and tile instead of one per example (wide layers are store-bound otherwise).
    Rows r0..r1 are weight rows only; D[b, d_col:] is example b's output gradient. A row no
    example of the batch uses has a zero gradient: it is skipped, but for a rule whose step
    still moves it (``plain``: plain SGD, whose zero step changes nothing).
    """
    L = lanes(grad)
    width = D.shape[1]
    for i in range(r0, r1):
        c0, c1 = col_ptr[i], col_ptr[i + 1]
        if c0 == c1 and (kind < 0 or plain):
            continue
        row = off + i * stride
        t = 0
        while t < stride:
            w = tile_width(stride, t, L, 8) // L  # 8 independent sums hide the FMA's latency
            g0, g1, g2, g3 = _row_sum_start(grad, row + t, kind), vzero(grad), vzero(grad), vzero(grad)
            g4, g5, g6, g7 = vzero(grad), vzero(grad), vzero(grad), vzero(grad)
            if w >= 2:
                g1 = _row_sum_start(grad, row + t + L, kind)
            if w >= 4:
                g2, g3 = _row_sum_start(grad, row + t + 2 * L, kind), _row_sum_start(grad, row + t + 3 * L, kind)
            if w == 8:
                g4, g5 = _row_sum_start(grad, row + t + 4 * L, kind), _row_sum_start(grad, row + t + 5 * L, kind)
                g6, g7 = _row_sum_start(grad, row + t + 6 * L, kind), _row_sum_start(grad, row + t + 7 * L, kind)
            for c in range(c0, c1):
                x = vsplat(load(col_value, c))
                d = load(col_example, c) * width + d_col + t
                g0 = vfma(x, vload(D, d), g0)
                if w >= 2:
                    g1 = vfma(x, vload(D, d + L), g1)
                if w >= 4:
                    g2, g3 = vfma(x, vload(D, d + 2 * L), g2), vfma(x, vload(D, d + 3 * L), g3)
                if w == 8:
                    g4, g5 = vfma(x, vload(D, d + 4 * L), g4), vfma(x, vload(D, d + 5 * L), g5)
                    g6, g7 = vfma(x, vload(D, d + 6 * L), g6), vfma(x, vload(D, d + 7 * L), g7)
            _row_sum_end(grad, params, m, v, row + t, g0, kind, settings)
            if w >= 2:
                _row_sum_end(grad, params, m, v, row + t + L, g1, kind, settings)
            if w >= 4:
                _row_sum_end(grad, params, m, v, row + t + 2 * L, g2, kind, settings)
                _row_sum_end(grad, params, m, v, row + t + 3 * L, g3, kind, settings)
            if w == 8:
                _row_sum_end(grad, params, m, v, row + t + 4 * L, g4, kind, settings)
                _row_sum_end(grad, params, m, v, row + t + 5 * L, g5, kind, settings)
                _row_sum_end(grad, params, m, v, row + t + 6 * L, g6, kind, settings)
                _row_sum_end(grad, params, m, v, row + t + 7 * L, g7, kind, settings)
            t += w * L


# -- dense layer, dense input ------------------------------------------------------------------

@njit(inline="always")
def _tile_start(W, at, width, L):
    """A tile's 1 to 4 running sums: W[at:at + width] (a bias, or the sums so far), or zero
    when ``at`` < 0."""
    a0 = vload(W, at) if at >= 0 else vzero(W)
    a1 = vload(W, at + L) if at >= 0 and width > L else vzero(W)
    a2 = vload(W, at + 2 * L) if at >= 0 and width > 2 * L else vzero(W)
    a3 = vload(W, at + 3 * L) if at >= 0 and width > 3 * L else vzero(W)
    return a0, a1, a2, a3


@njit(inline="always")
def inputs_used(X, x, xw, c, n):
    """Bit j set for each input c + j (j < n <= lanes) that any of four rows of X (X[x + c + j],
    X[x + xw + c + j], ...) has non-zero."""
    L = lanes(X)
    if n == L:
        return nonzero_lanes(vload(X, x + c)) | nonzero_lanes(vload(X, x + xw + c)) \
            | nonzero_lanes(vload(X, x + 2 * xw + c)) | nonzero_lanes(vload(X, x + 3 * xw + c))
    used = 0  # the last inputs, short of a vector: no load past them
    for j in range(n):
        if load(X, x + c + j) != 0 or load(X, x + xw + c + j) != 0 or load(X, x + 2 * xw + c + j) != 0 \
                or load(X, x + 3 * xw + c + j) != 0:
            used |= 1 << j
    return used


@njit(inline="always")
def few_inputs_used(X, x, xw, k0, k1):
    """Whether at most half of the inputs k0..k1-1 are non-zero in any of four rows of X (see
    inputs_used): a zero input adds exactly nothing, but skipping the zeros costs more than
    multiplying them unless most are."""
    L = lanes(X)
    count = 0
    for c in range(k0, k1, L):
        count += bit_count(inputs_used(X, x, xw, c, min(L, k1 - c)))
    return count * 2 <= k1 - k0


@njit(inline="always")
def _four_rows_input(W, r, width, L, X, x, xw, p00, p01, p02, p03, p10, p11, p12, p13, p20, p21, p22, p23, p30, p31,
                     p32, p33):
    """The sums of a tile of four rows of Y plus one input's term: X[x], X[x + xw], ... times
    W[r:r + width] (1 to 4 vectors)."""
    x0, x1 = vsplat(load(X, x)), vsplat(load(X, x + xw))
    x2, x3 = vsplat(load(X, x + 2 * xw)), vsplat(load(X, x + 3 * xw))
    w = vload(W, r)
    p00, p10, p20, p30 = vfma(x0, w, p00), vfma(x1, w, p10), vfma(x2, w, p20), vfma(x3, w, p30)
    if width > L:
        w = vload(W, r + L)
        p01, p11, p21, p31 = vfma(x0, w, p01), vfma(x1, w, p11), vfma(x2, w, p21), vfma(x3, w, p31)
    if width > 2 * L:
        w = vload(W, r + 2 * L)
        p02, p12, p22, p32 = vfma(x0, w, p02), vfma(x1, w, p12), vfma(x2, w, p22), vfma(x3, w, p32)
    if width > 3 * L:
        w = vload(W, r + 3 * L)
        p03, p13, p23, p33 = vfma(x0, w, p03), vfma(x1, w, p13), vfma(x2, w, p23), vfma(x3, w, p33)
    return p00, p01, p02, p03, p10, p11, p12, p13, p20, p21, p22, p23, p30, p31, p32, p33


@njit(inline="always")
def _few_inputs(X, x, xw, k0, k1, group, first_tile, few_groups, checks):
    """Whether the tile of four rows of X from X[x] (group ``group`` of the block's panels and
    rows) skips its zero inputs k0..k1-1 (few_inputs_used), and the block's record of that:
    decided in the first tile column and kept in a bit where there is one, else decided again."""
    if group < 64 and not first_tile:
        return (few_groups >> group) & 1 == 1, few_groups
    few = checks and few_inputs_used(X, x, xw, k0, k1)
    if few and group < 64:  # (a shift by 64 or more is undefined)
        few_groups |= 1 << group
    return few, few_groups


@njit(inline="always")
def _pack_panel(W, r, stride, k0, k1, L, P):
    """P = the panel's tile column of 3 vectors, W[r + k * stride:... + 3L] for k0 <= k < k1, its
    rows one after another: the eight-row tiles then read the panel as one stream, not from
    rows a whole row of W apart (4 KB and more in wide layers)."""
    q = 0
    for k in range(k0, k1):
        vstore(P, q, vload(W, r)), vstore(P, q + L, vload(W, r + L)), vstore(P, q + 2 * L, vload(W, r + 2 * L))
        q += 3 * L
        r += stride


@kernel
def _eight_rows(V, r, rs, k0, k1, X, x, xw, Y, y, yw, W, bias, L):
    """Y[y + j * yw:... + 3L] = sums of eight rows j of X times W's tile column of 3 vectors,
    whose row k is V[r + (k - k0) * rs:... + 3L]: 24 sums in registers while the panel's rows
    stream by, each vector of W loaded serving eight rows. ``bias``: W's index of the bias, -1
    for none, or -2 to add to Y's sums so far. A function of its own: inlined into its caller,
    whose other values take registers too, it spills sums to memory."""
    if bias == -2:
        a00, a01, a02, _ = _tile_start(Y, y, 3 * L, L)
        a10, a11, a12, _ = _tile_start(Y, y + yw, 3 * L, L)
        a20, a21, a22, _ = _tile_start(Y, y + 2 * yw, 3 * L, L)
        a30, a31, a32, _ = _tile_start(Y, y + 3 * yw, 3 * L, L)
        a40, a41, a42, _ = _tile_start(Y, y + 4 * yw, 3 * L, L)
        a50, a51, a52, _ = _tile_start(Y, y + 5 * yw, 3 * L, L)
        a60, a61, a62, _ = _tile_start(Y, y + 6 * yw, 3 * L, L)
        a70, a71, a72, _ = _tile_start(Y, y + 7 * yw, 3 * L, L)
    else:
        a00, a01, a02, _ = _tile_start(W, bias, 3 * L, L)
        a10, a11, a12 = a00, a01, a02
        a20, a21, a22 = a00, a01, a02
        a30, a31, a32 = a00, a01, a02
        a40, a41, a42 = a00, a01, a02
        a50, a51, a52 = a00, a01, a02
        a60, a61, a62 = a00, a01, a02
        a70, a71, a72 = a00, a01, a02
    for k in range(k0, k1):
        w0, w1, w2 = vload(V, r), vload(V, r + L), vload(V, r + 2 * L)
        s = vsplat(load(X, x + k))
        a00, a01, a02 = vfma(s, w0, a00), vfma(s, w1, a01), vfma(s, w2, a02)
        s = vsplat(load(X, x + xw + k))
        a10, a11, a12 = vfma(s, w0, a10), vfma(s, w1, a11), vfma(s, w2, a12)
        s = vsplat(load(X, x + 2 * xw + k))
        a20, a21, a22 = vfma(s, w0, a20), vfma(s, w1, a21), vfma(s, w2, a22)
        s = vsplat(load(X, x + 3 * xw + k))
        a30, a31, a32 = vfma(s, w0, a30), vfma(s, w1, a31), vfma(s, w2, a32)
        s = vsplat(load(X, x + 4 * xw + k))
        a40, a41, a42 = vfma(s, w0, a40), vfma(s, w1, a41), vfma(s, w2, a42)
        s = vsplat(load(X, x + 5 * xw + k))
        a50, a51, a52 = vfma(s, w0, a50), vfma(s, w1, a51), vfma(s, w2, a52)
        s = vsplat(load(X, x + 6 * xw + k))
        a60, a61, a62 = vfma(s, w0, a60), vfma(s, w1, a61), vfma(s, w2, a62)
        s = vsplat(load(X, x + 7 * xw + k))
        a70, a71, a72 = vfma(s, w0, a70), vfma(s, w1, a71), vfma(s, w2, a72)
        r += rs
    store_tile(Y, y, 3 * L, L, a00, a01, a02, a02)
    store_tile(Y, y + yw, 3 * L, L, a10, a11, a12, a12)
    store_tile(Y, y + 2 * yw, 3 * L, L, a20, a21, a22, a22)
    store_tile(Y, y + 3 * yw, 3 * L, L, a30, a31, a32, a32)
    store_tile(Y, y + 4 * yw, 3 * L, L, a40, a41, a42, a42)
    store_tile(Y, y + 5 * yw, 3 * L, L, a50, a51, a52, a52)
    store_tile(Y, y + 6 * yw, 3 * L, L, a60, a61, a62, a62)
    store_tile(Y, y + 7 * yw, 3 * L, L, a70, a71, a72, a72)


@kernel
def dense_block_forward(W, off, n_in, stride, with_bias, X, x_col, Y, y_col, b0, b1, P):
    """Y[b, y_col:y_col + stride] = (bias if ``with_bias``) + X[b, x_col:x_col + n_in] W, for the
    rows b0..b1-1 of X and Y: W is n_in rows of ``stride`` values from W[off] (the bias is the
    row after them). Also a layer's input gradient from its transposed weights (no bias).

    A matrix product, in tile columns of 3 vectors of Y. With 64-byte vectors (32 registers), a
    tile of 8 rows x 3 vectors stays in registers while W's rows stream by (_eight_rows), from
    the panel packed into P when P has room for it (PANEL_ROWS x 3 vectors; else from W). Other
    tiles are 4 rows x up to 3 vectors, or single rows. W is visited in panels of PANEL_ROWS
    rows, whose tile column stays in the core's second-level cache across the rows of Y. Every
    sum adds its terms in the order of W's rows, however its rows are grouped: the same bits
    for any b0 and b1, and with P or without.
    In tiles of 3 vectors, a panel's inputs that all four rows of a tile leave at zero are
    skipped when they are most of them (few_inputs_used; a ReLU layer trained with a large
    step can leave 90% of them at zero): 0 * w adds exactly nothing for finite w, so the sums
    keep their bits. Where fewer are zero (a ReLU layer's usual half), the plain loop
    multiplies them: skipping costs more there.
    """
    L = lanes(W)
    xw, yw = X.shape[1], Y.shape[1]
    groups, few_groups = (b1 - b0 + 3) // 4, 0
    checks = stride >= ZERO_SKIP_MIN_VECTORS * L
    eights = VECTOR_BYTES == 64  # 24 sums, their 3 vectors of W and a broadcast need 28 registers
    packs = P.size >= PANEL_ROWS * 3 * L and b1 - b0 >= PACK_MIN_ROWS
    t = 0
    while t < stride:
        width = tile_width(stride, t, L, 3)
        for k0 in range(0, n_in, PANEL_ROWS):
            k1 = min(n_in, k0 + PANEL_ROWS)
            packed = False
            b = b0
            while b < b1:
                y, x = b * yw + y_col + t, b * xw + x_col
                group = (k0 // PANEL_ROWS) * groups + (b - b0) // 4
                if eights and width == 3 * L and b + 8 <= b1:
                    few, few_groups = _few_inputs(X, x, xw, k0, k1, group, t == 0, few_groups, checks)
                    few_next, few_groups = _few_inputs(X, x + 4 * xw, xw, k0, k1, group + 1, t == 0, few_groups,
                                                       checks)
                    if not few and not few_next:
                        bias = -2 if k0 > 0 else (off + n_in * stride + t if with_bias else -1)
                        if packs and not packed:
                            _pack_panel(W, off + k0 * stride + t, stride, k0, k1, L, P)
                            packed = True
                        if packed:
                            _eight_rows(P, 0, 3 * L, k0, k1, X, x, xw, Y, y, yw, W, bias, L)
                        else:
                            _eight_rows(W, off + k0 * stride + t, stride, k0, k1, X, x, xw, Y, y, yw, W, bias, L)
                        b += 8
                        continue
                if k0 > 0:  # the sums so far
                    p00, p01, p02, p03 = _tile_start(Y, y, width, L)
                else:
                    p00, p01, p02, p03 = _tile_start(W, off + n_in * stride + t if with_bias else -1, width, L)
                if b + 4 > b1:  # a last row or three, one at a time
                    r = off + k0 * stride + t
                    for k in range(k0, k1):
                        x0 = vsplat(load(X, x + k))
                        p00 = vfma(x0, vload(W, r), p00)
                        if width > L:
                            p01 = vfma(x0, vload(W, r + L), p01)
                        if width > 2 * L:
                            p02 = vfma(x0, vload(W, r + 2 * L), p02)
                        r += stride
                    store_tile(Y, y, width, L, p00, p01, p02, p03)
                    b += 1
                    continue
                if k0 > 0:
                    p10, p11, p12, p13 = _tile_start(Y, y + yw, width, L)
                    p20, p21, p22, p23 = _tile_start(Y, y + 2 * yw, width, L)
                    p30, p31, p32, p33 = _tile_start(Y, y + 3 * yw, width, L)
                else:
                    p10, p11, p12, p13 = p00, p01, p02, p03
                    p20, p21, p22, p23 = p00, p01, p02, p03
                    p30, p31, p32, p33 = p00, p01, p02, p03
                few, few_groups = _few_inputs(X, x, xw, k0, k1, group, t == 0, few_groups, checks and width == 3 * L)
                if few:  # only the inputs that any of the four rows uses
                    for c in range(k0, k1, L):
                        used = inputs_used(X, x, xw, c, min(L, k1 - c))
                        while used != 0:
                            k = c + lowest_bit(used)
                            used &= used - 1
                            p00, p01, p02, p03, p10, p11, p12, p13, p20, p21, p22, p23, p30, p31, p32, p33 = \
                                _four_rows_input(W, off + k * stride + t, width, L, X, x + k, xw, p00, p01, p02, p03,
                                                 p10, p11, p12, p13, p20, p21, p22, p23, p30, p31, p32, p33)
                else:
                    for k in range(k0, k1):
                        p00, p01, p02, p03, p10, p11, p12, p13, p20, p21, p22, p23, p30, p31, p32, p33 = \
                            _four_rows_input(W, off + k * stride + t, width, L, X, x + k, xw, p00, p01, p02, p03,
                                             p10, p11, p12, p13, p20, p21, p22, p23, p30, p31, p32, p33)
                store_tile(Y, y, width, L, p00, p01, p02, p03)
                store_tile(Y, y + yw, width, L, p10, p11, p12, p13)
                store_tile(Y, y + 2 * yw, width, L, p20, p21, p22, p23)
                store_tile(Y, y + 3 * yw, width, L, p30, p31, p32, p33)
                b += 4
        t += width


@njit(inline="always")
def _store_sums(G, g, s0, s1, s2, s3):
    """G[g:g + 4] = the lanes' sums of four vectors."""
    store(G, g, vsum(s0)), store(G, g + 1, vsum(s1)), store(G, g + 2, vsum(s2)), store(G, g + 3, vsum(s3))


@njit(inline="always")
def all_inactive(Z, z, zw):
    """Whether the pre-activations Z[z:z + 4], Z[z + zw:z + zw + 4], ... of four rows are all
    <= 0 (or NaN): where ReLU's derivative is zero."""
    inactive = True
    for r in range(4):
        for j in range(4):
            inactive &= not load(Z, z + r * zw + j) > 0
    return inactive


@kernel
def dense_block_backward_input(W, off, n_in, stride, D, d_col, G, g_col, b0, b1, Z, z_col, relu):
    """G[b, g_col + i] = sum over j of D[b, d_col + j] W[i, j] for i < n_in, the rows b0..b1-1:
    a wide layer's input gradient straight from its weights (W as in dense_block_forward; no
    transposed copy). The padding of G's rows is left as it is (zero). With ``relu`` (the
    layer below is ReLU, whose pre-activations are Z[b, z_col:]), a tile of 4 rows x 4 inputs
    whose pre-activations are all <= 0 is left as it was: ReLU's backward pass selects zero
    there whatever G holds (activation_backward), so the error signals keep their bits. A
    ReLU layer trained with a large step leaves about half of such tiles inactive.

    Each sum runs along a row of W and of D, a vector at a time, then adds its lanes: a tile of
    4 rows of D x 4 rows of W keeps 16 sums in registers. The lanes' sum costs as much as a few
    vectors of the row: for narrow layers dense_block_forward on transposed weights is faster.
    """
    L = lanes(W)
    dw, gw = D.shape[1], G.shape[1]
    for i in range(0, n_in, 4):
        rows = min(4, n_in - i)  # a last 1-3 rows of W repeat the last one, stored once
        r0 = off + i * stride
        r1, r2, r3 = r0 + min(1, rows - 1) * stride, r0 + min(2, rows - 1) * stride, r0 + min(3, rows - 1) * stride
        b = b0
        while b < b1:
            d = b * dw + d_col
            g = b * gw + g_col + i
            if b + 4 > b1 or rows < 4:  # one row of D at a time
                s0, s1, s2, s3 = vzero(W), vzero(W), vzero(W), vzero(W)
                for j in range(0, stride, L):
                    e = vload(D, d + j)
                    s0, s1 = vfma(e, vload(W, r0 + j), s0), vfma(e, vload(W, r1 + j), s1)
                    s2, s3 = vfma(e, vload(W, r2 + j), s2), vfma(e, vload(W, r3 + j), s3)
                store(G, g, vsum(s0))
                if rows > 1:
                    store(G, g + 1, vsum(s1))
                if rows > 2:
                    store(G, g + 2, vsum(s2))
                if rows > 3:
                    store(G, g + 3, vsum(s3))
                b += 1
                continue
            if relu and stride >= ZERO_SKIP_MIN_VECTORS * L and all_inactive(Z, b * Z.shape[1] + z_col + i, Z.shape[1]):
                b += 4
                continue
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = vzero(W)
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = vzero(W)
            for j in range(0, stride, L):
                w0, w1, w2, w3 = vload(W, r0 + j), vload(W, r1 + j), vload(W, r2 + j), vload(W, r3 + j)
                e = vload(D, d + j)
                s00, s01, s02, s03 = vfma(e, w0, s00), vfma(e, w1, s01), vfma(e, w2, s02), vfma(e, w3, s03)
                e = vload(D, d + dw + j)
                s10, s11, s12, s13 = vfma(e, w0, s10), vfma(e, w1, s11), vfma(e, w2, s12), vfma(e, w3, s13)
                e = vload(D, d + 2 * dw + j)
                s20, s21, s22, s23 = vfma(e, w0, s20), vfma(e, w1, s21), vfma(e, w2, s22), vfma(e, w3, s23)
                e = vload(D, d + 3 * dw + j)
                s30, s31, s32, s33 = vfma(e, w0, s30), vfma(e, w1, s31), vfma(e, w2, s32), vfma(e, w3, s33)
            _store_sums(G, g, s00, s01, s02, s03)
            _store_sums(G, g + gw, s10, s11, s12, s13)
            _store_sums(G, g + 2 * gw, s20, s21, s22, s23)
            _store_sums(G, g + 3 * gw, s30, s31, s32, s33)
            b += 4


@kernel
def transpose_weights(params, off, n_in, stride, n_out, weights_t, stride_t):
    """weights_t[j, i] = W[i, j] (rows of stride_t values, padding left zero): for a narrow
    layer's input gradient, each output's weights as one contiguous row."""
    for i in range(n_in):
        for j in range(n_out):
            weights_t[j * stride_t + i] = params[off + i * stride + j]


@njit(inline="always")
def examples_using(A, a, width, n_batch):
    """(bits of examples 0..63, of 64..127, few): bit b set where any of the four inputs
    A[b, a:a + 4] is non-zero; few: whether at most half of the batch's examples use them, in
    a batch of at most 128 (few_inputs_used's trade, along the batch)."""
    if n_batch > 128:
        return 0, 0, False
    low, high = 0, 0
    for b in range(n_batch):
        x = b * width + a
        used = (load(A, x) != 0) | (load(A, x + 1) != 0) | (load(A, x + 2) != 0) | (load(A, x + 3) != 0)
        if b < 64:  # no branch on the data: it would mispredict for most densities
            low |= int(used) << b
        else:
            high |= int(used) << (b - 64)
    return low, high, (bit_count(low) + bit_count(high)) * 2 <= n_batch


@njit(inline="always")
def _four_rows_example(A, a, D, d, two, L, g00, g10, g20, g30, g01, g11, g21, g31):
    """Four weight rows' tile of sums plus one example's terms: A[a:a + 4] times D[d:...]
    (one vector, or two when ``two``)."""
    a0, a1 = vsplat(load(A, a)), vsplat(load(A, a + 1))
    a2, a3 = vsplat(load(A, a + 2)), vsplat(load(A, a + 3))
    d0 = vload(D, d)
    g00, g10, g20, g30 = vfma(a0, d0, g00), vfma(a1, d0, g10), vfma(a2, d0, g20), vfma(a3, d0, g30)
    if two:
        d1 = vload(D, d + L)
        g01, g11, g21, g31 = vfma(a0, d1, g01), vfma(a1, d1, g11), vfma(a2, d1, g21), vfma(a3, d1, g31)
    return g00, g10, g20, g30, g01, g11, g21, g31


@kernel
def dense_backward_rows(grad, off, n_in, stride, A, a_col, D, d_col, n_batch, r0, r1, params, m, v, kind, settings):
    """grad[rows r0..r1) += sum over the batch of a_b^T dz_b, examples added in order; with
    kind >= 0, each tile of sums takes the step of update rule ``kind`` (optim.step_vector, with
    optimizer state m, v and ``settings``) on params instead, as it leaves the registers: the
    same values as storing the gradient, then optim.update_segment, without writing, reading
    back and clearing it (for a wide layer with Adam, most of the step's memory traffic).

    A[b, a_col + i] is input i of example b, D[b, d_col:] its output gradient; row n_in is the
    bias (input 1). Four rows at a time keep eight tiles of sums in registers across the batch,
    so that the FMAs do not wait on each other. The rows go by in blocks of columns
    (GRADIENT_COLUMN_BYTES), so that the batch's slab of D stays in cache across them. The
    examples that leave all four inputs at zero add nothing: where they are most of a batch
    of at most 128 (examples_using), only the others are visited, in order, so the sums keep
    their bits. Where they are fewer (a ReLU layer's usual half), the plain loop multiplies.
    """
    L = lanes(grad)
    width = D.shape[1]
    columns = GRADIENT_COLUMN_BYTES // grad.itemsize  # a whole number of pairs of vectors
    i = r0
    for c0 in range(0, stride, columns):
        c1 = min(stride, c0 + columns)
        i = r0
        used_low, used_high, probe, gap = 0, 0, r0, 4
        while i + 4 <= min(r1, n_in):
            few = False
            if i == probe and stride >= ZERO_SKIP_MIN_VECTORS * L:  # after dense rows, probe 2, 4, then 8 groups on
                used_low, used_high, few = examples_using(A, a_col + i, width, n_batch)
                gap = 4 if few else min(2 * gap, 32)
                probe = i + gap
            t = c0
            while t < c1:
                two = t + 2 * L <= c1  # else one vector: the second sums stay zero, unstored
                rows = off + i * stride + t
                g00, g10 = _row_sum_start(grad, rows, kind), _row_sum_start(grad, rows + stride, kind)
                g20, g30 = _row_sum_start(grad, rows + 2 * stride, kind), _row_sum_start(grad, rows + 3 * stride, kind)
                g01, g11, g21, g31 = vzero(grad), vzero(grad), vzero(grad), vzero(grad)
                if two:
                    g01, g11 = _row_sum_start(grad, rows + L, kind), _row_sum_start(grad, rows + stride + L, kind)
                    g21 = _row_sum_start(grad, rows + 2 * stride + L, kind)
                    g31 = _row_sum_start(grad, rows + 3 * stride + L, kind)
                if few:  # only the examples that use one of the four inputs
                    for half in range(2):
                        used = used_low if half == 0 else used_high
                        while used != 0:
                            b = 64 * half + lowest_bit(used)
                            used &= used - 1
                            g00, g10, g20, g30, g01, g11, g21, g31 = _four_rows_example(
                                A, b * width + a_col + i, D, b * width + d_col + t, two, L,
                                g00, g10, g20, g30, g01, g11, g21, g31)
                else:
                    for b in range(n_batch):
                        g00, g10, g20, g30, g01, g11, g21, g31 = _four_rows_example(
                            A, b * width + a_col + i, D, b * width + d_col + t, two, L,
                            g00, g10, g20, g30, g01, g11, g21, g31)
                _row_sum_end(grad, params, m, v, rows, g00, kind, settings)
                _row_sum_end(grad, params, m, v, rows + stride, g10, kind, settings)
                _row_sum_end(grad, params, m, v, rows + 2 * stride, g20, kind, settings)
                _row_sum_end(grad, params, m, v, rows + 3 * stride, g30, kind, settings)
                if two:
                    _row_sum_end(grad, params, m, v, rows + L, g01, kind, settings)
                    _row_sum_end(grad, params, m, v, rows + stride + L, g11, kind, settings)
                    _row_sum_end(grad, params, m, v, rows + 2 * stride + L, g21, kind, settings)
                    _row_sum_end(grad, params, m, v, rows + 3 * stride + L, g31, kind, settings)
                t += 2 * L if two else L
            i += 4
    one = grad.dtype.type(1)
    for i in range(i, r1):  # the last rows, and the bias
        row = off + i * stride
        for t in range(0, stride, L):
            g = _row_sum_start(grad, row + t, kind)
            for b in range(n_batch):
                g = vfma(vsplat(A[b, a_col + i] if i < n_in else one), vload(D, b * width + d_col + t), g)
            _row_sum_end(grad, params, m, v, row + t, g, kind, settings)


# -- activations ---------------------------------------------------------------------------------

# The scalar helpers below take an array and an index, f(z, j) = f(z[j]), to know its dtype: their
# arithmetic stays in it (float32 constants for a float32 network).

@njit(inline="always")
def sigmoid(z, j):
    """1 / (1 + e^-z[j]). Safe at any z: for very negative z, e^-z overflows to inf and the
    result is 0, never NaN."""
    one = z.dtype.type(1)
    return one / (one + np.exp(-z[j]))


@njit(inline="always")
def normal_cdf(z, j):
    """Phi(z[j]), the standard normal's distribution function: 0.5 (1 + erf(z / sqrt 2))."""
    half, one = z.dtype.type(0.5), z.dtype.type(1)
    return half * (one + math.erf(z[j] * z.dtype.type(0.7071067811865476)))


@njit(inline="always")
def gelu(z, j):
    """z Phi(z) at z[j]: the exact form of torch.nn.GELU() (its default), not the tanh one."""
    return z[j] * normal_cdf(z, j)


@njit(inline="always")
def gelu_derivative(z, j):
    """Phi(z) + z phi(z) at z[j], phi the standard normal's density. For large |z|, z * z
    overflows to inf and phi to 0: the derivative is then 0 or 1, never NaN."""
    x = z[j]
    return normal_cdf(z, j) + x * z.dtype.type(0.3989422804014327) * np.exp(z.dtype.type(-0.5) * x * x)


@njit(inline="always")
def silu_derivative(z, j):
    """d/dz z sigmoid(z) = s (1 + z (1 - s)) at z[j], s = sigmoid(z[j])."""
    one = z.dtype.type(1)
    s = sigmoid(z, j)
    return s * (one + z[j] * (one - s))


@kernel
def activation_forward(code, z, a, n):
    """a = f(z) for a hidden activation."""
    zero = z.dtype.type(0)
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
            a[j] = sigmoid(z, j)
    elif code == GELU:
        for j in range(n):
            a[j] = gelu(z, j)
    elif code == SILU:
        for j in range(n):
            a[j] = z[j] * sigmoid(z, j)
    else:
        for j in range(n):
            a[j] = z[j]


@kernel
def activation_backward(code, z, da, dz, n):
    """dz = da * f'(z). f' comes from z alone (not from the layer's output, which dropout may
    have changed). For ReLU, a whole vector at a time: the rows are padded to whole vectors, and
    padding z is zero, so padding dz comes out zero."""
    one = z.dtype.type(1)
    if code == RELU:
        for j in range(0, n, lanes(z)):
            vstore(dz, j, vwhere_positive(vload(z, j), vload(da, j)))
    elif code == LEAKY_RELU:
        slope = z.dtype.type(LEAKY_SLOPE)
        for j in range(n):
            dz[j] = da[j] if z[j] > 0 else slope * da[j]
    elif code == TANH:
        for j in range(n):
            t = np.tanh(z[j])
            dz[j] = da[j] * (one - t * t)
    elif code == SIGMOID:
        for j in range(n):
            s = sigmoid(z, j)
            dz[j] = da[j] * s * (one - s)
    elif code == GELU:
        for j in range(n):
            dz[j] = da[j] * gelu_derivative(z, j)
    elif code == SILU:
        for j in range(n):
            dz[j] = da[j] * silu_derivative(z, j)
    else:
        for j in range(n):
            dz[j] = da[j]


# -- output: softmax with cross-entropy ------------------------------------------------------------

@kernel
def softmax_forward(z, p, n):
    """p = softmax(z); returns log(sum(exp(z - max))) + max, the log-partition, for the loss.

    A whole vector at a time (rows are padded to whole vectors; the padding of p comes out
    zero): simd.vexp, since libm's exp, called once per class, is a noticeable part of a narrow
    network's epoch.
    """
    L = lanes(z)
    ninf = z.dtype.type(-np.inf)
    m = vsplat(ninf)
    for t in range(0, n, L):
        m = vmax(m, vtail(vload(z, t), n - t, ninf))
    largest = vlargest(m)
    shift = vsplat(largest)
    total = vzero(z)
    for t in range(0, n, L):
        e = vtail(vexp(vsub(vload(z, t), shift)), n - t, 0)
        vstore(p, t, e)
        total = vadd(total, e)
    s = vsum(total)
    inverse = vsplat(z.dtype.type(1) / s)
    for t in range(0, n, L):
        vstore(p, t, vmul(vload(p, t), inverse))
    return np.log(s) + largest


@kernel
def softmax_xent_backward(p, label, weight, dz, n):
    """dz = weight * (p - onehot(label)): the cross-entropy gradient through the softmax."""
    for j in range(n):
        dz[j] = weight * p[j]
    dz[label] -= weight


# -- output: identity with mean squared error (regression) -----------------------------------------

@kernel
def mse_forward(z, targets, e, n):
    """Mean over the outputs of (z_j - t_j)^2, as torch.nn.MSELoss."""
    s = z.dtype.type(0)
    for j in range(n):
        d = z[j] - targets[e, j]
        s += d * d
    return s / z.dtype.type(n)


@kernel
def mse_backward(z, targets, e, weight, dz, n):
    """dz = weight * 2 (z - t) / n."""
    c = weight * z.dtype.type(2) / z.dtype.type(n)
    for j in range(n):
        dz[j] = c * (z[j] - targets[e, j])


# -- output: sigmoid with binary cross-entropy (two classes, or several labels) --------------------

@kernel
def bce_forward(z, s, targets, e, n):
    """s = sigmoid(z); returns (the mean over the outputs of the binary cross-entropy with logits
    against targets[e], as torch.nn.BCEWithLogitsLoss; whether every output is on its target's
    side of 1/2).

    Each term from z, max(z, 0) - z t + log(1 + e^-|z|): finite for any z, where log(s) would
    overflow to -inf once s rounds to 0.
    """
    zero, half = z.dtype.type(0), z.dtype.type(0.5)
    total = zero
    hit = True
    for j in range(n):
        x, t = z[j], targets[e, j]
        s[j] = sigmoid(z, j)
        total += max(x, zero) - x * t + np.log1p(np.exp(-abs(x)))
        hit = hit and (s[j] > half) == (t > half)
    return total / z.dtype.type(n), hit


@kernel
def bce_backward(s, targets, e, weight, dz, n):
    """dz = weight * (s - t) / n: the binary cross-entropy's gradient through the sigmoid, from
    the outputs s that bce_forward stored."""
    c = weight / s.dtype.type(n)
    for j in range(n):
        dz[j] = c * (s[j] - targets[e, j])


# -- inverted dropout, from a counter-based random stream ------------------------------------------

@kernel
def dropout_uniform(key, e, layer, j):
    """A uniform number in [0, 1) that depends only on (key, example, layer, unit): the same mask
    whatever the thread that computes it (splitmix64's finaliser over a combined counter)."""
    x = key + np.uint64(e) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(layer) * np.uint64(0xD1B54A32D192ED03) \
        + np.uint64(j)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return np.float64(x >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@kernel
def dropout_apply(v, n, key, e, layer, rate):
    """v[j] *= 1/(1 - rate) if unit j is kept, else 0: the forward pass on activations and,
    with the same mask, the backward pass on their gradients."""
    keep_scale = v.dtype.type(1) / (v.dtype.type(1) - rate)
    for j in range(n):
        v[j] = v[j] * keep_scale if dropout_uniform(key, e, layer, j) >= rate else v.dtype.type(0)
