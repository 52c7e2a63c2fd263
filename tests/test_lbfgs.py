"""fastnn.LBFGS: full-batch L-BFGS-B driven by SciPy on the fused gradient kernel.

The gradient it sees against finite differences of the loss it sees, its minimum against SciPy
on the NumPy reference's loss from the same start, scikit-learn's max_iter / max_fun / tol
meanings, sample weights as repeated examples, float32, and check_estimator with
solver='lbfgs' (no expected failures)."""

from __future__ import annotations

import os
import signal
import warnings

import numpy as np
import pytest
import scipy.optimize

import fastnn
from fastnn import LBFGS, MLP, TrainingDivergedError, reference
from fastnn.lbfgs import LBFGSHistory, Objective
from helpers import flatten_reference, to_reference


def blobs(n=90, features=4, classes=3, seed=0, spread=1.2):
    """Overlapping Gaussian classes: the L2-penalized loss has a proper minimum."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centers = rng.normal(scale=1.5, size=(classes, features))
    return centers[labels] + rng.normal(scale=spread, size=(n, features)), labels


def objective_for(model, X, y, sample_weight=None, l2=0.0, loss_scale=1.0):
    return Objective(model, model._examples(X, y, sample_weight), l2, loss_scale)


def numpy_objective(sizes, X, y, activation, output, l2):
    """The same objective on fastnn.reference's NumPy forward and backward passes, at flat
    parameters in fastnn's dense layout: mean loss + 0.5 * l2 * ||W||^2 (weights, not biases)."""
    def unflatten(x):
        params, at = [], 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            block = x[at:at + (n_in + 1) * n_out].reshape(n_in + 1, n_out)
            params.append((block[:-1].T, block[-1].reshape(-1, 1)))
            at += (n_in + 1) * n_out
        return params

    def f(x):
        params = unflatten(x)
        squares = sum(float(np.sum(W * W)) for W, _ in params)
        loss = reference.loss(params, X.T, y, activation, output) + 0.5 * l2 * squares
        grads = reference.gradients(params, X.T, y, activation, output)
        grads = [(dW + l2 * W, db) for (dW, db), (W, _) in zip(grads, params)]
        return loss, flatten_reference(grads)
    return f


# -- the objective --------------------------------------------------------------------------------

@pytest.mark.parametrize("activation, output, k", [("tanh", "softmax", 3), ("sigmoid", "linear", 2),
                                                   ("silu", "sigmoid", 2)])
