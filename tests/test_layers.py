"""The layers' kernels against float64 NumPy: the output layer's vector exp and softmax, and the
dense layers' products over a block of examples."""

import numpy as np
import pytest
from numba import njit

from fastnn.kernels.layers import dense_backward_rows, softmax_forward
from fastnn.kernels.simd import VECTOR_BYTES, lanes, vexp, vload, vstore, vzero


@njit
def exp_by_vectors(x, out):
    for t in range(0, x.size, lanes(x)):
        vstore(out, t, vexp(vload(x, t)))


def vector_exp(x: np.ndarray) -> np.ndarray:
    lanes_ = VECTOR_BYTES // x.itemsize
    padded = np.zeros(-(-x.size // lanes_) * lanes_, x.dtype)
    padded[:x.size] = x
    out = np.empty_like(padded)
    exp_by_vectors(padded, out)
    return out[:x.size]


@pytest.mark.parametrize("dtype, low, high", [(np.float32, -87.3, 88.0), (np.float64, -708.0, 709.0)])
def test_vector_exp_is_within_one_ulp_over_its_range(dtype, low, high):
    x = np.linspace(low, high, 200_003).astype(dtype)
    exact = np.exp(x.astype(np.longdouble))
    ulps = np.abs(vector_exp(x) - exact) / np.spacing(exact.astype(dtype))
    assert ulps.max() < 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vector_exp_outside_its_range(dtype):
    x = np.array([np.nan, -np.inf, np.inf, -1000.0, 1000.0, 0.0], dtype)
    np.testing.assert_array_equal(vector_exp(x), [np.nan, 0.0, np.inf, 0.0, np.inf, 1.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 3, 4, 8, 10, 17])
def test_softmax_matches_numpy_and_zeroes_the_padding(dtype, n):
    lanes_ = VECTOR_BYTES // np.dtype(dtype).itemsize
    width = -(-n // lanes_) * lanes_
    z = np.full(width, 1e30, dtype)  # padding past n must not count as a class
    z[:n] = np.random.default_rng(n).standard_normal(n) * 10
    p = np.full(width, 7.0, dtype)
    log_partition = softmax_forward(z, p, n)
    exact = z[:n].astype(np.float64)
    shifted = np.exp(exact - exact.max())
    np.testing.assert_allclose(p[:n], shifted / shifted.sum(), rtol=2e-5 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(log_partition, np.log(shifted.sum()) + exact.max(),
                               rtol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_array_equal(p[n:], 0)


def padded_layer(n_in, n_out, dtype, rng):
    """A layer's (n_in + 1) x stride block (the bias last, padding zero) as layout.py keeps it,
    and its W and b."""
    from fastnn.layout import Layout

    stride = int(Layout((n_in, n_out), np.dtype(dtype)).strides[0])
    block = np.zeros((n_in + 1, stride), dtype)
    block[:, :n_out] = rng.standard_normal((n_in + 1, n_out))
    return block.ravel(), stride, block[:n_in, :n_out].astype(np.float64), block[n_in, :n_out].astype(np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_rows_and_batch_rows_are_never_a_multiple_of_4k_apart(dtype):
    from fastnn.layout import Layout

    for sizes in [(784, 1024, 1024, 10), (3, 2048, 512, 7), (5, 10, 256, 1000), (1024, 16, 1008)]:
        layout = Layout(sizes, np.dtype(dtype))
        lanes, item = layout.lanes, np.dtype(dtype).itemsize
        for n_out, stride in zip(sizes[1:], layout.strides):
            assert stride % lanes == 0 and n_out <= stride < n_out + 2 * lanes and stride * item % 4096 != 0
            assert stride - lanes < n_out or (stride - lanes) * item % 4096 == 0  # one vector more only there
        assert layout.row_width * item % 4096 != 0 and layout.row_width - layout.cols[-1] in (0, lanes)


# Rows not a multiple of 4, inputs past a panel (PANEL_ROWS), outputs of 1 to 5 vectors and more,
# and a whole vector of padding (rows of 1,024 values: Layout.strides).
PRODUCT_SHAPES = [(7, 5, 3), (16, 33, 70), (13, 600, 20), (21, 64, 257), (4, 1030, 130), (6, 40, 1024),
                  (45, 1030, 100)]


def panel_room(dtype):
    """Room for dense_block_forward's packed panels, as layout.batch_buffers gives it."""
    from fastnn.kernels.tuning import PANEL_ROWS
    return np.zeros(PANEL_ROWS * 3 * VECTOR_BYTES // np.dtype(dtype).itemsize, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch, n_in, n_out", PRODUCT_SHAPES)
def test_block_products_match_numpy_and_do_not_depend_on_the_blocks(dtype, batch, n_in, n_out):
    from fastnn.kernels.layers import dense_block_backward_input, dense_block_forward

    rng = np.random.default_rng(n_in)
    params, stride, W, b = padded_layer(n_in, n_out, dtype, rng)
    width = n_in + 3 + stride  # the inputs' columns, a gap, then the outputs'
    X = np.zeros((batch, width), dtype)
    X[:, :n_in] = rng.standard_normal((batch, n_in))
    X[:, n_in + 3:n_in + 3 + n_out] = rng.standard_normal((batch, n_out))
    tolerance = 1e-4 if dtype == np.float32 else 1e-12

    forward = X.copy()
    dense_block_forward(params, 0, n_in, stride, True, X, 0, forward, n_in + 3, 0, batch, panel_room(dtype))
    Z = forward[:, n_in + 3:]
    assert np.allclose(Z[:, :n_out], X[:, :n_in].astype(np.float64) @ W + b, rtol=tolerance, atol=tolerance)
    assert not Z[:, n_out:].any()  # the padding stays zero

    gradient = X.copy()
    dense_block_backward_input(params, 0, n_in, stride, X, n_in + 3, gradient, 0, 0, batch, X, 0, False)
    expected = X[:, n_in + 3:n_in + 3 + n_out].astype(np.float64) @ W.T
    assert np.allclose(gradient[:, :n_in], expected, rtol=tolerance, atol=tolerance)
    assert np.array_equal(gradient[:, n_in:], X[:, n_in:])  # nothing past the inputs' columns

    # Any grouping of the rows (blocks of phase 1, one worker's or another's) gives the same bits,
    # with W's panels packed or read in place.
    for cuts, panel in (([0, 1, batch], X[0, :0]), ([0, 3, 5, batch], panel_room(dtype)), ([0, batch // 2, batch], X[0, :0])):
        cuts = sorted({min(cut, batch) for cut in cuts})  # the kernels check no bounds
        pieces_forward, pieces_gradient = X.copy(), X.copy()
        for b0, b1 in zip(cuts[:-1], cuts[1:]):
            dense_block_forward(params, 0, n_in, stride, True, X, 0, pieces_forward, n_in + 3, b0, b1, panel)
            dense_block_backward_input(params, 0, n_in, stride, X, n_in + 3, pieces_gradient, 0, b0, b1, X, 0, False)
        assert np.array_equal(pieces_forward, forward) and np.array_equal(pieces_gradient, gradient)


# Layers wide enough to skip zeros (tuning.ZERO_SKIP_MIN_VECTORS), with the row and input
# counts of PRODUCT_SHAPES, and more groups of four rows x panels than a 64-bit mask holds.
SKIPPING_SHAPES = [(7, 5, 260), (16, 33, 300), (13, 600, 257), (21, 64, 270), (4, 1030, 300), (300, 600, 260)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch, n_in, n_out", SKIPPING_SHAPES)
def test_forward_skips_only_inputs_that_are_zero(dtype, batch, n_in, n_out):
    """ReLU's zeros: inputs that all four rows of a group leave at zero add nothing and are
    skipped; the sums match NumPy, a NaN input still makes its row NaN, and any grouping of the
    rows gives the same bits."""
    from fastnn.kernels.layers import dense_block_forward

    rng = np.random.default_rng(batch)
    params, stride, W, b = padded_layer(n_in, n_out, dtype, rng)
    X = np.zeros((batch, n_in + 3 + stride), dtype)
    used = rng.random((batch, n_in)) < 0.03  # a few inputs per row, as a sparse ReLU layer's
    used[1, :] = True  # one dense row: its group of four takes every input
    X[:, :n_in] = np.where(used, rng.standard_normal((batch, n_in)), 0)
    nan_row = 6 if batch >= 8 else batch - 1  # in a sparse group of four where there is one
    X[nan_row, n_in - 1] = np.nan  # the last input: past the last whole vector of inputs, if any
    tolerance = 1e-4 if dtype == np.float32 else 1e-12
    finite = np.arange(batch) != nan_row

    forward = X.copy()
    dense_block_forward(params, 0, n_in, stride, True, X, 0, forward, n_in + 3, 0, batch, panel_room(dtype))
    Z = forward[:, n_in + 3:n_in + 3 + n_out]
    assert np.isnan(Z[nan_row]).all() and not np.isnan(Z[finite]).any()
    expected = X[finite, :n_in].astype(np.float64) @ W + b
    assert np.allclose(Z[finite], expected, rtol=tolerance, atol=tolerance)
    for cuts, panel in (([0, 1, batch], X[0, :0]), ([0, 3, 5, batch], panel_room(dtype)), ([0, batch // 2, batch], X[0, :0])):
        cuts = sorted({min(cut, batch) for cut in cuts})
        pieces = X.copy()
        for b0, b1 in zip(cuts[:-1], cuts[1:]):
            dense_block_forward(params, 0, n_in, stride, True, X, 0, pieces, n_in + 3, b0, b1, panel)
        assert np.array_equal(pieces, forward, equal_nan=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_tiles_of_eight_rows_beside_groups_that_skip(dtype):
    """Rows whose groups of four multiply every input (tiles of eight rows, from packed panels
    or from W) beside groups that skip their zero inputs: NumPy's sums, and the same bits
    whichever way the rows are cut."""
    from fastnn.kernels.layers import dense_block_forward

    rng = np.random.default_rng(7)
    batch, n_in, n_out = 64, 600, 300  # 300 outputs: wide enough to skip zeros, tiles of 3, 3, ... vectors
    params, stride, W, b = padded_layer(n_in, n_out, dtype, rng)
    X = np.zeros((batch, n_in + 3 + stride), dtype)
    dense = np.zeros(batch, bool)
    dense[:16] = dense[40:48] = True  # two tiles of eight, one of them past groups that skip
    used = dense[:, None] | (rng.random((batch, n_in)) < 0.03)
    X[:, :n_in] = np.where(used, rng.standard_normal((batch, n_in)), 0)
    tolerance = 1e-4 if dtype == np.float32 else 1e-12

    forward = X.copy()
    dense_block_forward(params, 0, n_in, stride, True, X, 0, forward, n_in + 3, 0, batch, panel_room(dtype))
    expected = X[:, :n_in].astype(np.float64) @ W + b
    assert np.allclose(forward[:, n_in + 3:n_in + 3 + n_out], expected, rtol=tolerance, atol=tolerance)
    for cuts, panel in (([0, 40, batch], X[0, :0]), ([0, 8, 44, batch], panel_room(dtype)), ([0, batch], X[0, :0])):
        pieces = X.copy()
        for b0, b1 in zip(cuts[:-1], cuts[1:]):
            dense_block_forward(params, 0, n_in, stride, True, X, 0, pieces, n_in + 3, b0, b1, panel)
        assert np.array_equal(pieces, forward)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch, n_in, n_out", [(13, 150, 300), (16, 64, 257)])
def test_input_gradient_skips_only_tiles_relu_zeroes(dtype, batch, n_in, n_out):
    """Below a ReLU layer, a tile of four examples x four inputs whose pre-activations are all
    <= 0 is not computed: what ReLU's backward pass keeps (where z > 0) has the same bits as
    computing every tile, and some tiles were skipped."""
    from fastnn.kernels.layers import activation_backward, dense_block_backward_input
    from fastnn.kernels.codes import RELU

    rng = np.random.default_rng(n_in)
    params, stride, _, _ = padded_layer(n_in, n_out, dtype, rng)
    width = n_in + 3 + stride
    X = np.zeros((batch, width), dtype)
    X[:, n_in + 3:n_in + 3 + n_out] = rng.standard_normal((batch, n_out))  # D, the layer's output gradient
    Z = np.zeros((batch, n_in + 16), dtype)  # the ReLU layer's pre-activations (rows padded): a few active
    Z[:, :n_in] = np.where(rng.random((batch, n_in)) < 0.04, 1.0, -1.0) * rng.random((batch, n_in))
    Z[:, 40:44] = np.nan  # NaN is not > 0: inactive, as ReLU's derivative takes it

    every, skipping = X.copy(), X.copy()
    skipping[:, :n_in] = np.nan  # what a skipped tile leaves
    dense_block_backward_input(params, 0, n_in, stride, X, n_in + 3, every, 0, 0, batch, Z, 0, False)
    dense_block_backward_input(params, 0, n_in, stride, X, n_in + 3, skipping, 0, 0, batch, Z, 0, True)
    assert np.isnan(skipping[:, :n_in]).any()
    dz_every, dz_skipping = np.zeros_like(Z), np.zeros_like(Z)
    for b in range(batch):
        activation_backward(RELU, Z[b], every[b], dz_every[b], n_in)
        activation_backward(RELU, Z[b], skipping[b], dz_skipping[b], n_in)
    assert np.array_equal(dz_every, dz_skipping)
    active = Z[:, :n_in] > 0
    assert np.array_equal(np.where(active, every[:, :n_in], 0), np.where(active, skipping[:, :n_in], 0))


@njit
def stored_weight_gradient(grad, n_in, stride, A, D, d_col, n_batch, r0, r1):
    """dense_backward_rows for rows r0..r1 of a layer at grad[0], storing the sums (kind -1)."""
    zero = vzero(grad)
    dense_backward_rows(grad, 0, n_in, stride, A, 0, D, d_col, n_batch, r0, r1, grad, grad, grad, -1,
                        (zero, zero, zero, zero, zero, zero, zero, zero))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch, n_in, n_out", PRODUCT_SHAPES + [(9, 6, 600), (5, 11, 1100)])
def test_weight_gradient_matches_numpy_in_any_rows(dtype, batch, n_in, n_out):
    """A^T D and the bias's sum of D, rows past 4 at a time and columns past a block
    (GRADIENT_COLUMN_BYTES) included; any cut into row ranges (phase 2's units) gives the same
    bits."""
    rng = np.random.default_rng(n_out)
    _, stride, _, _ = padded_layer(n_in, n_out, dtype, rng)
    width = n_in + 3 + stride
    X = np.zeros((batch, width), dtype)
    X[:, :n_in] = rng.standard_normal((batch, n_in))
    X[:, n_in + 3:n_in + 3 + n_out] = rng.standard_normal((batch, n_out))
    A, D = X[:, :n_in].astype(np.float64), X[:, n_in + 3:n_in + 3 + n_out].astype(np.float64)
    tolerance = 1e-4 if dtype == np.float32 else 1e-12

    grad = np.zeros((n_in + 1) * stride, dtype)
    stored_weight_gradient(grad, n_in, stride, X, X, n_in + 3, batch, 0, n_in + 1)
    rows = grad.reshape(n_in + 1, stride)
    assert np.allclose(rows[:n_in, :n_out], A.T @ D, rtol=tolerance, atol=tolerance)
    assert np.allclose(rows[n_in, :n_out], D.sum(axis=0), rtol=tolerance, atol=tolerance)
    assert not rows[:, n_out:].any()

    pieces = np.zeros_like(grad)
    cuts = sorted({0, min(n_in, 5), n_in // 2, n_in, n_in + 1})
    for r0, r1 in zip(cuts[:-1], cuts[1:]):
        stored_weight_gradient(pieces, n_in, stride, X, X, n_in + 3, batch, r0, r1)
    assert np.array_equal(pieces, grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [13, 64, 100, 128, 131])
def test_weight_gradient_skips_only_examples_whose_inputs_are_zero(dtype, batch):
    """ReLU's zeros along the batch: examples that leave a group of four inputs at zero add
    nothing and are skipped where they are most (batches of up to 128). The rows alternate
    stretches of sparse and dense inputs, so that row ranges cut elsewhere skip in other
    groups: every cut gives the same bits, and the sums match NumPy; a NaN input still makes
    its rows' gradient NaN."""
    n_in, n_out = 150, 260
    rng = np.random.default_rng(batch)
    _, stride, _, _ = padded_layer(n_in, n_out, dtype, rng)
    width = n_in + 3 + stride
    X = np.zeros((batch, width), dtype)
    density = np.where(np.arange(n_in) // 24 % 2 == 0, 0.03, 0.9)
    X[:, :n_in] = np.where(rng.random((batch, n_in)) < density, rng.standard_normal((batch, n_in)), 0)
    X[:, n_in + 3:n_in + 3 + n_out] = rng.standard_normal((batch, n_out))
    X[batch - 1, 5] = np.nan  # in a sparse stretch
    A, D = X[:, :n_in].astype(np.float64), X[:, n_in + 3:n_in + 3 + n_out].astype(np.float64)
    tolerance = 1e-4 if dtype == np.float32 else 1e-12

    grad = np.zeros((n_in + 1) * stride, dtype)
    stored_weight_gradient(grad, n_in, stride, X, X, n_in + 3, batch, 0, n_in + 1)
    rows = grad.reshape(n_in + 1, stride)[:n_in, :n_out]
    assert np.isnan(rows[5]).all() and not np.isnan(np.delete(rows, 5, axis=0)).any()
    expected = np.nan_to_num(A).T @ D
    assert np.allclose(np.delete(rows, 5, axis=0), np.delete(expected, 5, axis=0), rtol=tolerance, atol=tolerance)
    for cuts in ([0, 4, 150, 151], [0, 28, 100, 151], [0, 52, 151]):
        pieces = np.zeros_like(grad)
        for r0, r1 in zip(cuts[:-1], cuts[1:]):
            stored_weight_gradient(pieces, n_in, stride, X, X, n_in + 3, batch, r0, r1)
        assert np.array_equal(pieces, grad, equal_nan=True)


# -- gelu, silu and the sigmoid output with binary cross-entropy ---------------------------------

# Far past where exp overflows (float32 near 88) and z * z (near 1.8e19): no NaN may come out.
EXTREMES = [-3e38, -1e30, -1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4, 1e30, 3e38]


def exact_activation(name, x):
    """(f(x), f'(x)) in float64, from scipy's erf and expit (written apart from the kernels')."""
    from scipy.special import erf, expit

    if name == "gelu":
        cdf = 0.5 * (1 + erf(x / np.sqrt(2)))
        with np.errstate(over="ignore"):
            pdf = np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
        return x * cdf, cdf + x * pdf
    s = expit(x)
    return x * s, s * (1 + x * (1 - s))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["gelu", "silu"])
def test_gelu_and_silu_and_their_derivatives_match_numpy_everywhere(name, dtype):
    """Within 4 ulps (of max(1, |z|)) of float64 NumPy over [-12, 12] and at the extremes of
    the dtype, and never NaN. The tanh approximation of GELU would be off by 1e-4."""
    from fastnn.kernels.codes import ACTIVATION_CODES
    from fastnn.kernels.layers import activation_backward, activation_forward

    z = np.concatenate([np.linspace(-12, 12, 2001), EXTREMES]).astype(dtype)
    a, dz, da = np.empty_like(z), np.empty_like(z), np.full_like(z, 0.5)
    activation_forward(ACTIVATION_CODES[name], z, a, z.size)
    activation_backward(ACTIVATION_CODES[name], z, da, dz, z.size)
    assert np.isfinite(a).all() and np.isfinite(dz).all()
    x = z.astype(np.float64)
    f, derivative = exact_activation(name, x)
    allowed = 4 * np.finfo(dtype).eps * np.maximum(1, np.abs(x))
    assert (np.abs(a - f) <= allowed).all()
    assert (np.abs(dz - 0.5 * derivative) <= allowed).all()
    np.testing.assert_array_equal(dz[-3:], [0.5, 0.5, 0.5])  # f' of 1e4, 1e30, 3e38: 1 exactly
    np.testing.assert_array_equal(dz[-11:-9], [0, 0])  # of -3e38, -1e30: 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_is_finite_and_exact_at_any_logit(dtype):
    """bce_forward's loss against float64 NumPy's log(1 + e^z) - z t: each term alone, with
    logits far past where sigmoid rounds to 0 or 1, then the mean over 20 outputs;
    bce_backward's dz = w (s - t) / n."""
    from scipy.special import expit

    from fastnn.kernels.layers import bce_backward, bce_forward

    eps = np.finfo(dtype).eps
    z = np.array(EXTREMES[1:-1], dtype)
    s = np.empty_like(z)
    for j in range(z.size):
        for target in (0, 1):
            loss, _ = bce_forward(z[j:j + 1], s[j:j + 1], np.array([[target]], dtype), 0, 1)
            x = np.float64(z[j])
            exact = np.logaddexp(0, -x if target else x)  # log(1 + e^z) - z t, without its cancellation
            assert loss == pytest.approx(exact, rel=4 * eps, abs=8 * np.finfo(dtype).smallest_subnormal)
    np.testing.assert_array_equal(s[-3:], [1, 1, 1])  # sigmoid of 100, 1e4, 1e30
    np.testing.assert_array_equal(s[:2], [0, 0])  # of -1e30, -1e4

    rng = np.random.default_rng(1)
    z = (rng.normal(size=20) * 4).astype(dtype)
    t = rng.integers(0, 2, (3, z.size)).astype(dtype)
    s, dz, x = np.empty_like(z), np.empty_like(z), z.astype(np.float64)
    for e in range(3):
        loss, _ = bce_forward(z, s, t, e, z.size)
        assert loss == pytest.approx(np.mean(np.logaddexp(0, x) - x * t[e]), rel=8 * eps)
        np.testing.assert_allclose(s, expit(x), rtol=2 * eps)
        bce_backward(s, t, e, dtype(0.25), dz, z.size)
        np.testing.assert_allclose(dz, 0.25 * (expit(x) - t[e]) / z.size, rtol=0, atol=eps / z.size)


@pytest.mark.parametrize("z, t, hit", [
    ([3.0], [1], True), ([3.0], [0], False), ([-0.5], [0], True), ([-0.5], [1], False),
    ([0.0], [0], True),  # a probability of exactly 1/2 predicts 0
    ([2.0, -1.0, 0.5], [1, 0, 1], True), ([2.0, -1.0, 0.5], [1, 0, 0], False), ([2.0, 1.0, 0.5], [0, 1, 1], False),
])
def test_binary_cross_entropy_hit_needs_every_label_right(z, t, hit):
    """The kernel's hit: every output on its label's side of 1/2 (subset accuracy)."""
    from fastnn.kernels.layers import bce_forward

    z, t = np.array(z), np.array([t], dtype=np.float64)
    assert bce_forward(z, np.empty_like(z), t, 0, z.size)[1] is hit
