"""output='sigmoid': binary cross-entropy for two classes (one output) and for several 0/1 labels
per example, through the API: predictions and metrics against the NumPy reference, the
accuracy that training reports, label checks, model files, and two problems that must train.
(Gradients: tests/test_gradients.py; against torch: tests/test_optimizers.py.)"""

import numpy as np
import pytest

import fastnn
from fastnn import MLP, DataError, reference
from helpers import gaussian_problem, random_pixels, to_reference


def labels(n, k, rng):
    """0/1 labels: one per example for one output, else (n, k)."""
    return rng.integers(0, 2, n) if k == 1 else rng.integers(0, 2, (n, k))


@pytest.mark.parametrize("k", [1, 3], ids=["two-classes", "three-labels"])
def test_predictions_and_metrics_equal_the_reference(k):
    X, rng = random_pixels(120, 30, seed=k)
    y = labels(120, k, rng)
    model = MLP([30, 9, k], activation="gelu", output="sigmoid", pixels=True, seed=2, dtype="float64")
    params = to_reference(model.get_weights())
    expected = reference.forward_prop(params, reference.scale_pixels(X), "gelu", "sigmoid")[1][-1].T
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-12)
    assert model.predict_proba(X).shape == (120, k)
    predicted = model.predict(X)
    right = (expected > 0.5).astype(int)
    np.testing.assert_array_equal(predicted, right[:, 0] if k == 1 else right)
    assert predicted.shape == ((120,) if k == 1 else (120, k))
    metrics = model.evaluate(X, y)
    assert metrics["loss"] == pytest.approx(
        reference.loss(params, reference.scale_pixels(X), y, "gelu", "sigmoid"), rel=1e-12)
    every_label_right = (right == y.reshape(120, k)).all(axis=1)
    assert metrics["accuracy"] == every_label_right.mean()
    if k > 1:  # subset accuracy, not the fraction of right labels
        assert metrics["accuracy"] < (right == y).mean()


@pytest.mark.parametrize("k", [1, 3], ids=["two-classes", "three-labels"])
def test_training_reports_the_loss_and_accuracy_of_what_it_trained_on(k):
    """One full batch: the epoch's loss and accuracy are those of the starting weights."""
    X, y = gaussian_problem(200, [6, k], seed=3, output="sigmoid")
    model = MLP([6, 8, k], activation="silu", output="sigmoid", init="he", seed=4, dtype="float64")
    before = model.evaluate(X, y)
    history = model.fit(X, y, epochs=1, batch_size=200, lr=0.1, validation_data=(X, y))
    assert history.accuracy == [before["accuracy"]]
    assert history.loss[0] == pytest.approx(before["loss"], rel=1e-12)
    after = model.evaluate(X, y)
    assert history.val_accuracy == [after["accuracy"]] and history.val_loss == [after["loss"]]
    assert after["loss"] < before["loss"]


@pytest.mark.parametrize("y, message", [
    (np.array([0, 1, 2] * 4), "0/1 labels"),
    (np.array([0, 1, -1] * 4), "0/1 labels"),
    (np.array([0.0, 1.0, 0.5] * 4), "0/1 labels"),
    (np.array([0.0, 1.0, np.nan] * 4), "0/1 labels"),
    (np.array(["0", "1", "1"] * 4), "0/1 labels"),
    (np.zeros(11, int), r"shape \(12, 1\)"),
    (np.zeros((12, 2), int), r"shape \(12, 1\)"),
])
def test_bad_binary_labels_raise(y, message):
    with pytest.raises(DataError, match=message):
        MLP([30, 5, 1], output="sigmoid").fit(np.zeros((12, 30), np.uint8), y)


def test_multi_label_targets_need_one_column_per_output():
    X = np.zeros((12, 30), np.uint8)
    with pytest.raises(DataError, match=r"shape \(12, 3\).*got \(12,\)"):
        MLP([30, 5, 3], output="sigmoid").fit(X, np.zeros(12, int))
    with pytest.raises(ValueError, match="class_weight needs a softmax"):
        MLP([30, 5, 3], output="sigmoid").fit(X, np.zeros((12, 3), int), class_weight=[1.0, 2.0])


def test_bool_float_and_int_labels_train_alike():
    X, y = gaussian_problem(96, [6, 3], seed=5, output="sigmoid")
    runs = []
    for variant in (y, y.astype(bool), y.astype(np.float32)):
        model = MLP([6, 8, 3], output="sigmoid", seed=6, dtype="float64")
        model.fit(X, variant, epochs=1, batch_size=16)
        runs.append(model.get_params())
    assert np.array_equal(runs[0], runs[1]) and np.array_equal(runs[0], runs[2])


