"""Where everything lives in the flat buffers, and how a step's gradient work is split.

Layer l (inputs n_in = sizes[l], outputs n_out = sizes[l + 1]) owns one row-major block of
(n_in + 1) x stride values of the parameter buffer: rows 0..n_in-1 are the weights leaving each
input unit, row n_in is the bias. ``stride`` is n_out rounded up to whole SIMD vectors of
Layout.lanes values (kernels/codes.py, VECTOR_BYTES: 64-byte vectors on AVX-512 CPUs, 16
float32 or 8 float64 values; else 32 bytes, 8 or 4 values), so that the kernels move whole
vectors, and one vector more where rows would be a multiple of 4 KB apart (Layout.strides); the
padding is zero and stays zero (its gradient is zero). Gradients and optimizer state use the
same layout, so an update is one loop over one segment of the flat buffers (kernels/optim.py).
Model files and ``MLP.gradient`` use the unpadded ("dense") layout: each layer's W (n_in x
n_out) then b, flattened.
"""

from __future__ import annotations

import functools
import math
from ctypes import addressof, c_char
from dataclasses import dataclass

import numpy as np

from .kernels.args import Buffers
from .kernels.codes import VECTOR_BYTES


CACHE_LINE = 64

from .kernels.tuning import DOT_MIN_VECTORS, PANEL_ROWS, TRANSPOSE_MIN_VECTORS


@dataclass(frozen=True)
class Layout:
    """Offsets of each layer's block in the parameter buffer and of its units in a batch row.
    Computed once per layout (every fit and prediction passes them to the kernels); the arrays
    are shared: do not modify them."""

    sizes: tuple[int, ...]
    dtype: np.dtype = np.dtype(np.float32)

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def lanes(self) -> int:
        """Values per SIMD vector."""
        return VECTOR_BYTES // np.dtype(self.dtype).itemsize

    @functools.cached_property
    def strides(self) -> np.ndarray:
        """strides[l]: layer l's outputs rounded up to whole vectors, and one vector more when
        that makes a multiple of 4 KB. A product streams a tile column of W down its rows: rows
        4 KB apart all fall into the same few sets of the L1 cache and evict each other (at
        784-1024-1024-10 the padded rows took 0.82x the epoch time, on an Intel Xeon)."""
        padded = [-(-n // self.lanes) * self.lanes for n in self.sizes[1:]]
        return np.array([self._clear_of_4k(s) for s in padded], dtype=np.int64)

    def _clear_of_4k(self, width: int) -> int:
        """width values, or one vector more if width values take a multiple of 4 KB."""
        return width + self.lanes if width * np.dtype(self.dtype).itemsize % 4096 == 0 else width

    @property
    def transposes_batch(self) -> bool:
        """Whether training sums the first layer's gradient over the batch transposed by input
        unit (wide first layers), rather than example by example."""
        return bool(self.strides[0] >= TRANSPOSE_MIN_VECTORS * self.lanes)

    @functools.cached_property
    def offsets(self) -> np.ndarray:
        """offsets[l]: first value of layer l's block; offsets[-1]: the buffer's length."""
        blocks = [(n_in + 1) * stride for n_in, stride in zip(self.sizes[:-1], self.strides)]
        return np.concatenate([[0], np.cumsum(blocks)]).astype(np.int64)

    @functools.cached_property
    def cols(self) -> np.ndarray:
        """cols[l]: first column of layer l's outputs in the Z/A/D rows; cols[-1]: their width."""
        return np.concatenate([[0], np.cumsum(self.strides)]).astype(np.int64)

    @functools.cached_property
    def row_width(self) -> int:
        """Values per row of the Z/A/D buffers: cols[-1], and one vector more when that makes a
        multiple of 4 KB. Rows 4 KB apart fall into the same sets of the L1 cache, and the
        products over a batch read a column of them: at 784-512-512-10 (rows of 1,024 float32)
        the weight gradient ran at half its speed."""
        return self._clear_of_4k(int(self.cols[-1]))

    @functools.cached_property
    def n_params(self) -> int:
        """Length of the padded parameter buffer."""
        return int(self.offsets[-1])

    @property
    def n_weights(self) -> int:
        """Number of real parameters (weights and biases)."""
        return sum((n_in + 1) * n_out for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]))

    def _block(self, params: np.ndarray, layer: int) -> np.ndarray:
        start, stop = self.offsets[layer], self.offsets[layer + 1]
        return params[start:stop].reshape(self.sizes[layer] + 1, int(self.strides[layer]))

    def weights(self, params: np.ndarray, layer: int) -> np.ndarray:
        """View of layer's weights, shape (n_in, n_out)."""
        return self._block(params, layer)[:-1, :self.sizes[layer + 1]]

    def bias(self, params: np.ndarray, layer: int) -> np.ndarray:
        """View of layer's bias, shape (n_out,)."""
        return self._block(params, layer)[-1, :self.sizes[layer + 1]]

    def to_dense(self, params: np.ndarray) -> np.ndarray:
        """The padded buffer in the dense layout: each layer's W (n_in x n_out), then b."""
        return np.concatenate([self._block(params, l)[:, :self.sizes[l + 1]].ravel()
                               for l in range(self.n_layers)])

    def from_dense(self, dense: np.ndarray) -> np.ndarray:
        """A padded buffer (zero padding) from the dense layout."""
        params = np.zeros(self.n_params, dtype=self.dtype)
        at = 0
        for l in range(self.n_layers):
            rows, n_out = self.sizes[l] + 1, self.sizes[l + 1]
            self._block(params, l)[:, :n_out] = dense[at:at + rows * n_out].reshape(rows, n_out)
            at += rows * n_out
        return params


