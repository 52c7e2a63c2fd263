"""fastnn.sklearn: scikit-learn's estimator checks, its conventions, and step-for-step equality
with scikit-learn's own MLPs where the two define the same algorithm."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastnn import MLP  # noqa: E402
from fastnn.sklearn import EXPECTED_FAILED_CHECKS, MLPClassifier, MLPRegressor  # noqa: E402

# Small networks and few epochs keep the ~120 checks to seconds; the defaults pass the same checks
# (slower). The checks that fail, and why, are EXPECTED_FAILED_CHECKS (also in the README):
# check_sample_weight_equivalence_on_dense_data / _on_sparse_data (minibatch training).
FAST = dict(hidden_layer_sizes=(20,), max_iter=100, learning_rate_init=0.01)


@parametrize_with_checks([MLPClassifier(**FAST), MLPRegressor(**FAST)],
                         expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[2.0, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]])
    codes = np.arange(n) % 3
    return centers[codes] + rng.normal(scale=0.7, size=(n, 4)), codes


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_string_labels_and_fitted_attributes():
    X, codes = blobs()
    y = np.array(["cat", "dog", "eel"])[codes]
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=60, learning_rate_init=0.02, random_state=0).fit(X, y)
    assert list(clf.classes_) == ["cat", "dog", "eel"]
    assert set(clf.predict(X)) <= {"cat", "dog", "eel"}
    assert clf.score(X, y) > 0.9
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))
    assert clf.n_features_in_ == 4 and clf.n_iter_ == len(clf.loss_curve_) <= 60
    assert [W.shape for W in clf.coefs_] == [(4, 16), (16, 3)]
    assert clf.model_.sizes == (4, 16, 3) and clf.model_.seed == 0  # random_state is the fastnn seed


def test_same_steps_as_scikit_learn():
    """The same initial weights, batches and settings give scikit-learn's weights: exactly (to
    rounding) for SGD with and without Nesterov momentum, classification and regression (one or
    two targets: the learning rate is rescaled for fastnn's torch-style MSE), and to eps-sized
    differences for Adam (torch places eps after the bias correction)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    Y = np.c_[X[:, 0] - 2 * X[:, 1], X[:, 2]]
    cases = [(dict(solver="sgd", momentum=0.9, nesterovs_momentum=False, learning_rate_init=0.05), 1e-12),
             (dict(solver="sgd", learning_rate_init=0.05), 1e-12),
             (dict(solver="adam", learning_rate_init=0.01), 1e-4)]
    for settings, tolerance in cases:
        for ours, theirs, target, n_out in [(MLPClassifier, SkMLPClassifier, y, 3), (MLPRegressor, SkMLPRegressor, Y, 2),
                                            (MLPRegressor, SkMLPRegressor, Y[:, 0], 1)]:
            common = dict(hidden_layer_sizes=(8,), batch_size=20, max_iter=5, shuffle=False, random_state=0, tol=0,
                          alpha=0.0, **settings)
            a = ours(**common, dtype="float64").fit(X, target)
            start = MLP([6, 8, n_out], init="glorot", seed=0, dtype="float64",
                        output="softmax" if ours is MLPClassifier else "linear").get_weights()
            b = theirs(**common).set_params(max_iter=1, warm_start=True).fit(X, target)
            b.coefs_, b.intercepts_ = [W for W, _ in start], [c for _, c in start]
            b.set_params(max_iter=5).fit(X, target)  # a fresh optimizer from these weights
            for mine, sk in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
                np.testing.assert_allclose(mine, sk, rtol=0, atol=tolerance)
            np.testing.assert_allclose(a.loss_curve_, b.loss_curve_[1:], rtol=tolerance)  # [0]: the warm-up fit
            np.testing.assert_allclose(a.predict(X), b.predict(X), atol=tolerance * 10)


def test_lbfgs_minimizes_scikit_learns_loss():
    """solver='lbfgs' from scikit-learn's start weights ends where scikit-learn's lbfgs ends (the
    same loss: weighted mean loss + alpha ||W||^2 / (2 sum(w)), weights not biases), with sample
    weights, for three classes and a regression; loss_ and n_iter_ in scikit-learn's terms."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    t = X[:, 0] - 2 * X[:, 1] + 0.3 * rng.normal(size=100)
    sw = rng.integers(1, 4, 100).astype(float)
    for ours, theirs, target, output, k in [(MLPClassifier, SkMLPClassifier, y, "softmax", 3),
                                             (MLPRegressor, SkMLPRegressor, t, "linear", 1)]:
        common = dict(hidden_layer_sizes=(8,), solver="lbfgs", alpha=1.0, max_iter=3000, tol=1e-7, random_state=0,
                      activation="tanh")
        a = ours(**common).fit(X, target, sample_weight=sw)
        start = MLP([6, 8, k], activation="tanh", init="glorot", seed=0, dtype="float64", output=output).get_weights()
        b = theirs(**common).set_params(max_iter=1, warm_start=True).fit(X, target, sample_weight=sw)
        b.coefs_, b.intercepts_ = [W for W, _ in start], [c for _, c in start]
        b.set_params(max_iter=3000).fit(X, target, sample_weight=sw)
        assert a.model_.dtype == np.float64  # dtype='auto' is float64 for lbfgs
        assert a.loss_ == pytest.approx(b.loss_, rel=1e-6) and a.loss_ > 0.04
        assert a.n_iter_ == len(a.loss_curve_) == pytest.approx(b.n_iter_, rel=0.1)
        assert a.loss_curve_[-1] == pytest.approx(a.loss_, rel=1e-12)
        for mine, sk in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
            np.testing.assert_allclose(mine, sk, rtol=0, atol=5e-3)
        if ours is MLPClassifier:
            np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-3)
        else:
            np.testing.assert_allclose(a.predict(X), b.predict(X), atol=2e-3)


def test_lbfgs_limits_warnings_and_what_it_lacks():
    X, y = blobs()
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge after 3 iteration"):
        clf = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3
    with pytest.warns(ConvergenceWarning, match="EVALUATIONS"):
        clf = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(8,), max_fun=4, random_state=0).fit(X, y)
    assert clf.n_iter_ <= 4
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # converges: no warning
        clf = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(8,), random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.9 and 3 < clf.n_iter_ < 200
    assert not hasattr(clf, "partial_fit")  # as scikit-learn's: partial_fit is for stochastic solvers
    with pytest.raises(AttributeError, match="partial_fit") as raised:
        clf.partial_fit(X, y)
    assert "only available for stochastic optimizers. lbfgs is not stochastic" in str(raised.value.__cause__)
    assert hasattr(MLPRegressor(solver="sgd"), "partial_fit") and not hasattr(MLPRegressor(solver="lbfgs"),
                                                                              "partial_fit")
    assert clone(clf).set_params(solver="adam").fit(X, y).model_.dtype == np.float32  # 'auto' per solver
    assert MLPClassifier(solver="lbfgs", dtype="float32", hidden_layer_sizes=(8,), random_state=0).fit(
        X, y).model_.dtype == np.float32
    Y = np.c_[X[:, 0] - X[:, 1], np.tanh(X[:, 2])]  # several targets
    reg = MLPRegressor(solver="lbfgs", hidden_layer_sizes=(16,), random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (len(X), 2) and reg.score(X, Y) > 0.95
    assert reg.loss_ == pytest.approx(0.5 * np.mean((reg.predict(X) - Y) ** 2) + 0.5 * reg.alpha * sum(
        float(np.sum(W * W)) for W in reg.coefs_) / len(X), rel=1e-9)
    warm = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(8,), random_state=0, warm_start=True, max_iter=5)
    first = warm.fit(X, y).loss_
    assert warm.fit(X, y).loss_ < first  # continues from the weights it has


def test_partial_fit_is_fit_epoch_by_epoch():
    X, codes = blobs()
    y = np.array(["a", "b", "c"])[codes]
    settings = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=0.05, random_state=3, tol=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier(**settings).partial_fit(X, y)
    incremental = MLPClassifier(**settings)
    for _ in range(4):
        incremental.partial_fit(X, y, classes=["a", "b", "c"])
    whole = MLPClassifier(**settings, max_iter=4).fit(X, y)
    assert incremental.n_iter_ == 4 and incremental.loss_curve_ == whole.loss_curve_
    np.testing.assert_array_equal(incremental.predict_proba(X), whole.predict_proba(X))
    with pytest.raises(ValueError, match="labels in classes_"):
        incremental.partial_fit(X, np.where(y == "a", "z", y))
    # partial_fit may see only some of the classes in a call
    subset = MLPClassifier(**settings).partial_fit(X[y != "c"], y[y != "c"], classes=["a", "b", "c"])
    assert subset.predict_proba(X).shape == (len(X), 3)


def test_regressor_one_and_several_targets():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=200, learning_rate_init=0.01, random_state=0).fit(X, y)
    assert reg.predict(X).shape == (200,) and reg.score(X, y) > 0.95
    assert reg.out_activation_ == "identity"
    Y = np.c_[y, -y]
    reg2 = clone(reg).fit(X, Y)
    assert reg2.predict(X).shape == (200, 2) and reg2.n_outputs_ == 2


def test_pipeline_grid_search_cross_val_clone_pickle():
    X, y = blobs(150)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=40,
                                                         learning_rate_init=0.02, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    grid = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2],
                               "mlpclassifier__hidden_layer_sizes": [(4,), (8,)]}, cv=2).fit(X, y)
    assert grid.best_estimator_.steps[-1][1].hidden_layer_sizes in [(4,), (8,)]
    fitted = grid.best_estimator_
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))
    twin = clone(fitted)
    assert twin.get_params()["mlpclassifier__alpha"] == fitted.get_params()["mlpclassifier__alpha"]
    assert not hasattr(twin.steps[-1][1], "model_")


def test_pixels():
    """pixels=True: uint8 pixels are scaled by 1/255 inside the kernels, the same as float X / 255."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(90, 12), dtype=np.uint8)
    y = (X[:, 0] > 128).astype(int)
    settings = dict(hidden_layer_sizes=(6,), max_iter=5, random_state=0)
    on_bytes = MLPClassifier(**settings, pixels=True).fit(X, y)
    on_floats = MLPClassifier(**settings).fit(X / 255.0, y)
    np.testing.assert_allclose(on_bytes.predict_proba(X), on_floats.predict_proba(X / 255.0), rtol=1e-5)
    assert on_bytes.loss_curve_ == pytest.approx(on_floats.loss_curve_, rel=1e-5)
    # pixels=True on floats divides them too; pixels=False uses 0..255 as given
    np.testing.assert_allclose(MLPClassifier(**settings, pixels=True).fit(X.astype(float), y).predict_proba(X),
                               on_bytes.predict_proba(X), rtol=1e-5)
    raw = MLPClassifier(**settings).fit(X, y)
    assert not np.allclose(raw.predict_proba(X), on_bytes.predict_proba(X))


def test_early_stopping_and_stopping_rules():
    X, y = blobs(300)
    clf = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, n_iter_no_change=3, max_iter=300,
                        learning_rate_init=0.05, random_state=0).fit(X, y)
    assert clf.n_iter_ < 300 and len(clf.validation_scores_) == clf.n_iter_ and clf.best_loss_ is None
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    plain = MLPClassifier(hidden_layer_sizes=(8,), tol=1e-2, n_iter_no_change=2, max_iter=300,
                          random_state=0).fit(X, y)
    assert plain.n_iter_ < 300 and plain.validation_scores_ is None
    adaptive = MLPClassifier(hidden_layer_sizes=(8,), solver="sgd", learning_rate="adaptive", tol=0.5,
                             n_iter_no_change=1, max_iter=200, random_state=0).fit(X, y)
    assert adaptive.n_iter_ < 200  # the learning rate fell below 1e-6: stop
    inv = MLPClassifier(hidden_layer_sizes=(8,), solver="sgd", learning_rate="invscaling", max_iter=3,
                        random_state=0).fit(X, y)
    assert inv.t_ == 3 * len(X)


