"""scikit-learn estimators trained by fastnn's kernels: MLPClassifier and MLPRegressor.

Drop-in for ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor``: the same parameter
names, defaults and meanings (``hidden_layer_sizes``, ``activation``, ``solver``, ``alpha``,
``batch_size``, ``learning_rate``, ``learning_rate_init``, ``max_iter``, ``tol``,
``n_iter_no_change``, ``early_stopping``, ``validation_fraction``, ``momentum``, ...), the same
stopping rules, and the same fitted attributes (``classes_``, ``n_features_in_``,
``loss_curve_``, ``n_iter_``, ``coefs_``, ``intercepts_``, ...). Swapping one for the other is
a change of import::

    from fastnn.sklearn import MLPClassifier        # was: from sklearn.neural_network import ...
    clf = MLPClassifier(hidden_layer_sizes=(128,), solver="sgd", batch_size=64, max_iter=10)

How scikit-learn's settings map onto fastnn (the differences are small, and listed):

- ``solver``: 'sgd' is fastnn.SGD(momentum=momentum, nesterov=nesterovs_momentum), whose
  update equals scikit-learn's at a constant learning rate; 'adam' is fastnn.Adam(betas=
  (beta_1, beta_2), eps=epsilon) (torch's form: eps is added after the bias correction of the
  second moment, scikit-learn adds it before; the difference is of the order of eps).
  'lbfgs' is fastnn.LBFGS: SciPy's L-BFGS-B on the whole training set, each loss and gradient
  one pass of fastnn's gradient kernel, minimizing exactly scikit-learn's loss (the weighted
  mean loss plus ``0.5 * alpha * ||W||^2 / sum(w)``, weights not biases, sum(w) the examples or
  the sum of their weights), with ``max_iter`` (iterations), ``max_fun`` (loss evaluations) and
  ``tol`` (the gradient's largest component) as scikit-learn passes them to SciPy. As in
  scikit-learn, it ignores the minibatch settings (batch_size, learning rates, shuffle,
  early_stopping, n_iter_no_change), has no partial_fit, and warns (ConvergenceWarning) when it
  stops before converging; ``dropout`` must be 0, and ``threads`` is unused (one thread
  evaluates the loss). A regression with k > 1 outputs minimizes 0.5 * the sum of squared
  errors over the outputs, the loss whose gradient scikit-learn follows (its ``loss_``, and
  fastnn's, report 0.5 * their mean).
- ``alpha`` (L2 penalty 0.5 * alpha * ||W||^2 per batch of B examples, divided by B, in
  scikit-learn) becomes fastnn's weight decay ``alpha / B`` (``2 alpha / (B k)`` for a
  regression with k outputs, see below), which adds the same ``alpha / B * W`` to the gradient.
  Differences: fastnn decays the biases too (scikit-learn only the weights), and uses the
  nominal B for the last, smaller batch of an epoch.
- ``learning_rate``: 'constant', 'invscaling' (lr_init / (t + 1) ** power_t, t the examples
  seen, updated after each epoch) and 'adaptive' (lr / 5 after n_iter_no_change epochs without
  improvement, stop below 1e-6) as in scikit-learn, for 'sgd' only (ignored by 'adam').
  With momentum, fastnn scales the whole step by the current lr (torch), scikit-learn only the
  new gradient: the two differ slightly once the lr changes.
- Regression: fastnn's loss is the mean squared error (torch), twice scikit-learn's
  ``0.5 * mean((y - p)^2)``; for 'sgd' the learning rate is divided by ``2 / k`` (k outputs)
  so that each step equals scikit-learn's; ``loss_curve_`` reports scikit-learn's loss.
- ``loss_curve_``: each epoch's mean training loss (as it trained, not re-evaluated) plus the
  L2 term, as scikit-learn; with sample weights the data term is unweighted.
- ``max_iter`` is epochs; ``tol``/``n_iter_no_change`` stop on the training loss, or with
  ``early_stopping=True`` on the score of a held-out ``validation_fraction`` (stratified), and
  the best weights are restored, exactly scikit-learn's rules (for 'sgd' and 'adam').
- ``random_state``: an int is the fastnn seed itself (MLPClassifier(random_state=3) starts
  from the weights of fastnn.MLP(..., seed=3)); fixed, training is bit-identical whatever the
  number of threads. It also draws the early-stopping split.
- Weight initialisation: ``init='glorot'`` (default) is scikit-learn's law for relu/tanh
  (U(+-sqrt(6 / (fan_in + fan_out)))) with zero biases (scikit-learn draws the biases too, and
  uses sqrt(2 / ...) for logistic).

fastnn-only parameters (after scikit-learn's): ``init`` ('glorot', 'he', 'uniform'),
``dropout``, ``dtype`` ('float32', 'float64', or 'auto', the default: float64 for 'lbfgs', whose
SciPy driver works in float64 and whose line searches need the precision, as scikit-learn's
MLPs on float64 data; float32 for 'sgd' and 'adam'), ``threads``, and ``pixels``:

- ``pixels=False`` (default): X is used as given, as scikit-learn does; uint8 input is the
  numbers 0..255.
- ``pixels=True``: X holds 0..255 pixel intensities and the network sees X / 255; uint8 input
  is then kept as bytes and scaled inside the kernels (a quarter of the memory of float32,
  and no copy), any other dtype is divided by 255 first. MLPClassifier(pixels=True) on
  uint8 MNIST equals scikit-learn's MLPClassifier on X / 255.

Sparse input (scipy.sparse) is accepted and made dense (the kernels skip zero inputs anyway).

``EXPECTED_FAILED_CHECKS`` lists the checks of sklearn.utils.estimator_checks these
estimators do not pass with solver='sgd' or 'adam', with the reason; with solver='lbfgs' they
pass every check. ``expected_failed_checks(estimator)`` gives the list for an estimator's
solver: pass it as ``expected_failed_checks=`` to check_estimator or parametrize_with_checks.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d

from .lbfgs import LBFGS, fit_lbfgs
from .model import MLP
from .optimizers import SGD, Adam
from .schedules import Schedule

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn < 1.6
    def validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

__all__ = ["MLPClassifier", "MLPRegressor", "EXPECTED_FAILED_CHECKS", "expected_failed_checks"]

#: Checks of sklearn.utils.estimator_checks that these estimators do not pass with the minibatch
#: solvers ('sgd', 'adam'), and why. With solver='lbfgs' they pass every check.
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data":
        "minibatch training: an example of weight 2 is one example in one batch, its repeat is "
        "two examples that the shuffle sends to different batches, so the two fits follow different "
        "paths (scikit-learn's own MLPs pass it with solver='lbfgs' only, and so do these)",
    "check_sample_weight_equivalence_on_sparse_data":
        "as check_sample_weight_equivalence_on_dense_data",
}


def expected_failed_checks(estimator) -> dict:
    """The checks ``estimator`` is expected to fail (EXPECTED_FAILED_CHECKS for the minibatch
    solvers, none for 'lbfgs'), for check_estimator's or parametrize_with_checks'
    ``expected_failed_checks=``."""
    return {} if getattr(estimator, "solver", None) == "lbfgs" else EXPECTED_FAILED_CHECKS

ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "sigmoid": "sigmoid", "leaky_relu": "leaky_relu", "gelu": "gelu", "silu": "silu"}
SOLVERS = ("sgd", "adam", "lbfgs")
LEARNING_RATES = ("constant", "invscaling", "adaptive")
DTYPES = {"float32": np.float32, "float64": np.float64}
_NO_Y = object()  # predict's call of _validate_X (fit's y=None is an error)


class _LearningRate(Schedule):
    """The factor of the base learning rate for the next epoch; the estimator sets it between
    epochs (scikit-learn's invscaling and adaptive rules). Not part of the optimizer, so
    changing it keeps the optimizer's state."""

    def __init__(self):
        self.current = 1.0

    def factor(self, epoch, step, steps_per_epoch):
        return self.current


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: parameters, the epoch loop, stopping rules."""

    _output = "softmax"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 init="glorot", dropout=0.0, dtype="auto", pixels=False, threads=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.init = init
        self.dropout = dropout
        self.dtype = dtype
        self.pixels = pixels
        self.threads = threads

    # -- checks ------------------------------------------------------------------------------------

    def _check_params(self) -> None:
        """scikit-learn validates parameters in fit, never in __init__ or set_params."""
        def number(name, low=None, high=None, low_open=False, high_open=False, integer=False):
            value = getattr(self, name)
            kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
            ok = isinstance(value, kinds) and not isinstance(value, (bool, np.bool_)) and np.isfinite(value)
            if ok and low is not None:
                ok = value > low if low_open else value >= low
            if ok and high is not None:
                ok = value < high if high_open else value <= high
            if not ok:
                lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
                hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
                raise ValueError(f"{name} must be {'an integer' if integer else 'a number'} "
                                 f"{' and '.join(p for p in (lo, hi) if p)}, got {value!r}")

        hidden = self._hidden()
        if not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.learning_rate not in LEARNING_RATES:
            raise ValueError(f"learning_rate must be one of {LEARNING_RATES}, got {self.learning_rate!r}")
        if not (self.batch_size == "auto" or (isinstance(self.batch_size, (int, np.integer))
                                              and not isinstance(self.batch_size, bool) and self.batch_size >= 1)):
            raise ValueError(f"batch_size must be 'auto' or a positive integer, got {self.batch_size!r}")
        if self.dtype not in DTYPES and self.dtype != "auto":
            raise ValueError(f"dtype must be 'auto', 'float32' or 'float64', got {self.dtype!r}")
        if self.init not in ("glorot", "he", "uniform"):
            raise ValueError(f"init must be 'glorot', 'he' or 'uniform', got {self.init!r}")
        if not isinstance(self.pixels, bool):
            raise ValueError(f"pixels must be True or False, got {self.pixels!r}")
        number("alpha", 0)
        number("learning_rate_init", 0, low_open=True)
        number("power_t", 0)
        number("max_iter", 1, integer=True)
        number("tol", 0)
        number("momentum", 0, 1, high_open=True)
        number("validation_fraction", 0, 1, low_open=True, high_open=True)
        number("beta_1", 0, 1, high_open=True)
        number("beta_2", 0, 1, high_open=True)
        number("epsilon", 0, low_open=True)
        number("n_iter_no_change", 1, integer=True)
        number("dropout", 0, 1, high_open=True)
        number("max_fun", 1, integer=True)
        if self.solver == "lbfgs" and self.dropout:
            raise ValueError(f"solver='lbfgs' needs dropout=0 (L-BFGS minimizes one fixed loss), got {self.dropout!r}")
        if self.threads is not None:
            number("threads", 1, integer=True)

    def _dtype_name(self) -> str:
        """The network's dtype: ``dtype``, with 'auto' float64 for 'lbfgs', float32 otherwise."""
        if self.dtype == "auto":
            return "float64" if self.solver == "lbfgs" else "float32"
        return self.dtype

    def _hidden(self) -> list:
        sizes = self.hidden_layer_sizes
        return [sizes] if isinstance(sizes, (int, np.integer)) else list(sizes)

    def _validate_X(self, X, y=_NO_Y, reset=True, **y_options):
        """X as the model reads it (and y checked against it), following ``pixels``."""
        keep_bytes = self.pixels and getattr(X, "dtype", None) == np.uint8 and not hasattr(X, "toarray")
        dtype = self.model_.dtype if not reset and hasattr(self, "model_") else DTYPES[self._dtype_name()]
        options = dict(accept_sparse=["csr", "csc", "coo"], dtype=None if keep_bytes else dtype,
                       reset=reset)
        if y is _NO_Y:
            X = validate_data(self, X, **options)
        else:
            X, y = validate_data(self, X, y, **options, **y_options)
        if hasattr(X, "toarray"):
            X = X.toarray()
        if self.pixels and X.dtype != np.uint8:
            X = X * X.dtype.type(1 / 255)
        elif not X.flags.writeable or not X.flags.c_contiguous:
            X = np.array(X, order="C")  # Numba compiles read-only arrays separately: copy once instead
        return X, y

    # -- training ------------------------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Train on (X, y) for up to max_iter epochs (from the current weights if warm_start)."""
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental):
        self._check_params()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        X, y = self._validate_X(X, y, reset=first, **self._y_options())
        targets = self._encode_targets(y, first)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        random_state = check_random_state(self.random_state)
        if first:
            self._initialize(X.shape[1], targets, random_state)
        elif targets.shape[1:] != self._target_shape():
            raise ValueError(f"y has {self._n_targets(targets)} outputs, the fitted network "
                             f"{self.n_outputs_}")
        self._random_state = random_state
        if self.solver == "lbfgs":
            return self._fit_lbfgs(X, targets, sample_weight)

        X_val = y_val = sw_val = None
        early_stopping = self.early_stopping and not incremental
        if early_stopping:
            stratify = targets if self._output == "softmax" else None
            parts = train_test_split(X, targets, *([] if sample_weight is None else [sample_weight]),
                                     random_state=random_state, test_size=self.validation_fraction,
                                     stratify=stratify)
            X, X_val, targets, y_val = parts[:4]
            sample_weight, sw_val = (parts[4], parts[5]) if sample_weight is not None else (None, None)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                                 "or the size of your dataset.")
        n = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                              "It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n))
        n_batches = -(-n // batch_size)
        optimizer, penalty_scale = self._optimizer(batch_size)
        schedule = _LearningRate()
        if not incremental or not hasattr(self, "_lr_factor"):
            self._lr_factor = 1.0
        best_params = None
        if first or not incremental:
            self._no_improvement_count = 0
            self.best_loss_ = None if early_stopping else np.inf
            self.validation_scores_ = [] if early_stopping else None
            self.best_validation_score_ = -np.inf if early_stopping else None
        model = self.model_

        sgd_rate = self.solver == "sgd" and self.learning_rate != "constant"

        def set_rate():
            if sgd_rate and self.learning_rate == "invscaling":
                self._lr_factor = 1.0 if self.t_ == 0 else 1.0 / (self.t_ + 1) ** self.power_t
            schedule.current = self._lr_factor if sgd_rate else 1.0

        def end_epoch(epoch, history):
            """scikit-learn's bookkeeping and stopping rules, after each epoch."""
            nonlocal best_params
            squares = sum(float(np.dot(W.ravel(), W.ravel())) for W, _ in model.get_weights())
            loss = history.loss[-1] * self._loss_scale() + 0.5 * self.alpha * squares * n_batches / n
            self.loss_ = loss
            self.loss_curve_.append(loss)
            self.n_iter_ += 1
            self.t_ += n
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (self.n_iter_, loss))
            if early_stopping:
                score = self._validation_score(X_val, y_val, sw_val)
                self.validation_scores_.append(score)
                if self.verbose:
                    print("Validation score: %f" % score)
                self._no_improvement_count = (self._no_improvement_count + 1
                                              if score < self.best_validation_score_ + self.tol else 0)
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_params = model.get_params()
            else:
                self._no_improvement_count = (self._no_improvement_count + 1
                                              if loss > self.best_loss_ - self.tol else 0)
                self.best_loss_ = min(self.best_loss_, loss)
            set_rate()
            if self._no_improvement_count > self.n_iter_no_change:
                what = "Validation score" if early_stopping else "Training loss"
                message = (f"{what} did not improve more than tol={self.tol:f} for "
                           f"{self.n_iter_no_change} consecutive epochs.")
                if sgd_rate and self.learning_rate == "adaptive":
                    if self.learning_rate_init * self._lr_factor > 1e-6:
                        self._lr_factor /= 5
                        schedule.current = self._lr_factor
                        self._no_improvement_count = 0
                        if self.verbose:
                            print(f"Setting learning rate to {self.learning_rate_init * self._lr_factor:f}")
                        return
                    message += " Learning rate too small."
                if self.verbose:
                    print(message + " Stopping.")
                return True  # scikit-learn's stopping rule was met: fit stops after this epoch
            if not incremental and self.n_iter_ == self.max_iter:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                              "optimization hasn't converged yet.", ConvergenceWarning)

        # One fit call for every epoch (per-epoch calls would convert X again each time); the
        # rules above run between epochs and stop training by returning True.
        set_rate()
        model.fit(X, targets, epochs=1 if incremental else self.max_iter, batch_size=batch_size,
                  optimizer=optimizer, schedule=schedule, shuffle=self.shuffle, sample_weight=sample_weight,
                  threads=self.threads, on_epoch=end_epoch)
        if early_stopping and best_params is not None:
            model.set_params(best_params)
        return self

    def _fit_lbfgs(self, X, targets, sample_weight):
        """solver='lbfgs': fastnn.LBFGS on the whole training set, minimizing scikit-learn's loss
        (see the module's docstring) with scikit-learn's max_iter, max_fun and tol."""
        total_weight = X.shape[0] if sample_weight is None else float(np.sum(sample_weight))
        c = self._gradient_scale()  # fastnn's gradient is c times scikit-learn's
        optimizer = LBFGS(max_iter=int(self.max_iter), max_fun=int(self.max_fun), tol=float(self.tol),
                          l2=c * float(self.alpha) / total_weight if total_weight > 0 else 0.0)

        def report(epoch, history):
            print("Iteration %d, loss = %.8f" % (len(history.loss), self._lbfgs_loss(history.loss[-1],
                                                                                     history.penalty[-1])))

        history = fit_lbfgs(self.model_, X, targets, optimizer, sample_weight=sample_weight,
                            on_epoch=report if self.verbose else None, loss_scale=1 / c)
        self.loss_curve_ = [self._lbfgs_loss(loss, penalty) for loss, penalty in zip(history.loss, history.penalty)]
        self.loss_ = self._lbfgs_loss(history.final_loss, history.final_penalty)
        self.n_iter_ = min(history.n_iter, int(self.max_iter))
        if not history.converged:
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status={history.status}):\n"
                          f"{history.message}\n\nIncrease the number of iterations (max_iter) or the number of "
                          "loss evaluations (max_fun), or scale the data.", ConvergenceWarning)
        return self

    def _lbfgs_loss(self, loss: float, penalty: float) -> float:
        """scikit-learn's loss_ from fastnn's weighted mean loss and LBFGS's L2 term
        (0.5 * c * alpha / sum(w) * ||W||^2, c the gradient scale)."""
        return loss * self._loss_scale() + penalty / self._gradient_scale()

    def _initialize(self, n_features, targets, random_state) -> None:
        """A new network, and the fitted attributes of a first fit."""
        seed = self.random_state if isinstance(self.random_state, (int, np.integer)) and self.random_state >= 0 \
            else int(random_state.randint(np.iinfo(np.int32).max))
        n_outputs = self._n_outputs_from(targets)
        self.model_ = MLP([n_features, *self._hidden(), n_outputs], activation=ACTIVATIONS[self.activation],
                          output=self._output, dropout=float(self.dropout), init=self.init, seed=int(seed),
                          dtype=self._dtype_name(), pixels=None)  # uint8 reaches it only as pixels (_validate_X)
        self.n_outputs_ = n_outputs if self._output == "linear" else len(self.classes_)
        self.n_layers_ = len(self.model_.sizes)
        self.out_activation_ = "softmax" if self._output == "softmax" else "identity"
        self.loss_curve_ = []
        self.n_iter_ = 0
        self.t_ = 0

    def _optimizer(self, batch_size):
        """fastnn's optimizer for scikit-learn's settings (see the module's docstring)."""
        c = self._gradient_scale()
        decay = c * self.alpha / batch_size
        if self.solver == "sgd":
            momentum = float(self.momentum)
            return SGD(lr=float(self.learning_rate_init) / c, momentum=momentum,
                       nesterov=bool(self.nesterovs_momentum) and momentum > 0, weight_decay=decay), c
        return Adam(lr=float(self.learning_rate_init), betas=(float(self.beta_1), float(self.beta_2)),
                    eps=float(self.epsilon), weight_decay=decay), c

    def _gradient_scale(self) -> float:
        return 1.0

    def _loss_scale(self) -> float:
        return 1.0

    def _target_shape(self) -> tuple:
        return ()

    def _n_targets(self, targets) -> int:
        return 1

    def _n_outputs_from(self, targets) -> int:
        return len(self.classes_)

    # -- fitted network ------------------------------------------------------------------------------

    @property
    def coefs_(self) -> list:
        """Each layer's weights, shape (n_in, n_out), as scikit-learn's coefs_ (copies)."""
        return [W for W, _ in self.model_.get_weights()]

    @property
    def intercepts_(self) -> list:
        """Each layer's biases, as scikit-learn's intercepts_ (copies)."""
        return [b for _, b in self.model_.get_weights()]

    def _outputs(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X, _ = self._validate_X(X, reset=False)
        return self.model_.predict_proba(X).astype(np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"_xfail_checks": expected_failed_checks(self)}

    def _check_solver(self) -> bool:
        """partial_fit exists for the minibatch solvers only, as in scikit-learn."""
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multi-layer perceptron classifier with scikit-learn's interface (see the module's
    docstring): softmax output and cross-entropy, classes of any label type in ``classes_``.

    Fitted attributes: classes_, n_features_in_ (feature_names_in_ for DataFrames), loss_,
    loss_curve_, best_loss_, validation_scores_, best_validation_score_, n_iter_, t_,
    n_layers_, n_outputs_, out_activation_ ('softmax'), coefs_, intercepts_, and model_, the
    trained fastnn.MLP (save it with model_.save(path)).
    """

    _output = "softmax"

    def _y_options(self):
        return {"multi_output": False}

    def _encode_targets(self, y, first):
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if first and not getattr(self, "_classes_given", False):
            self.classes_ = np.unique(y)
        self._classes_given = False
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs examples of at least 2 classes, got 1 class "
                             f"({self.classes_[0]!r})")
        codes = np.searchsorted(self.classes_, y)
        codes = np.minimum(codes, len(self.classes_) - 1)
        unknown = self.classes_[codes] != y
        if unknown.any():
            raise ValueError(f"Expected only labels in classes_ = {self.classes_!r}, "
                             f"got {np.unique(y[unknown])!r}")
        return codes.astype(np.int32)

    @available_if(_BaseMLP._check_solver)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y), continuing from the current weights and optimizer state.
        ``classes`` (every label y may ever hold) is required on the first call."""
        if classes is not None:
            classes = np.unique(classes)
            if hasattr(self, "classes_") and hasattr(self, "model_") and not np.array_equal(self.classes_, classes):
                raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, "
                                 f"was: {self.classes_!r}")
        elif not hasattr(self, "model_"):
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is not None and not hasattr(self, "model_"):
            self.classes_ = classes
            self._classes_given = True
        return self._fit(X, y, sample_weight, incremental=True)

    def _validation_score(self, X, codes, sample_weight) -> float:
        return float(np.average(self.model_.predict(X) == codes, weights=sample_weight))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in the order of classes_."""
        p = self._outputs(X)
        return p / p.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X) -> np.ndarray:
        """The logarithm of predict_proba."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each example, as a label of classes_."""
        best = self._outputs(X).argmax(axis=1)
        return self.classes_[best]


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multi-layer perceptron regressor with scikit-learn's interface (see the module's
    docstring): linear output and squared error, one or several targets.

    Fitted attributes as MLPClassifier's, without classes_; out_activation_ is 'identity'.
    """

    _output = "linear"

    def _y_options(self):
        return {"multi_output": True, "y_numeric": True}

    def _encode_targets(self, y, first):
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        return y

    def _target_shape(self):
        return (self.n_outputs_,)

    def _n_targets(self, targets):
        return targets.shape[1]

    def _n_outputs_from(self, targets):
        return targets.shape[1]

    def _gradient_scale(self):
        # fastnn's per-example loss is mean_j (p_j - y_j)^2: its gradient is 2/k times
        # scikit-learn's (p - y), that of 0.5 * sum_j (p_j - y_j)^2.
        return 2.0 / self.n_outputs_

    def _loss_scale(self):
        return 0.5  # scikit-learn reports 0.5 * mean((p - y)^2)

    @available_if(_BaseMLP._check_solver)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current weights and optimizer state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _validation_score(self, X, y, sample_weight) -> float:
        return float(r2_score(y, self.model_.predict(X).astype(np.float64), sample_weight=sample_weight))

    def predict(self, X) -> np.ndarray:
        """Predicted values: shape (n_samples,) for one target, else (n_samples, n_outputs)."""
        p = self._outputs(X)
        return p.ravel() if p.shape[1] == 1 else p

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multioutput": True, "_xfail_checks": expected_failed_checks(self)}
