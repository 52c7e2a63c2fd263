"""MLP: a dense network whose training and inference run in the fused kernels."""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable, Sequence

import numpy as np

from .data.examples import Examples, SparseRows, validation_rows
from .data.labels import check_classes, class_indices, is_index_labels, learn_classes
from .data.prepared import sparse_rows
from .errors import DataError
from .kernels.args import Net
from .kernels.codes import ACTIVATION_CODES, IDENTITY, SIGMOID, SOFTMAX
from .layout import Layout, aligned_zeros, cache_aligned
from .optimizers import Optimizer
from .schedules import Schedule
from .training import EarlyStopping, History
from .data.checks import (check_binary_targets, check_labels, check_layer_sizes, check_network_size, check_targets,
                          check_weights)
from .kernels.tuning import PREDICT_MIN_WORK

INITS = ("uniform", "he", "glorot")
DTYPES = {"float32": np.float32, "float64": np.float64}
OUTPUTS = ("softmax", "linear", "sigmoid")
OUTPUT_CODES = {"softmax": SOFTMAX, "linear": IDENTITY, "sigmoid": SIGMOID}  # the output layer's code picks the loss


class MLP:
    """A multi-layer perceptron: dense layers, a hidden activation, and a softmax output with
    cross-entropy (classification), a linear output with mean squared error (regression), or a
    sigmoid output with binary cross-entropy (two classes, or several 0/1 labels per example).

    >>> model = MLP([784, 10, 10], pixels=True, seed=0)   # the tutorial's network, on 0..255 pixels
    >>> history = model.fit(X, y, epochs=5, batch_size=64, lr=0.1)
    >>> model.evaluate(X_test, y_test)["accuracy"]

    Parameters live in one flat buffer; ``get_weights``/``set_weights`` give each layer's W with
    shape (n_in, n_out) and b with shape (n_out,), ``get_params``/``set_params`` all of them as
    one flat vector (each layer's W, row by row, then b). Inputs are used as given, or with
    ``pixels=True`` as 0..255 pixel intensities divided by 255 (uint8 images are read as they
    are, the division folded into the first layer). Class labels may be of any type
    (``classes_``).
    The same seed gives bit-identical weights, whatever the number of threads.
    """

    def __init__(self, sizes: Sequence[int], *, activation: str = "relu", output: str = "softmax",
                 dropout: float = 0.0, init: str = "uniform", seed: int = 0, dtype: str = "float32",
                 pixels: bool | None = False, classes: Sequence | None = None) -> None:
        """``sizes``: inputs, hidden widths..., outputs. ``activation`` of the hidden layers:
        relu, leaky_relu, tanh, sigmoid, gelu (exact, erf form), silu or identity. ``output``:
        'softmax' (classes, y: labels 0..k-1), 'linear' (regression, y: k targets per example),
        or 'sigmoid' (binary cross-entropy with logits on each of the k outputs, as
        torch.nn.BCEWithLogitsLoss; y: 0/1 labels, one per example for k = 1 (two classes),
        else an (n, k) array of 0/1 labels, multi-label). ``dropout``: inverted dropout rate of
        the hidden layers while training. ``init``: 'uniform' (the tutorial's), 'he' or
        'glorot'. ``seed`` drives the weights, the shuffles and dropout. ``dtype``: 'float32' or
        'float64'. ``pixels``: True if inputs are 0..255 pixel intensities, which the network
        sees divided by 255; False (the default): inputs are used as given, uint8 too; None:
        uint8 inputs are pixels and others are used as given (fastnn 0.1's rule, kept for its
        model files). ``classes``: the class names of the outputs, in order (softmax); when not
        given, labels 0..k-1 are their own classes, and any other labels are learnt, sorted, at
        the first fit (``classes_``)."""
        sizes = check_layer_sizes(sizes)  # ints >= 1, not bools
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if output == "softmax" and sizes[-1] < 2:
            raise ValueError("a softmax output needs at least 2 classes")
        if activation not in ACTIVATION_CODES:
            raise ValueError(f"activation must be one of {sorted(ACTIVATION_CODES)}, got {activation!r}")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if not (pixels is None or isinstance(pixels, bool)):
            raise ValueError(f"pixels must be True, False or None, got {pixels!r}")
        if str(dtype) not in DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.dtype = np.dtype(DTYPES[str(dtype)])
        check_network_size(sizes, self.dtype.itemsize)  # before the parameter buffer is allocated
        self.layout = Layout(tuple(int(s) for s in sizes), self.dtype)
        self.activation = activation
        self.output = output
        self.dropout = float(dropout)
        self.pixels = pixels
        self.classes = None if classes is None else check_classes(classes, self.n_classes, output)
        self.init = init
        self.seed = int(seed)
        self.rng = np.random.default_rng(seed)
        self._params = aligned_zeros(self.layout.n_params, self.dtype)
        self.optimizer_state = None  # fastnn.training.OptimizerState, kept across fit calls
        self.epochs_trained = 0  # drives schedules and the dropout stream
        self.position: dict | None = None  # where an interrupted epoch stopped (see training.py)
        self.metadata: dict = {}  # what a loaded model file said besides the weights
        self._initialize()

    # -- parameters ----------------------------------------------------------------------------

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.layout.sizes

    @property
    def n_classes(self) -> int:
        return self.layout.sizes[-1]

    @property
    def _params(self) -> np.ndarray:
        """The flat parameter buffer the kernels train in place (see fastnn/layout.py)."""
        return self._param_buffer

    @_params.setter
    def _params(self, params: np.ndarray) -> None:
        self._param_buffer = cache_aligned(params)  # the kernels' vector loads never straddle two lines

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

    @property
    def classes_(self) -> np.ndarray:
        """The class of each output (softmax): the names learnt or given, else 0..k-1."""
        return np.asarray(self.classes) if self.classes is not None else np.arange(self.n_classes)

    def _sparse_rows(self, X, name: str = "X") -> SparseRows:
        return sparse_rows(X, self.sizes[0], self.dtype, name, self.pixels)

    def _classes_for(self, y, name: str, learn: bool) -> list | None:
        """The class names labels ``y`` are read by: the model's; else, at the first fit
        (``learn``) of an untrained model, those of labels other than 0..k-1; else None."""
        if self.classes is None and learn and self.epochs_trained == 0 and not is_index_labels(y, self.n_classes):
            return learn_classes(y, self.n_classes, name)
        return self.classes

    def _examples(self, X, y, sample_weight=None, class_weight=None, names=("X", "y"),
                  learn: bool = False) -> Examples:
        """Checked inputs, targets and loss weights, as the kernels read them. ``learn``: the
        training examples of a fit, whose labels may name the classes (kept once all is checked)."""
        rows = self._sparse_rows(X, names[0])
        n = rows.n_rows
        classes = None
        if self.output == "softmax":
            classes = self._classes_for(y, names[1], learn)
            labels = class_indices(y, classes, n, names[1]) if classes is not None else \
                check_labels(y, n, self.n_classes, names[1])
            if classes is not None and isinstance(class_weight, dict):
                class_weight = {int(class_indices([k], classes, 1, "class_weight")[0]): w
                                for k, w in class_weight.items()}
            targets = np.zeros((1, 1), dtype=self.dtype)
        else:
            check = check_binary_targets if self.output == "sigmoid" else check_targets
            targets = check(y, n, self.n_classes, self.dtype, names[1])
            labels = np.zeros(n, dtype=np.int32)
        weights = check_weights(sample_weight, class_weight, labels if self.output == "softmax" else None,
                                n, self.n_classes, self.dtype)
        self.classes = classes if self.output == "softmax" else self.classes
        return Examples(rows, labels, targets, weights)

    def _net(self, training_key: int = 0):
        acts = [ACTIVATION_CODES[self.activation]] * (self.layout.n_layers - 1)
        acts.append(OUTPUT_CODES[self.output])
        return Net(np.array(self.sizes, dtype=np.int64), self.layout.strides, self.layout.offsets,
                   self.layout.cols, np.array(acts, dtype=np.int64), self.dtype.type(self.dropout),
                   np.uint64(training_key))

    # -- training ------------------------------------------------------------------------------

    def fit(self, X, y, *, epochs: int = 1, batch_size: int = 64, lr: float | None = None,
            optimizer: Optimizer | None = None, schedule: Schedule | None = None, shuffle: bool = True,
            validation_data: tuple | None = None, validation_split: float = 0.0,
            early_stopping: EarlyStopping | None = None, sample_weight=None, class_weight=None,
            clip_norm: float | None = None, threads: int | None = None,
            on_block: Callable[[int, int, int], None] | None = None, blocks_per_epoch: int = 1,
            on_epoch: Callable[[int, History], None] | None = None, verbose: int = 0) -> History:
        """Train from the current weights; returns the per-epoch History.

        - ``X``: (n, n_features) inputs (see ``pixels``), or ``fastnn.prepare(X)``, converted
          once for many fits (as everywhere X goes). ``y``: class labels (softmax; any type,
          see ``classes``), 0/1 labels (sigmoid) or target values (linear).
        - ``optimizer``: SGD (the default, with ``lr`` 0.1), SGD(momentum=, nesterov=), RMSprop,
          Adam or AdamW from fastnn.optimizers; ``lr`` overrides its learning rate. Its state
          (momentum, moments, step count) stays with the model, so that a further fit or
          partial_fit with the same optimizer continues where this one stopped. fastnn.LBFGS
          instead runs full-batch L-BFGS (see fastnn/lbfgs.py: each iteration is an epoch).
        - ``schedule``: a learning-rate schedule from fastnn.schedules.
        - Each epoch visits the examples in an order drawn from the model's seeded generator (or
          in order, ``shuffle=False``); the last batch may be smaller; ``batch_size >= len(X)``
          is full-batch gradient descent, the tutorial's algorithm.
        - ``validation_data=(X_val, y_val)``, or ``validation_split``: that fraction of the
          examples, drawn with the seed, held out. ``early_stopping=EarlyStopping(patience=...)``
          stops when the validation loss (else the training loss) stops improving.
        - ``sample_weight`` (per example) and ``class_weight`` (dict or array per class) weigh
          the loss: each batch's loss is sum(w * loss) / sum(w), as torch's weighted losses.
        - ``clip_norm``: scale each batch's gradient down to this global L2 norm at most.
        - ``threads`` defaults to Numba's thread count; results do not depend on it.
        - ``verbose``: 0 silent, 1 a progress bar per epoch (tqdm.auto, also in notebooks), 2 a
          line per epoch.
        - ``on_block(epoch, batches_done, n_batches)`` runs after each of ``blocks_per_epoch``
          blocks of batches, ``on_epoch(epoch, history)`` after each epoch: Python runs only
          between blocks. ``epoch`` is the model's epoch number, counted from 1 over all its
          fits, as the command line counts (``epochs_trained`` once the epoch is done). When on_block or on_epoch returns True, training stops there
          (history.interrupted);
          the model then holds its position in the epoch, and a checkpoint saved now (save)
          resumes exactly: load it and call fit again with the same data and options.
        Raises TrainingDivergedError, with the weights of the last good block restored, if the
        loss becomes NaN or infinite.
        """
        from .training import Settings, train
        from .verbose import BAR_BLOCKS, callbacks
        from .lbfgs import LBFGS, fit_lbfgs

        if isinstance(optimizer, LBFGS):  # full batch, iterations driven by SciPy: see fastnn/lbfgs.py
            return fit_lbfgs(self, X, y, optimizer, sample_weight=sample_weight, class_weight=class_weight,
                             validation_data=validation_data, validation_split=validation_split, on_epoch=on_epoch,
                             verbose=verbose, minibatch_options=dict(lr=lr, schedule=schedule, clip_norm=clip_norm,
                                                                     early_stopping=early_stopping, on_block=on_block))
        on_block, on_epoch = callbacks(verbose, on_block, on_epoch)
        if verbose == 1:
            blocks_per_epoch = max(blocks_per_epoch, BAR_BLOCKS)
        settings = Settings.build(self, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                                  schedule=schedule, shuffle=shuffle, early_stopping=early_stopping,
                                  clip_norm=clip_norm, threads=threads, blocks_per_epoch=blocks_per_epoch)
        examples = self._examples(X, y, sample_weight, class_weight, learn=True)
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            validation = self._examples(*validation_data, names=("X_val", "y_val"))
        elif validation_split:
            examples, validation = self._split(examples, validation_split)
        return train(self, examples, validation, settings, on_block, on_epoch)

    def partial_fit(self, X, y, **options) -> History:
        """One more epoch over (X, y), keeping the optimizer's state: fit(X, y, epochs=1, ...)."""
        return self.fit(X, y, epochs=1, **options)

    def reset_optimizer(self) -> None:
        """Forget the optimizer's state (momentum, moments, step count)."""
        self.optimizer_state = None

    def _split(self, examples: Examples, fraction: float) -> tuple[Examples, Examples]:
        train, held = validation_rows(examples.rows.n_rows, fraction, self.seed)
        return examples.subset(train), examples.subset(held)

    # -- inference -----------------------------------------------------------------------------

    def _forward(self, examples: Examples):
        """Outputs (probabilities or regression values), per-example losses and hits."""
        from .kernels.codes import BLOCK, SYNC_SIZE
        from .native.loader import kernel
        from .parallel import work_per_batch
        from .workers import default_threads, run_workers

        n = examples.rows.n_rows
        outputs = np.empty((n, self.n_classes), dtype=self.dtype)
        losses = aligned_zeros(n, self.dtype)  # a block's losses on lines of its own, as in training
        hits = aligned_zeros(n, np.bool_)
        # Below PREDICT_MIN_WORK one worker does it all: a second would cost more than it saves.
        workers = max(1, min(default_threads(), -(-n // BLOCK))) if work_per_batch(self, examples, n) >= \
            PREDICT_MIN_WORK else 1
        sync, rows, net, data = np.zeros(SYNC_SIZE, dtype=np.int64), np.arange(n), self._net(), examples.kernel_tuple()
        buffers = [aligned_zeros((2, BLOCK, self.layout.row_width), self.dtype) for _ in range(workers)]
        predict_worker = kernel("predict_worker")
        run_workers(workers, lambda w: predict_worker(sync, self._params, net, data, rows, buffers[w][0],
                                                      buffers[w][1], outputs, losses, hits))
        if not np.isfinite(outputs).all():
            raise DataError(f"the network's outputs overflowed to NaN or infinity: these inputs or its weights "
                            f"are too large for {self.dtype.name}")
        return outputs, losses, hits

    def _unlabelled(self, X) -> Examples:
        rows = self._sparse_rows(X)
        return Examples(rows, np.zeros(rows.n_rows, np.int32), np.zeros((rows.n_rows, self.n_classes), self.dtype),
                        np.ones(rows.n_rows, self.dtype))

    def predict_proba(self, X) -> np.ndarray:
        """The outputs, shape (n, outputs): class probabilities (softmax), predicted values
        (linear), or each output's probability of label 1 (sigmoid; (n, 1) for two classes,
        the probability of class 1, not scikit-learn's (n, 2))."""
        return self._forward(self._unlabelled(X))[0]

    def predict(self, X) -> np.ndarray:
        """The most probable class of each example (softmax output), the predicted values
        (linear), or 0/1 labels (sigmoid: 1 where the probability is above 1/2; shape (n,) for
        one output, (n, k) for k labels)."""
        outputs = self.predict_proba(X)
        if self.output == "softmax":
            return self.classes_[outputs.argmax(axis=1)]
        if self.output == "sigmoid":
            labels = (outputs > 0.5).astype(np.int64)
            return labels[:, 0] if labels.shape[1] == 1 else labels
        return outputs

    @property
    def classifies(self) -> bool:
        """Whether the output predicts labels, and so has an accuracy (softmax or sigmoid)."""
        return self.output != "linear"

    def evaluate(self, X, y, metrics: Sequence[str] | None = None) -> dict:
        """Mean loss (cross-entropy, squared error, or binary cross-entropy averaged over the
        outputs) and, for labels, accuracy: the fraction of examples predicted right, for
        several sigmoid labels those with every label right (scikit-learn's accuracy_score on
        multi-label data, the subset accuracy).

        ``metrics`` asks for more, by name: 'report' (softmax: per-class precision, recall, F1
        and support under the class names, and their macro means, as `fastnn evaluate` prints),
        'confusion_matrix' (softmax: counts[true, predicted]), 'r2', 'rmse', 'mae' (linear)."""
        examples = self._examples(X, y)
        if not metrics:
            return self._metrics(examples)
        return self._more_metrics(examples, list(metrics))

    def _more_metrics(self, examples: Examples, names: list[str]) -> dict:
        from .metrics import classification_report, regression_report

        known = {"loss", "accuracy"} | ({"report", "confusion_matrix"} if self.output == "softmax" else set()) \
            | ({"r2", "rmse", "mae"} if self.output == "linear" else set())
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"metrics {unknown} are not among {sorted(known)} for a {self.output} output")
        outputs, losses, hits = self._forward(examples)
        found = {"loss": float(losses.mean(dtype=np.float64))}
        if self.classifies:
            found["accuracy"] = float(hits.mean())
        if self.output == "softmax":
            report = classification_report(examples.labels, outputs.argmax(axis=1), self.n_classes,
                                           names=self.classes_.tolist())
            found["report"] = {"classes": report["classes"], "macro": report["macro"]}
            found["confusion_matrix"] = np.array(report["confusion_matrix"])
        if self.output == "linear":
            found.update(regression_report(outputs, examples.targets))
        return {name: found[name] for name in names}

    def score(self, X, y) -> float:
        """scikit-learn's score: the accuracy of labels, R² (averaged over outputs) of values."""
        if self.classifies:
            return self.evaluate(X, y)["accuracy"]
        return self.evaluate(X, y, metrics=["r2"])["r2"]

    def _metrics(self, examples: Examples) -> dict[str, float]:
        _, losses, hits = self._forward(examples)
        metrics = {"loss": float(losses.mean(dtype=np.float64))}
        if self.classifies:
            metrics["accuracy"] = float(hits.mean())
        return metrics

    # -- description ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        settings = [f"activation={self.activation!r}", f"output={self.output!r}", f"init={self.init!r}",
                    f"seed={self.seed}", f"dtype={self.dtype.name!r}", f"pixels={self.pixels}"]
        if self.dropout:
            settings.append(f"dropout={self.dropout}")
        if self.classes is not None:
            settings.append(f"classes={self.classes!r}")
        return f"MLP({list(self.sizes)}, {', '.join(settings)})"

    def summary(self, print_fn: Callable[[str], None] = print) -> None:
        """Print (through ``print_fn``) the layers, their parameters and activations, the inputs,
        dtype, classes and training state, as Keras's summary does."""
        rows = [("layer", "shape", "parameters", "activation")]
        for l, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            last = l == len(self.sizes) - 2
            rows.append((f"dense {l + 1}", f"{n_in} -> {n_out}", f"{(n_in + 1) * n_out:,}",
                         ({"softmax": "softmax", "linear": "identity", "sigmoid": "sigmoid"}[self.output]
                          if last else self.activation)))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [f"MLP {'-'.join(map(str, self.sizes))}: {self.dtype.name}, inputs "
                 + ("0..255 pixels (divided by 255)" if self.pixels else "as given" if self.pixels is False
                    else "uint8 as pixels, others as given")]
        lines += ["  ".join(cell.ljust(w) if i in (0, 3) else cell.rjust(w) for i, (cell, w) in
                            enumerate(zip(row, widths))).rstrip() for row in rows]
        n = self.layout.n_weights
        lines.append(f"total: {n:,} parameters ({n * self.dtype.itemsize / 1024:,.1f} KiB)"
                     + (f", dropout {self.dropout:g}" if self.dropout else ""))
        if self.classes is not None:
            shown = ", ".join(map(str, self.classes[:10])) + (", ..." if len(self.classes) > 10 else "")
            lines.append(f"classes: {shown}")
        state = self.optimizer_state
        trained = f"trained {self.epochs_trained} epoch{'s' if self.epochs_trained != 1 else ''}"
        if state is not None:
            settings = ", ".join(f"{k}={v}" for k, v in asdict(state.optimizer).items())
            trained += f"; optimizer {type(state.optimizer).__name__}({settings}), {state.step:,} steps"
        lines.append(trained)
        print_fn("\n".join(lines))

    # -- files ---------------------------------------------------------------------------------

    def config(self) -> dict:
        """What it takes to build this network again: MLP(**config)."""
        return {"sizes": list(self.sizes), "activation": self.activation, "output": self.output,
                "dropout": self.dropout, "init": self.init, "seed": self.seed, "dtype": self.dtype.name,
                "pixels": self.pixels, "classes": self.classes}

    def save(self, path, **extra) -> None:
        """Save weights, config, optimizer state, generator state and training position to a
        model file, atomically (see fastnn.io): a checkpoint that training resumes from exactly.

        ``extra`` is stored as JSON metadata (training config, data checksum, ...).
        """
        from . import __version__, io
        arrays = {"params": self.get_params()}
        training = {"epochs_trained": self.epochs_trained, "position": self.position, "optimizer": None}
        state = self.optimizer_state
        if state is not None:
            training["optimizer"] = {"class": type(state.optimizer).__name__, "settings": asdict(state.optimizer),
                                     "step": state.step}
            for name in ("m", "v"):
                if getattr(state, name).size:
                    arrays[f"optimizer_{name}"] = self.layout.to_dense(getattr(state, name))
        io.save_arrays(path, arrays, {"fastnn": __version__, "model": self.config(),
                                      "rng": self.rng.bit_generator.state, "training": training, "extra": extra})

    @classmethod
    def load(cls, path) -> "MLP":
        """Load a model saved by save(). Any file that is not a valid model file (missing,
        truncated, tampered with, of another version, or crafted: see fastnn.io) raises
        ModelFileError naming it, before anything of the size it claims is allocated."""
        from . import io
        arrays, meta = io.load_arrays(path)
        return cls.from_file_contents(arrays, meta, path)

    @classmethod
    def from_file_contents(cls, arrays: dict, meta: dict, path) -> "MLP":
        """The model that ``io.load_arrays(path)`` read as (arrays, meta). Every field is checked
        for type and range first, and the parameter count is computed from the sizes and
        compared with the stored parameters before the network is built; ModelFileError
        otherwise."""
        from . import model_file
        from .errors import ModelFileError
        try:
            config = model_file.checked_config(meta.get("model"), arrays.get("params"))
            rng_state = model_file.checked_rng_state(meta.get("rng"), "generator state (rng)")
            training = meta.get("training") or {}
            if not isinstance(training, dict):
                raise ValueError(f"training must be an object, got {model_file.brief(training)}")
            epochs_trained = model_file.checked_count(training.get("epochs_trained", 0), "epochs_trained")
            position = model_file.checked_position(training.get("position"))
            extra = meta.get("extra", {})
            if not isinstance(extra, dict):
                raise ValueError(f"extra must be an object, got {model_file.brief(extra)}")
            model = cls(**config)
            model.set_params(arrays["params"])
            model.rng.bit_generator.state = rng_state
            model.epochs_trained = epochs_trained
            model.position = position
            if training.get("optimizer") is not None:
                model.optimizer_state = model_file.checked_optimizer_state(training["optimizer"], arrays, model)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as e:
            raise ModelFileError(f"model file {path} describes no valid network: {e}") from e
        model.metadata = extra
        return model

    # -- other runtimes (fastnn.export) --------------------------------------------------------

    def to_onnx(self, path, *, opset: int | None = None, pixels: bool | None = None) -> None:
        """Write this network as an ONNX graph (opset 17 by default) to ``path``, atomically:
        onnxruntime gives predict_proba's outputs from the same inputs, 0..255 for a pixels model,
        a table model's encoded row (fastnn.export.table_inputs). ``pixels``: only for a model of
        fastnn 0.1 (pixels None). Needs ``pip install 'fastnn[onnx]'``."""
        from .export import to_onnx

        to_onnx(self, path, opset=opset, pixels=pixels)

    def to_torch(self, *, pixels: bool | None = None):
        """This network as a torch.nn.Sequential whose outputs equal predict_proba: an input
        scaling module, Linear layers, activations and the output's Softmax/Sigmoid/Identity."""
        from .export import to_torch

        return to_torch(self, pixels=pixels)

    @classmethod
    def from_sklearn(cls, estimator, *, dtype: str | None = None) -> "MLP":
        """The network of a fitted scikit-learn MLPClassifier or MLPRegressor (its coefs_ and
        intercepts_), with the same predict_proba (see fastnn.export.from_sklearn)."""
        from .export import from_sklearn

        return from_sklearn(estimator, dtype=dtype)

    def gradient(self, X, y, sample_weight=None) -> np.ndarray:
        """The mean-loss gradient over (X, y) as one batch, flat in the dense layout (each layer's
        W (n_in x n_out) then b): what one full-batch step would follow."""
        from .layout import batch_buffers, gradient_plan
        from .native.loader import jit_module
        examples = self._examples(X, y, sample_weight)
        n = examples.rows.n_rows
        bufs = batch_buffers(self.layout, examples.rows, n)
        grad = np.zeros_like(self._params)
        jit_module("train").batch_gradient(self._params, grad, self._net(), examples.kernel_tuple(), np.arange(n, dtype=np.int64),
                       bufs, gradient_plan(self.layout, 1), np.empty(n, self.dtype), np.empty(n, np.bool_))
        return self.layout.to_dense(grad)
