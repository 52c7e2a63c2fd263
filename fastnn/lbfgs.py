"""Full-batch L-BFGS: SciPy's L-BFGS-B minimizing a network's loss over the whole training set,
each loss and gradient one pass of the fused gradient kernel (the one MLP.gradient runs).

>>> history = model.fit(X, y, optimizer=fastnn.LBFGS(max_iter=200))

The loss minimized is the weighted mean loss, sum(w * loss) / sum(w) (w the sample and class
weights, 1 without them), plus ``0.5 * l2 * ||W||^2`` over the weights, not the biases: with
``l2 = alpha / sum(w)`` it is the loss scikit-learn's MLPs minimize with solver='lbfgs'.
``max_iter``, ``max_fun`` and ``tol`` mean what they mean there (SciPy's maxiter, maxfun and gtol).
SciPy works in float64; a float32 model's parameters are rounded to float32 before each pass, so
the loss and gradient SciPy sees are those of the weights the model holds.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from .errors import TrainingDivergedError
from .training import History
from .workers import DeferredInterrupt, stop_requested

if TYPE_CHECKING:
    from .data.examples import Examples
    from .model import MLP

__all__ = ["LBFGS", "LBFGSHistory", "Objective", "fit_lbfgs"]


@dataclass(frozen=True)
class LBFGS:
    """Full-batch L-BFGS (SciPy's L-BFGS-B), for ``MLP.fit(X, y, optimizer=LBFGS(...))``.

    - ``max_iter``: at most this many iterations (scikit-learn's max_iter for solver='lbfgs').
    - ``max_fun``: stop once the loss has been evaluated more than this many times. As in
      scikit-learn (SciPy's maxfun), the count is checked at the end of each iteration, so the
      last iteration's line search may take it a few evaluations past max_fun.
    - ``tol``: converged when every component of the gradient is at most ``tol`` in absolute
      value (SciPy's gtol, as scikit-learn passes its tol).
    - ``l2``: adds ``0.5 * l2 * ||W||^2`` to the mean loss, over the weights and not the
      biases (scikit-learn's alpha is ``l2 = alpha / n``, n the examples or the sum of their
      weights).
    - ``memory``: the number of correction pairs kept (SciPy's maxcor).

    Not an Optimizer: it has no learning rate, no batches and no state across fit calls.
    Dropout must be 0 (L-BFGS needs the same loss at every evaluation).
    """

    max_iter: int = 200
    max_fun: int = 15000
    tol: float = 1e-4
    l2: float = 0.0
    memory: int = 10

    def __post_init__(self):
        for name in ("max_iter", "max_fun", "memory"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("tol", "l2"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
                    and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass
class LBFGSHistory(History):
    """A History of L-BFGS iterations: ``loss`` (the weighted mean training loss, without the
    L2 term), ``accuracy`` (unweighted, as fit's), validation metrics and seconds, one entry per
    iteration; ``lr`` stays empty (L-BFGS has none). Also each iteration's ``penalty`` (the L2
    term, 0.5 * l2 * ||W||^2) and ``objective`` (what L-BFGS minimized: loss_scale * (loss +
    penalty)); ``final_loss``/``final_penalty`` at the weights the model ends with (also when no
    iteration ran); ``n_iter``, ``n_fun`` (loss evaluations), ``converged`` (the gradient fell
    to tol), ``status`` (SciPy's: 0 converged, 1 max_iter or max_fun reached, 2 other, such as
    a line search that found no lower loss) and SciPy's ``message``."""

    penalty: list[float] = field(default_factory=list)
    objective: list[float] = field(default_factory=list)
    final_loss: float = math.nan
    final_penalty: float = 0.0
    n_iter: int = 0
    n_fun: int = 0
    converged: bool = False
    status: int = 2
    message: str = ""


class Objective:
    """The function L-BFGS minimizes, at flat parameter vectors in the dense layout of
    MLP.get_params (float64): ``loss_scale * (weighted mean loss + 0.5 * l2 * ||W||^2)`` and
    its gradient, from one pass of the gradient kernel over every example. Calling it sets the
    model's parameters to x (rounded to the model's dtype). After each call, ``loss`` (the
    weighted mean loss), ``penalty`` and ``hits`` describe that point, ``evaluations`` counts the
    calls."""

    def __init__(self, model: "MLP", examples: "Examples", l2: float = 0.0, loss_scale: float = 1.0) -> None:
        from .layout import aligned_zeros, batch_buffers, gradient_plan
        from .native.loader import jit_module

        if model.dropout:
            raise ValueError(f"L-BFGS needs the same loss at every evaluation: the model's dropout must be 0, "
                             f"got {model.dropout}")
        self.model, self.examples, self.l2, self.loss_scale = model, examples, float(l2), float(loss_scale)
        n = examples.rows.n_rows
        self._kernel = jit_module("train").batch_gradient
        self._data = examples.kernel_tuple()
        self._order = np.arange(n, dtype=np.int64)
        self._bufs = batch_buffers(model.layout, examples.rows, n)
        self._units = gradient_plan(model.layout, 1)
        self._net = model._net()
        self._losses = aligned_zeros(n, model.dtype)
        self.hits = aligned_zeros(n, np.bool_)
        weights = examples.weights.astype(np.float64)
        self._weights = weights / weights.sum()  # the kernel's gradient is sum(w * g) / sum(w): so is the loss
        self._penalized = self._weight_mask(model)
        self.loss, self.penalty, self.evaluations, self.last_x = math.nan, 0.0, 0, None

    @staticmethod
    def _weight_mask(model: "MLP") -> np.ndarray:
        """True at the weights, False at the biases, in the dense layout."""
        marks = np.zeros(model.layout.n_params, dtype=model.dtype)
        for layer in range(model.layout.n_layers):
            model.layout.weights(marks, layer)[:] = 1
        return model.layout.to_dense(marks).astype(bool)

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """(objective, gradient) at x, both float64."""
        model = self.model
        self.last_x = np.array(x, dtype=np.float64)
        params = self.last_x.astype(model.dtype)
        model._params = model.layout.from_dense(params)
        grad = np.zeros_like(model._params)
        self._kernel(model._params, grad, self._net, self._data, self._order, self._bufs, self._units, self._losses,
                     self.hits)
        self.evaluations += 1
        weights = np.where(self._penalized, params, 0).astype(np.float64)
        self.loss = float(np.dot(self._weights, self._losses))
        self.penalty = 0.5 * self.l2 * float(np.dot(weights, weights))
        gradient = model.layout.to_dense(grad).astype(np.float64) + self.l2 * weights
        objective = self.loss_scale * (self.loss + self.penalty)
        if not (math.isfinite(objective) and np.isfinite(gradient).all()):
            raise TrainingDivergedError("the loss became NaN or infinite during L-BFGS (inputs or targets too "
                                        f"large for {model.dtype.name}?); the weights of the last iteration were kept")
        return objective, gradient * self.loss_scale

    @property
    def accuracy(self) -> float:
        """The fraction of examples predicted right at the last point evaluated (unweighted)."""
        return int(np.count_nonzero(self.hits)) / self.hits.size


@functools.cache
def _blas_threads():
    """threadpoolctl's controller of the BLAS libraries loaded (SciPy's among them), made once
    (a few ms); None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def _one_blas_thread():
    """SciPy's L-BFGS-B runs small vector operations in BLAS, where threads cost more than they
    give: on a busy 2-core machine a fit of iris ran 20 times slower with OpenBLAS's 2 threads."""
    controller = _blas_threads()
    return contextlib.nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


def fit_lbfgs(model: "MLP", X, y, optimizer: LBFGS, *, sample_weight=None, class_weight=None,
              validation_data: tuple | None = None, validation_split: float = 0.0,
              on_epoch: Callable[[int, History], bool | None] | None = None, verbose: int = 0,
              minibatch_options: dict | None = None, loss_scale: float = 1.0) -> LBFGSHistory:
    """Train ``model`` from its current weights with full-batch L-BFGS; MLP.fit(optimizer=LBFGS(...))
    comes here. ``sample_weight``, ``class_weight``, ``validation_data``/``validation_split``,
    ``on_epoch(epoch, history)`` (after each iteration, which counts as an epoch of
    model.epochs_trained; True stops) and ``verbose`` (a line per iteration) are fit's; fit's
    epochs, batch_size, shuffle, blocks_per_epoch and threads do not apply (one thread evaluates
    the loss). ``minibatch_options`` are fit's options that L-BFGS has no use for (lr, schedule,
    early_stopping, clip_norm, on_block): ValueError when one is set. ``loss_scale`` multiplies
    the objective (and so its gradient, which ``tol`` is compared with): fastnn.sklearn's
    regressors use it to minimize scikit-learn's own scale.

    Ctrl-C ends training after the loss evaluation in progress and raises KeyboardInterrupt,
    the model holding the weights of the last finished iteration; so does TrainingDivergedError.
    """
    try:
        import scipy.optimize
    except ImportError as e:
        raise ImportError("fastnn.LBFGS drives SciPy's L-BFGS-B: pip install scipy") from e

    from .verbose import callbacks

    if not isinstance(optimizer, LBFGS):
        raise ValueError(f"optimizer must be an LBFGS(...), got {optimizer!r}")
    named = [name for name, value in (minibatch_options or {}).items() if value is not None]
    if named:
        raise ValueError(f"{', '.join(named)} cannot be used with LBFGS, which trains on the whole data set at "
                         "once, with no learning rate or batches")
    _, on_epoch = callbacks(verbose, None, on_epoch)  # no blocks, so no bar: a line per iteration
    examples = model._examples(X, y, sample_weight, class_weight)
    validation = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (X_val, y_val)")
        validation = model._examples(*validation_data, names=("X_val", "y_val"))
    elif validation_split:
        examples, validation = model._split(examples, validation_split)
    objective = Objective(model, examples, optimizer.l2, loss_scale)
    history = LBFGSHistory()
    start = model.get_params().astype(np.float64)
    last = {"x": start.copy(), "time": time.perf_counter()}  # the last finished iteration

    def end_iteration(intermediate_result) -> None:
        """SciPy's callback (it passes an OptimizeResult to a parameter of this name): record the
        iteration; StopIteration ends the minimization."""
        x = np.asarray(getattr(intermediate_result, "x", intermediate_result), dtype=np.float64)  # SciPy < 1.11: x
        if not np.array_equal(x, objective.last_x):
            objective(x)  # the line search's last point is the iterate: this seldom runs
        last["x"] = x.copy()
        now = time.perf_counter()
        history.seconds.append(now - last["time"])
        last["time"] = now
        history.loss.append(objective.loss)
        history.penalty.append(objective.penalty)
        history.objective.append(objective.loss_scale * (objective.loss + objective.penalty))
        if model.classifies:
            history.accuracy.append(objective.accuracy)
        if validation is not None:
            metrics = model._metrics(validation)
            history.val_loss.append(metrics["loss"])
            history.val_accuracy.append(metrics.get("accuracy", math.nan))
        model.epochs_trained += 1
        if on_epoch is not None and on_epoch(model.epochs_trained, history):
            history.interrupted = True
        if ctrl_c.pending or stop_requested.is_set():
            history.interrupted = True
        if history.interrupted:
            raise StopIteration

    model.position = None
    try:
        with DeferredInterrupt() as ctrl_c, _one_blas_thread():
            result = scipy.optimize.minimize(objective, start, jac=True, method="L-BFGS-B", callback=end_iteration,
                                             options={"maxiter": int(optimizer.max_iter),
                                                      "maxfun": int(optimizer.max_fun),
                                                      "gtol": float(optimizer.tol), "maxcor": int(optimizer.memory)})
    except BaseException:
        model.set_params(last["x"])  # a failed evaluation may have left any point in the model
        raise
    final = result.x if not history.interrupted else last["x"]
    if not np.array_equal(final, objective.last_x):
        objective(final)  # the model holds the final weights, and the final loss is theirs
    history.final_loss, history.final_penalty = objective.loss, objective.penalty
    history.n_iter, history.n_fun = int(result.nit), objective.evaluations
    history.status, history.converged = int(result.status), bool(result.status == 0)
    history.message = str(result.message)
    if ctrl_c.pending:
        raise KeyboardInterrupt
    return history
