"""MLP: a dense network whose training and inference run in the fused kernels."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .errors import DataError, TrainingDivergedError
from .layout import Layout, gradient_plan
from .validation import check_inputs, check_labels, check_positive_float, check_positive_int

ACTIVATIONS = {"identity": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4}
SOFTMAX = 5
INITS = ("uniform", "he", "glorot")
DTYPES = {"float32": np.float32, "float64": np.float64}

# Below this many multiply-adds per batch, a parallel region costs more than it saves.
PARALLEL_MIN_WORK = 200_000


@dataclass
class History:
    """Per-epoch metrics of a fit: training loss and accuracy (over the epoch, as it trained),
    validation loss and accuracy when validation data was given, and seconds per epoch."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class SparseRows:
    """Inputs as the kernels read them: the non-zero entries of each row, and their scale."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    scale: np.floating
    n_features: int

    def column_counts(self) -> np.ndarray:
        return np.bincount(self.indices, minlength=self.n_features)


class MLP:
    """A multi-layer perceptron for classification: dense layers, a hidden activation, softmax.

    >>> model = MLP([784, 10, 10], seed=0)            # the tutorial's network
    >>> history = model.fit(X, y, epochs=5, batch_size=64, lr=0.1)
    >>> model.evaluate(X_test, y_test)["accuracy"]

    Parameters live in one flat buffer; ``get_weights``/``set_weights`` give each layer's W with
    shape (n_in, n_out) and b with shape (n_out,), ``get_params``/``set_params`` all of them as
    one flat vector (each layer's W, row by row, then b). uint8 inputs are pixels,
    scaled by 1/255 inside the first layer; other numeric inputs are used as they are.
    The same seed gives bit-identical weights, whatever the number of threads.
    """

    def __init__(self, sizes: Sequence[int], *, activation: str = "relu", init: str = "uniform",
                 seed: int = 0, dtype: str = "float32") -> None:
        sizes = tuple(sizes)
        if len(sizes) < 2 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in sizes):
            raise ValueError(f"sizes must be at least two positive integers, got {sizes!r}")
        if sizes[-1] < 2:
            raise ValueError("the output layer needs at least 2 classes")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if str(dtype) not in DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.dtype = np.dtype(DTYPES[str(dtype)])
        self.layout = Layout(tuple(int(s) for s in sizes), self.dtype)
        self.activation = activation
        self.init = init
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._params = np.zeros(self.layout.n_params, dtype=self.dtype)
        self.metadata: dict = {}  # what a loaded model file said besides the weights
        self._initialize()

    # -- parameters ----------------------------------------------------------------------------

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.layout.sizes

    @property
    def n_classes(self) -> int:
        return self.layout.sizes[-1]

    def _initialize(self) -> None:
        """Draw every layer's weights from the seed, W before b, layer by layer.

        'uniform' is the tutorial's U[-0.5, 0.5) for W and b, drawn in its (n_out, n_in) order
        so that fastnn.reference.init_params(sizes, seed) gives the same numbers; 'he' and
        'glorot' are the fan-in and fan-in+fan-out scaled uniform laws, with zero biases.
        """
        for layer, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            if self.init == "uniform":
                W = self.rng.random((n_out, n_in)) - 0.5
                b = self.rng.random(n_out) - 0.5
            else:
                limit = np.sqrt(6.0 / (n_in if self.init == "he" else n_in + n_out))
                W = self.rng.uniform(-limit, limit, (n_out, n_in))
                b = np.zeros(n_out)
            self.layout.weights(self._params, layer)[:] = W.T
            self.layout.bias(self._params, layer)[:] = b

    def get_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Copies of each layer's (W, b): W has shape (n_in, n_out), b shape (n_out,)."""
        return [(self.layout.weights(self._params, l).copy(), self.layout.bias(self._params, l).copy())
                for l in range(self.layout.n_layers)]

    def get_params(self) -> np.ndarray:
        """A copy of every parameter as one flat vector: each layer's W (n_in x n_out), then b."""
        return self.layout.to_dense(self._params)

    def set_params(self, flat) -> None:
        """Set every parameter from one flat vector laid out as get_params gives it."""
        flat = np.asarray(flat)
        if flat.shape != (self.layout.n_weights,):
            raise ValueError(f"expected {self.layout.n_weights} parameters, got shape {flat.shape}")
        if not np.isfinite(flat).all():
            raise ValueError("parameters must be finite")
        self._params = self.layout.from_dense(flat.astype(self.dtype))

    def set_weights(self, weights: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """Set each layer's (W, b), shapes as get_weights gives them; values must be finite."""
        if len(weights) != self.layout.n_layers:
            raise ValueError(f"expected {self.layout.n_layers} (W, b) pairs, got {len(weights)}")
        new = self._params.copy()
        for l, (W, b) in enumerate(weights):
            n_in, n_out = self.sizes[l], self.sizes[l + 1]
            W, b = np.asarray(W), np.asarray(b)
            if W.shape != (n_in, n_out) or b.shape != (n_out,):
                raise ValueError(f"layer {l}: expected W {(n_in, n_out)} and b {(n_out,)}, "
                                 f"got {W.shape} and {b.shape}")
            self.layout.weights(new, l)[:] = W
            self.layout.bias(new, l)[:] = b
        if not np.isfinite(new).all():
            raise ValueError("weights must be finite")
        self._params = new

    # -- data ----------------------------------------------------------------------------------

    def _sparse_rows(self, X) -> SparseRows:
        from .kernels.sparse import to_sparse_rows
        X = check_inputs(X, self.sizes[0], self.dtype)
        indptr, indices, values = to_sparse_rows(X)
        scale = self.dtype.type(1 / 255) if X.dtype == np.uint8 else self.dtype.type(1)
        return SparseRows(indptr, indices, values, scale, self.sizes[0])

    def _net(self):
        acts = [ACTIVATIONS[self.activation]] * (self.layout.n_layers - 1) + [SOFTMAX]
        return (np.array(self.sizes, dtype=np.int64), self.layout.strides, self.layout.offsets,
                self.layout.cols, np.array(acts, dtype=np.int64))

    @staticmethod
    def _data(rows: SparseRows, labels: np.ndarray):
        return (rows.indptr, rows.indices, rows.values, rows.scale, labels)

    # -- training ------------------------------------------------------------------------------

    def fit(self, X, y, *, epochs: int = 1, batch_size: int = 64, lr: float = 0.1,
            shuffle: bool = True, validation_data: tuple | None = None, threads: int | None = None,
            on_block: Callable[[int, int, int], None] | None = None, blocks_per_epoch: int = 1,
            on_epoch: Callable[[int, History], None] | None = None) -> History:
        """Train with minibatch SGD; returns the per-epoch History.

        Each epoch visits the examples in an order drawn from the model's seeded generator
        (or in order, ``shuffle=False``); the last batch may be smaller. ``batch_size >= len(X)``
        is full-batch gradient descent, the tutorial's algorithm. ``threads`` defaults to Numba's
        thread count. ``on_block(epoch, batches_done, n_batches)`` is called after each of
        ``blocks_per_epoch`` blocks of batches (for progress bars); Python runs only between blocks.
        ``on_epoch(epoch, history)`` is called after each epoch.
        Raises TrainingDivergedError, with the weights of the last good block restored, if the
        loss becomes NaN or infinite.
        """
        import numba

        from .kernels.train import train_batches_parallel, train_batches_serial

        epochs = check_positive_int(epochs, "epochs", minimum=0)
        batch_size = check_positive_int(batch_size, "batch_size")
        blocks_per_epoch = check_positive_int(blocks_per_epoch, "blocks_per_epoch")
        lr = self.dtype.type(check_positive_float(lr, "lr"))
        rows = self._sparse_rows(X)
        labels = check_labels(y, rows.indptr.size - 1, self.n_classes)
        validation = self._validation_set(validation_data)
        n = labels.size
        batch_size = min(batch_size, n)
        n_batches = -(-n // batch_size)
        threads = numba.get_num_threads() if threads is None else check_positive_int(threads, "threads")
        parallel = threads > 1 and self._work_per_batch(rows, batch_size) >= PARALLEL_MIN_WORK
        train = train_batches_parallel if parallel else train_batches_serial
        plan = gradient_plan(self.layout, threads if parallel else 1,
                             np.append(rows.column_counts(), n))
        net, data = self._net(), self._data(rows, labels)
        width = int(self.layout.cols[-1])
        bufs = tuple(np.zeros((batch_size, width), dtype=self.dtype) for _ in range(3))  # padding stays 0
        grad = np.zeros_like(self._params)
        losses = np.empty(n, dtype=self.dtype)
        hits = np.empty(n, dtype=np.bool_)
        history = History()
        edges = np.linspace(0, n_batches, min(blocks_per_epoch, n_batches) + 1).astype(np.int64)
        saved_threads = numba.get_num_threads()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        try:
            for epoch in range(epochs):
                started = time.perf_counter()
                order = self.rng.permutation(n) if shuffle else np.arange(n)
                for first, last in zip(edges[:-1], edges[1:]):
                    good = self._params.copy()
                    train(self._params, grad, net, data, order, batch_size, first, last, lr, bufs, plan,
                          losses, hits)
                    if not np.isfinite(losses[first * batch_size:min(n, last * batch_size)]).all() \
                            or not np.isfinite(self._params).all():
                        self._params = good
                        raise TrainingDivergedError(
                            f"the loss became NaN or infinite in epoch {epoch + 1} (lr={lr:g} may be "
                            "too high); the weights from before that block of batches were kept")
                    if on_block is not None:
                        on_block(epoch, int(last), n_batches)
                history.seconds.append(time.perf_counter() - started)
                history.loss.append(float(losses.mean(dtype=np.float64)))
                history.accuracy.append(float(hits.mean()))
                if validation is not None:
                    metrics = self._evaluate_rows(*validation)
                    history.val_loss.append(metrics["loss"])
                    history.val_accuracy.append(metrics["accuracy"])
                if on_epoch is not None:
                    on_epoch(epoch, history)
        finally:
            numba.set_num_threads(saved_threads)
        return history

    def _work_per_batch(self, rows: SparseRows, batch_size: int) -> float:
        """Multiply-adds of one batch's forward and backward passes (sparse first layer)."""
        nnz_per_row = rows.values.size / max(rows.indptr.size - 1, 1)
        dense = sum(a * b for a, b in zip(self.sizes[1:-1], self.sizes[2:]))
        return batch_size * 2 * (nnz_per_row * self.sizes[1] + 1.5 * dense)

    def _validation_set(self, validation_data):
        if validation_data is None:
            return None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (X_val, y_val)")
        rows = self._sparse_rows(validation_data[0])
        return rows, check_labels(validation_data[1], rows.indptr.size - 1, self.n_classes, "y_val")

    # -- inference -----------------------------------------------------------------------------

    def _forward(self, rows: SparseRows, labels: np.ndarray):
        from .kernels.train import predict_rows
        n = rows.indptr.size - 1
        probs = np.empty((n, self.n_classes), dtype=self.dtype)
        losses = np.empty(n, dtype=self.dtype)
        hits = np.empty(n, dtype=np.bool_)
        predict_rows(self._params, self._net(), self._data(rows, labels), probs, losses, hits)
        return probs, losses, hits

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n, n_classes)."""
        rows = self._sparse_rows(X)
        return self._forward(rows, np.zeros(rows.indptr.size - 1, dtype=np.int32))[0]

    def predict(self, X) -> np.ndarray:
        """The most probable class of each example."""
        return self.predict_proba(X).argmax(axis=1)

    def evaluate(self, X, y) -> dict[str, float]:
        """Mean cross-entropy loss and accuracy: {'loss': ..., 'accuracy': ...}."""
        rows = self._sparse_rows(X)
        return self._evaluate_rows(rows, check_labels(y, rows.indptr.size - 1, self.n_classes))

    def _evaluate_rows(self, rows: SparseRows, labels: np.ndarray) -> dict[str, float]:
        _, losses, hits = self._forward(rows, labels)
        return {"loss": float(losses.mean(dtype=np.float64)), "accuracy": float(hits.mean())}

    # -- files ---------------------------------------------------------------------------------

    def config(self) -> dict:
        """What it takes to build this network again: MLP(**config)."""
        return {"sizes": list(self.sizes), "activation": self.activation, "init": self.init,
                "seed": self.seed, "dtype": self.dtype.name}

    def save(self, path, **extra) -> None:
        """Save weights, config and generator state to a model file (atomically; see fastnn.io).

        ``extra`` is stored as JSON metadata (training config, data checksum, ...).
        """
        from . import __version__, io
        io.save_arrays(path, {"params": self.get_params()},
                       {"fastnn": __version__, "model": self.config(),
                        "rng": self.rng.bit_generator.state, "extra": extra})

    @classmethod
    def load(cls, path) -> "MLP":
        """Load a model saved by save(); raises ModelFileError for anything but a valid file."""
        from . import io
        from .errors import ModelFileError
        arrays, meta = io.load_arrays(path)
        try:
            model = cls(**meta["model"])
            params = arrays["params"]
            if params.dtype != model.dtype:
                raise ValueError(f"parameters of dtype {params.dtype} in a {model.dtype} network")
            model.set_params(params)
            model.rng.bit_generator.state = meta["rng"]
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"model file {path} describes no valid network: {e}") from e
        model.metadata = meta.get("extra", {})
        return model

    def gradient(self, X, y) -> np.ndarray:
        """The mean-loss gradient over (X, y) as one batch, flat in the dense layout (each layer's
        W (n_in x n_out) then b)."""
        from .kernels.train import batch_gradient
        rows = self._sparse_rows(X)
        labels = check_labels(y, rows.indptr.size - 1, self.n_classes)
        n = labels.size
        plan = gradient_plan(self.layout, 1)
        bufs = tuple(np.zeros((n, int(self.layout.cols[-1])), dtype=self.dtype) for _ in range(3))
        grad = np.zeros_like(self._params)
        batch_gradient(self._params, grad, self._net(), self._data(rows, labels),
                       np.arange(n, dtype=np.int64), bufs, plan, np.empty(n, self.dtype),
                       np.empty(n, np.bool_))
        return self.layout.to_dense(grad)