def test_save_load_round_trip(tmp_path):
    X, y = gaussian_problem(96, [6, 2], seed=7, output="sigmoid")
    model = MLP([6, 8, 2], activation="silu", output="sigmoid", init="he", seed=8)
    model.fit(X, y, epochs=2, batch_size=16, optimizer=fastnn.Adam(lr=0.01))
    model.save(tmp_path / "m.npz")
    loaded = MLP.load(tmp_path / "m.npz")
    assert loaded.config() == model.config() and loaded.config()["output"] == "sigmoid"
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    model.fit(X, y, epochs=1, batch_size=16, optimizer=fastnn.Adam(lr=0.01))
    loaded.fit(X, y, epochs=1, batch_size=16, optimizer=fastnn.Adam(lr=0.01))
    assert np.array_equal(loaded.get_params(), model.get_params())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_saturated_outputs_give_a_finite_loss(dtype):
    """Logits of +-1000 (past where exp overflows, in float64 too): probabilities exactly 0 or
    1, and each example's loss the logit's size where the label is on the wrong side, 0 where not."""
    model = MLP([4, 3, 2], output="sigmoid", dtype=dtype)
    (W0, b0), (W1, b1) = model.get_weights()
    model.set_weights([(W0, b0), (np.zeros_like(W1), np.array([1000.0, -1000.0]))])
    X = np.ones((4, 4))
    np.testing.assert_array_equal(model.predict_proba(X), [[1, 0]] * 4)
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    metrics = model.evaluate(X, y)
    assert metrics["loss"] == pytest.approx(np.mean([0, 500, 500, 1000]), rel=1e-6)
    assert metrics["accuracy"] == 0.25


def test_fit_many_equals_fit():
    X, y = gaussian_problem(96, [6, 3], seed=9, output="sigmoid")
    alone = [MLP([6, 8, 3], activation="gelu", output="sigmoid", seed=s) for s in (1, 2)]
    together = [MLP([6, 8, 3], activation="gelu", output="sigmoid", seed=s) for s in (1, 2)]
    histories = [m.fit(X, y, epochs=2, batch_size=16) for m in alone]
    for history, expected, a, b in zip(fastnn.fit_many(together, X, y, epochs=2, batch_size=16), histories, alone,
                                       together):
        assert np.array_equal(a.get_params(), b.get_params())
        assert history.accuracy == expected.accuracy and len(history.accuracy) == 2


def test_breast_cancer_two_classes_train_above_90_percent():
    """scikit-learn's breast cancer set (569 examples, 30 features), standardised: one sigmoid
    output, 0/1 labels."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    order = np.random.default_rng(0).permutation(len(data.target))
    X, y = data.data[order], data.target[order]
    train, test = slice(0, 400), slice(400, None)
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    X = (X - mean) / std
    model = MLP([30, 16, 1], activation="gelu", output="sigmoid", init="he", seed=0)
    history = model.fit(X[train], y[train], epochs=20, batch_size=32, optimizer=fastnn.Adam(lr=0.005))
    assert history.accuracy[-1] > 0.95
    metrics = model.evaluate(X[test], y[test])
    assert metrics["accuracy"] > 0.9 and metrics["loss"] < 0.3
    assert metrics["accuracy"] == np.mean(model.predict(X[test]) == y[test])


def test_multi_label_toy_problem_trains():
    """Three labels per example, one of them not linear in the inputs (a product's sign): every
    label of most held-out examples right after a few epochs."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1200, 5))
    Y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] * X[:, 4] > 0], axis=1).astype(int)
    model = MLP([5, 32, 3], activation="silu", output="sigmoid", init="he", seed=1)
    history = model.fit(X[:1000], Y[:1000], epochs=30, batch_size=32, optimizer=fastnn.Adam(lr=0.01))
    assert history.loss[-1] < history.loss[0] / 4
    metrics = model.evaluate(X[1000:], Y[1000:])
    assert metrics["accuracy"] > 0.85
    per_label = (model.predict(X[1000:]) == Y[1000:]).mean(axis=0)
    assert per_label.min() > 0.9


def test_command_line_names_the_output_it_cannot_use(tmp_path, capsys):
    """`fastnn evaluate` needs a softmax classifier: a sigmoid model is refused by name."""
    from fastnn.cli.main import main

    MLP([784, 4, 1], output="sigmoid").save(tmp_path / "binary.npz")
    assert main(["evaluate", str(tmp_path / "binary.npz")]) == 1
    assert capsys.readouterr().err == \
        f"fastnn: error: {tmp_path / 'binary.npz'} has a sigmoid output; this command needs a softmax classifier\n"