def test_gradient_equals_finite_differences_of_the_loss(activation, output, k):
    """float64: every component of the gradient L-BFGS is given equals the central difference of
    the objective it is given, with sample weights, the L2 term and a loss scale."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(25, 5))
    y = rng.integers(0, k, 25) if output == "softmax" else (
        rng.normal(size=(25, k)) if output == "linear" else rng.integers(0, 2, (25, k)))
    model = MLP([5, 7, 6, k], activation=activation, output=output, init="glorot", seed=2, dtype="float64")
    f = objective_for(model, X, y, sample_weight=rng.integers(0, 4, 25) + 0.5, l2=0.3, loss_scale=1.7)
    x = model.get_params() + rng.normal(scale=0.1, size=model.layout.n_weights)  # biases not zero
    value, gradient = f(x)
    h = 1e-6
    differences = np.array([(f(x + h * e)[0] - f(x - h * e)[0]) / (2 * h) for e in np.eye(x.size)])
    np.testing.assert_allclose(gradient, differences, rtol=1e-6, atol=1e-8)
    assert np.abs(gradient).max() > 1e-2  # a real gradient, not zeros on both sides
    f(x)
    assert f.evaluations == 2 * x.size + 2 and f.loss_scale * (f.loss + f.penalty) == value


def test_objective_is_the_reference_loss_plus_l2_on_weights_only():
    X, y = blobs(40)
    model = MLP([4, 6, 3], activation="tanh", init="uniform", seed=0, dtype="float64")  # biases not zero
    x = model.get_params()
    value, gradient = objective_for(model, X, y, l2=0.05)(x)
    expected_value, expected_gradient = numpy_objective(model.sizes, X, y, "tanh", "softmax", 0.05)(x)
    assert value == pytest.approx(expected_value, rel=1e-12)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-10, atol=1e-14)
    squares = sum(float(np.sum(W * W)) for W, _ in model.get_weights())
    biases = sum(float(np.sum(b * b)) for _, b in model.get_weights())
    assert biases > 0.1
    assert value - reference.loss(to_reference(model.get_weights()), X.T, y, "tanh") == pytest.approx(
        0.5 * 0.05 * squares, rel=1e-10)


# -- the minimization ---------------------------------------------------------------------------

def test_reaches_scipys_minimum_of_the_numpy_loss_from_the_same_start():
    """fastnn.LBFGS and scipy.optimize.minimize(L-BFGS-B) on the NumPy reference's loss, from the
    same weights, end at the same minimum (same loss, same weights)."""
    X, y = blobs(90)
    model = MLP([4, 8, 3], activation="tanh", init="glorot", seed=5, dtype="float64")
    start = model.get_params()
    history = model.fit(X, y, optimizer=LBFGS(max_iter=2000, tol=1e-7, l2=0.01))
    expected = scipy.optimize.minimize(numpy_objective(model.sizes, X, y, "tanh", "softmax", 0.01), start,
                                       jac=True, method="L-BFGS-B", options={"maxiter": 2000, "gtol": 1e-7})
    assert isinstance(history, LBFGSHistory) and history.converged and expected.success
    assert history.final_loss + history.final_penalty == pytest.approx(expected.fun, rel=1e-9)
    assert history.final_loss > 0.1  # overlapping classes: not a trivial zero
    np.testing.assert_allclose(model.get_params(), expected.x, rtol=0, atol=1e-4)
    assert history.loss[0] > history.loss[-1] == history.final_loss
    assert len(history.loss) == len(history.accuracy) == len(history.seconds) == history.n_iter
    assert model.epochs_trained == history.n_iter and model.position is None
    assert model.evaluate(X, y)["loss"] == pytest.approx(history.final_loss, rel=1e-12)  # no weights: the mean


def test_max_iter_max_fun_and_tol_mean_what_they_mean_in_scikit_learn():
    X, y = blobs(60)
    fresh = lambda: MLP([4, 8, 3], activation="tanh", init="glorot", seed=1, dtype="float64")  # noqa: E731
    history = fresh().fit(X, y, optimizer=LBFGS(max_iter=3))
    assert (history.n_iter, len(history.loss), history.status, history.converged) == (3, 3, 1, False)
    assert "ITERATIONS" in history.message
    # max_fun is checked at the end of each iteration (SciPy's maxfun): the count may pass it there
    history = fresh().fit(X, y, optimizer=LBFGS(max_fun=5))
    assert history.status == 1 and "EVALUATIONS" in history.message
    assert 5 < history.n_fun <= 5 + 20 and history.n_iter <= 5  # an iteration takes one evaluation or more
    # tol: converged once no gradient component exceeds it
    model = fresh()
    history = model.fit(X, y, optimizer=LBFGS(tol=1e-3))
    assert history.converged and history.n_iter > 3
    _, gradient = objective_for(model, X, y)(model.get_params())
    assert np.abs(gradient).max() <= 1e-3


def test_sample_weights_equal_repeated_and_removed_examples():
    X, y = blobs(30)
    weights = np.random.default_rng(3).integers(0, 4, 30)
    options = dict(activation="tanh", init="glorot", seed=4, dtype="float64")
    weighted, repeated = MLP([4, 6, 3], **options), MLP([4, 6, 3], **options)
    a = weighted.fit(X, y, optimizer=LBFGS(l2=0.01, tol=1e-6), sample_weight=weights)
    b = repeated.fit(X.repeat(weights, axis=0), y.repeat(weights), optimizer=LBFGS(l2=0.01, tol=1e-6))
    assert a.n_iter == b.n_iter > 5
    np.testing.assert_allclose(weighted.get_params(), repeated.get_params(), rtol=1e-7, atol=1e-9)
    assert a.final_loss == pytest.approx(b.final_loss, rel=1e-8)
    unweighted = MLP([4, 6, 3], **options).fit(X, y, optimizer=LBFGS(l2=0.01, tol=1e-6))
    assert abs(unweighted.final_loss - a.final_loss) > 1e-3  # the weights did change the problem
    # class_weight is a weight per example of that class
    by_class = MLP([4, 6, 3], **options)
    by_sample = MLP([4, 6, 3], **options)
    by_class.fit(X, y, optimizer=LBFGS(max_iter=20), class_weight={0: 1.0, 1: 3.0, 2: 0.5})
    by_sample.fit(X, y, optimizer=LBFGS(max_iter=20), sample_weight=np.array([1.0, 3.0, 0.5])[y])
    np.testing.assert_array_equal(by_class.get_params(), by_sample.get_params())


def test_float32_model_converges_near_the_float64_minimum():
    X, y = blobs(90)
    results = {}
    for dtype in ("float32", "float64"):
        model = MLP([4, 8, 3], activation="tanh", init="glorot", seed=5, dtype=dtype)
        history = model.fit(X.astype(dtype), y, optimizer=LBFGS(max_iter=500, l2=0.01))
        assert model._params.dtype == np.dtype(dtype)
        results[dtype] = history.final_loss + history.final_penalty, model.get_params()
    assert results["float32"][0] == pytest.approx(results["float64"][0], rel=1e-5)
    np.testing.assert_allclose(results["float32"][1], results["float64"][1], atol=2e-2)


def test_on_epoch_validation_and_stopping():
    X, y = blobs(90)
    model = MLP([4, 8, 3], activation="tanh", init="glorot", seed=5, dtype="float64")
    model.epochs_trained = 4  # epochs count on over fits, from 1, as fit's
    seen = []

    def on_epoch(epoch, history):
        seen.append((epoch, len(history.loss), len(history.val_loss)))
        return epoch == 7

    history = model.fit(X[:60], y[:60], optimizer=LBFGS(), validation_data=(X[60:], y[60:]), on_epoch=on_epoch)
    assert seen == [(5, 1, 1), (6, 2, 2), (7, 3, 3)]
    assert history.interrupted and history.n_iter == 3 and model.epochs_trained == 7
    assert history.final_loss == history.loss[-1]  # the model holds the weights of the last iteration
    assert model.evaluate(X[60:], y[60:])["loss"] == pytest.approx(history.val_loss[-1], rel=1e-12)
    assert len(history.val_accuracy) == 3 and 0 <= history.val_accuracy[-1] <= 1


def test_ctrl_c_stops_after_the_iteration_and_keeps_its_weights():
    X, y = blobs(60)
    model = MLP([4, 8, 3], activation="tanh", init="glorot", seed=5, dtype="float64")
    at_second = {}

    def on_epoch(epoch, history):
        if epoch == 2:
            at_second["params"] = model.get_params()
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, optimizer=LBFGS(), on_epoch=on_epoch)
    assert model.epochs_trained == 2
    np.testing.assert_array_equal(model.get_params(), at_second["params"])


def test_prepared_inputs_train_alike():
    X, y = blobs(60)
    a, b = (MLP([4, 8, 3], activation="tanh", init="glorot", seed=5, dtype="float64") for _ in range(2))
    a.fit(X, y, optimizer=LBFGS(max_iter=30))
    b.fit(fastnn.prepare(X, "float64"), y, optimizer=LBFGS(max_iter=30))
    np.testing.assert_array_equal(a.get_params(), b.get_params())


def test_verbose_prints_a_line_per_iteration(capsys):
    X, y = blobs(60)
    MLP([4, 5, 3], dtype="float64").fit(X, y, optimizer=LBFGS(max_iter=3), verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch 1: loss ") and "accuracy" in lines[0]


def test_refuses_what_it_cannot_use():
    X, y = blobs(30)
    model = MLP([4, 5, 3], dtype="float64")
    for option in (dict(lr=0.1), dict(clip_norm=1.0), dict(early_stopping=fastnn.EarlyStopping()),
                   dict(schedule=fastnn.schedules.Cosine(t_max=3)), dict(on_block=lambda *a: None)):
        name = next(iter(option))
        with pytest.raises(ValueError, match=f"{name} cannot be used with LBFGS"):
            model.fit(X, y, optimizer=LBFGS(), **option)
    with pytest.raises(ValueError, match="dropout must be 0"):
        MLP([4, 5, 3], dropout=0.2).fit(X, y, optimizer=LBFGS())
    for bad in (dict(max_iter=0), dict(max_fun=1.5), dict(tol=-1.0), dict(l2=float("nan")), dict(memory=True)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LBFGS(**bad)
    assert model.epochs_trained == 0


def test_divergence_keeps_the_last_iterations_weights():
    """A loss that overflows float32 raises TrainingDivergedError, and the model keeps the
    weights it started from (no iteration finished)."""
    X = np.full((10, 3), 1e30, dtype=np.float32)
    model = MLP([3, 4, 1], output="linear", init="glorot", seed=0, dtype="float32")
    start = model.get_params()
    with pytest.raises(TrainingDivergedError, match="L-BFGS"):
        model.fit(X, np.ones(10), optimizer=LBFGS())
    np.testing.assert_array_equal(model.get_params(), start)


# -- scikit-learn -----------------------------------------------------------------------------------

pytest.importorskip("sklearn")
from sklearn.utils import estimator_checks  # noqa: E402

from fastnn.sklearn import MLPClassifier, MLPRegressor, expected_failed_checks  # noqa: E402

EQUIVALENCE_CHECKS = ["check_sample_weight_equivalence_on_dense_data", "check_sample_weight_equivalence_on_sparse_data"]


@pytest.mark.parametrize("estimator", [MLPClassifier(solver="lbfgs"), MLPRegressor(solver="lbfgs")],
                         ids=["classifier", "regressor"])
def test_check_estimator_passes_every_check_with_lbfgs(estimator):
    """Every check of scikit-learn's check_estimator at the default settings (100 hidden units,
    max_iter=200), none expected to fail: the two sample-weight equivalence checks that
    minibatch training fails (EXPECTED_FAILED_CHECKS) among them."""
    assert expected_failed_checks(estimator) == {}
    assert set(expected_failed_checks(MLPClassifier(solver="adam"))) == set(EQUIVALENCE_CHECKS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = estimator_checks.check_estimator(estimator, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:300]) for r in results if r["status"] == "failed"]
    passed = {r["check_name"] for r in results if r["status"] == "passed"}
    assert failed == [] and len(passed) > 50 and set(EQUIVALENCE_CHECKS) <= passed
