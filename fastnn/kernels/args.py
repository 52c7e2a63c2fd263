"""The argument tuples of the training and prediction kernels (kernels/train.py), by name.

Numba passes a NamedTuple as it passes a tuple (its fields are the leaves), so the kernels read
``data.labels`` where they would read ``data[4]``. This module imports no Numba: the Python side
builds these tuples.
"""

from typing import NamedTuple

import numpy as np


class Net(NamedTuple):
    """The network's shape, and what a forward pass needs besides the weights."""

    sizes: np.ndarray  # int64 (L + 1,): layer widths, inputs first
    strides: np.ndarray  # int64 (L,): each layer's outputs padded to whole SIMD vectors
    offsets: np.ndarray  # int64 (L + 1,): each layer's first value in the flat parameters; their length
    cols: np.ndarray  # int64 (L + 1,): each layer's first column in the rows of Z, A, D; their width
    acts: np.ndarray  # int64 (L,): activation codes, the last SOFTMAX, IDENTITY or SIGMOID (which picks the loss)
    dropout: np.floating  # the hidden layers' dropout rate
    key: np.uint64  # the key of this epoch's dropout stream


class Data(NamedTuple):
    """The examples: inputs as sorted sparse rows, and what the loss compares the outputs with."""

    indptr: np.ndarray  # int64 (n + 1,): row i's entries are indptr[i]..indptr[i + 1] - 1
    indices: np.ndarray  # uint16 or int32: their input units, increasing within a row
    values: np.ndarray  # uint8 pixels or floats
    scale: np.floating  # the factor on values (1/255 for pixels)
    labels: np.ndarray  # int32 (n,): class labels (zeros for regression)
    targets: np.ndarray  # float (n, k): regression targets (zeros for classes)
    weights: np.ndarray  # float (n,): each example's loss weight
    halves: np.ndarray  # int64 (n,): each row's first entry at or past the first layer's split


class Buffers(NamedTuple):
    """A worker's working memory for one batch (layout.batch_buffers)."""

    Z: np.ndarray  # (rows, width): pre-activations, one row per example
    A: np.ndarray  # activations
    D: np.ndarray  # their gradients (error signals)
    col_ptr: np.ndarray  # the batch transposed by input unit (empty for narrow first layers)
    col_example: np.ndarray
    col_value: np.ndarray
    weights_t: np.ndarray  # the narrow layers among 1, 2, ... transposed, for their input gradients
    t_offsets: np.ndarray  # int64: where each layer's block of weights_t starts (and the last ends)
    panel: np.ndarray  # room for a panel of a dense layer's weights, packed (layers.dense_block_forward)


class Hyper(NamedTuple):
    """An update rule's settings (optimizers.Optimizer.settings), in float64: each rule takes the
    ones it has (kernels/optim.py)."""

    beta1: float  # SGD's momentum, RMSprop's alpha, Adam's beta1
    beta2: float  # Adam's beta2
    eps: float  # RMSprop's and Adam's
    weight_decay: float


class Opt(NamedTuple):
    """The update rule (kernels/optim.py), its settings and state, and each batch's learning rate."""

    kind: int  # codes.SGD, MOMENTUM, ...
    m: np.ndarray  # momentum, RMSprop's squares or Adam's first moments, in the parameters' layout; or empty
    v: np.ndarray  # Adam's second moments; or empty
    hyper: Hyper
    lrs: np.ndarray  # (batches,): each batch's learning rate
    clip_norm: float  # the gradient's norm limit; 0: none
    step: int  # the step number (from 1) of the call's first batch: Adam's bias corrections