def batch_buffers(layout: Layout, rows, batch_size: int, models: tuple[int, ...] = ()) -> tuple:
    """Working buffers of the training kernel for batches of ``batch_size`` examples drawn from
    ``rows`` (SparseRows):
    - Z, A, D: a row per example (padding zero);
    - col_ptr, col_example, col_value: the batch transposed by input unit (empty for narrow first
      layers);
    - weights_t, t_offsets: room for the transposed weights of the narrow layers among 1, 2, ...
      (layer l's block of sizes[l + 1] rows of strides[l - 1] values starts at t_offsets[l] and
      ends at t_offsets[l + 1]; padding zero). Layers of DOT_MIN_VECTORS vectors of outputs or
      more get none: their input gradient is summed along W's rows;
    - panel: room for a panel of PANEL_ROWS rows x 3 vectors of a dense layer's weights, packed
      (layers.dense_block_forward), where some layer is 3 vectors wide and there are 32 registers.
    ``models`` is a leading shape, (K,) for fit_many's K models."""
    width = layout.row_width
    n_units, entries = (layout.sizes[0] + 1, rows.most_in_batch(batch_size)) if layout.transposes_batch else (0, 0)
    blocks = [0, 0] + [layout.sizes[l + 1] * int(layout.strides[l - 1])
                       if layout.strides[l] < DOT_MIN_VECTORS * layout.lanes else 0 for l in range(1, layout.n_layers)]
    t_offsets = np.cumsum(blocks)[:layout.n_layers + 1].astype(np.int64)
    packs = VECTOR_BYTES == 64 and layout.n_layers > 1 and max(layout.strides) >= 3 * layout.lanes
    return Buffers(*(aligned_zeros((*models, batch_size, width), layout.dtype) for _ in range(3)),
                   aligned_zeros((*models, n_units), np.int32), aligned_zeros((*models, entries), np.int32),
                   aligned_zeros((*models, entries), layout.dtype), aligned_zeros((*models, sum(blocks)), layout.dtype),
                   np.broadcast_to(t_offsets, (*models, t_offsets.size)).copy() if models else t_offsets,
                   aligned_zeros((*models, PANEL_ROWS * 3 * layout.lanes if packs else 0), layout.dtype))


def aligned_zeros(shape, dtype) -> np.ndarray:
    """Zeros whose data starts on a cache line. The kernels' vector loads and stores (32 or 64 bytes)
    then never straddle two lines, as they would from where numpy's large arrays start, 16 bytes
    into a page."""
    dtype = np.dtype(dtype)
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    size = int(math.prod(shape)) * dtype.itemsize  # math.prod: far cheaper than np.prod on a tuple
    raw = np.zeros(size + CACHE_LINE, dtype=np.uint8)
    start = -address(raw) % CACHE_LINE
    return raw[start:start + size].view(dtype).reshape(shape)


def address(array: np.ndarray) -> int:
    """Where a writeable array's data starts: through the buffer protocol, cheaper than
    array.ctypes.data (fit allocates a dozen buffers)."""
    return addressof(c_char.from_buffer(array))


def cache_aligned(array: np.ndarray) -> np.ndarray:
    """``array`` itself when it is C-contiguous and starts on a cache line, else such a copy."""
    if array.flags.c_contiguous and (array.size == 0 or array.ctypes.data % CACHE_LINE == 0):
        return array
    copy = aligned_zeros(array.shape, array.dtype)
    copy[...] = array
    return copy


def gradient_plan(layout: Layout, workers: int, first_row_costs: np.ndarray | None = None) -> np.ndarray:
    """See _gradient_plan; without row costs, made once per layout and worker count."""
    if first_row_costs is None:
        return _even_gradient_plan(layout, workers)
    return _gradient_plan(layout, workers, first_row_costs)


@functools.lru_cache(maxsize=64)
def _even_gradient_plan(layout: Layout, workers: int) -> np.ndarray:
    return _gradient_plan(layout, workers, None)


def _gradient_plan(layout: Layout, workers: int, first_row_costs: np.ndarray | None) -> np.ndarray:
    """The gradient rows cut into disjoint ranges ("units") for ``workers`` workers to take in turn.

    A range costs about (non-zero inputs of its rows) x n_out. ``first_row_costs`` weighs the
    first layer's n_in + 1 rows (the non-zero count of each input column, then the number of
    examples for the bias) so that ranges of pixels balance; other rows weigh one each. Several
    ranges per worker, costliest first, so that whoever finishes first takes the next. The split
    changes which thread computes a row, never how: results do not depend on it.
    Returns units, (U, 3) int64: layer, first row, end row.
    """
    units, costs = [], []
    for layer, (n_in, n_out) in enumerate(zip(layout.sizes[:-1], layout.strides)):
        rows = n_in + 1
        if workers == 1:  # one range per layer
            units.append((layer, 0, rows))
            costs.append(rows * n_out)
            continue
        weight = np.ones(rows)
        if layer == 0 and first_row_costs is not None:
            weight = np.asarray(first_row_costs, dtype=float) + 1e-9
        pieces = min(rows, 4 * workers)
        edges = np.searchsorted(np.cumsum(weight), np.linspace(0, weight.sum(), pieces + 1)[1:-1])
        bounds = np.unique(np.concatenate([[0], edges, [rows]]))
        for r0, r1 in zip(bounds[:-1], bounds[1:]):
            units.append((layer, r0, r1))
            costs.append(weight[r0:r1].sum() * n_out)
    return np.array(units, dtype=np.int64)[np.argsort(costs, kind="stable")[::-1]]