def test_warm_start_continues():
    X, y = blobs()
    settings = dict(hidden_layer_sizes=(8,), max_iter=3, tol=0, random_state=0, solver="sgd", learning_rate_init=0.05)
    warm = MLPClassifier(**settings, warm_start=True).fit(X, y)
    first = warm.loss_curve_[:]
    warm.fit(X, y)
    assert warm.n_iter_ == 6 and warm.loss_curve_[:3] == first
    cold = MLPClassifier(**settings).fit(X, y).fit(X, y)
    assert cold.n_iter_ == 3 and cold.loss_curve_ == first


def test_parameters_checked_in_fit_not_init():
    X, y = blobs()
    MLPClassifier(solver="lbfgs", alpha=-1)  # no error: scikit-learn checks parameters in fit
    with pytest.raises(ValueError, match="solver must be one of"):
        MLPClassifier(solver="newton").fit(X, y)
    with pytest.raises(ValueError, match="alpha"):
        MLPClassifier(solver="lbfgs", alpha=-1).fit(X, y)
    with pytest.raises(ValueError, match="max_fun"):
        MLPClassifier(solver="lbfgs", max_fun=0).fit(X, y)
    with pytest.raises(ValueError, match="dropout=0"):
        MLPClassifier(solver="lbfgs", dropout=0.1).fit(X, y)
    with pytest.raises(ValueError, match="alpha"):
        MLPClassifier(alpha=-1).fit(X, y)
    with pytest.raises(ValueError, match="2 classes"):
        MLPClassifier().fit(X, np.zeros(len(X)))
