"""The Python API a Keras or scikit-learn user expects: repr, summary, fit(verbose=...), score,
evaluate(metrics=...), and epochs numbered from 1 as the command line numbers them."""

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, r2_score

import fastnn
from fastnn import MLP


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return ((X - X.mean(0)) / X.std(0)).astype(np.float32), np.array(["setosa", "versicolor", "virginica"])[y]


def trained(iris, epochs=5):
    X, names = iris
    model = MLP([4, 16, 3], init="glorot", seed=1)
    model.fit(X, names, epochs=epochs, batch_size=16, optimizer=fastnn.Adam(lr=0.01))
    return model


def test_repr_shows_the_settings_and_builds_the_same_network(iris):
    model = MLP([4, 8, 3], activation="tanh", init="he", seed=5, dropout=0.25, pixels=True)
    text = repr(model)
    assert text == ("MLP([4, 8, 3], activation='tanh', output='softmax', init='he', seed=5, dtype='float32', "
                    "pixels=True, dropout=0.25)")
    again = eval(text, {"MLP": MLP})
    assert np.array_equal(again.get_params(), model.get_params())
    assert "classes=['setosa', 'versicolor', 'virginica']" in repr(trained(iris))


def test_summary_lists_layers_parameters_and_training_state(iris):
    lines = []
    trained(iris).summary(print_fn=lines.append)
    text = lines[0]
    assert "MLP 4-16-3: float32, inputs as given" in text
    assert "dense 1  4 -> 16          80  relu" in text
    assert "dense 2  16 -> 3          51  softmax" in text
    assert "total: 131 parameters" in text
    assert "classes: setosa, versicolor, virginica" in text
    assert "trained 5 epochs; optimizer Adam(lr=0.01" in text and "50 steps" in text


def test_verbose_2_prints_a_line_per_epoch_numbered_from_1(iris, capsys):
    X, names = iris
    model = MLP([4, 16, 3], init="glorot")
    history = model.fit(X, names, epochs=2, batch_size=16, verbose=2)
    model.fit(X, names, epochs=1, batch_size=16, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1", "epoch 2", "epoch 3"]
    assert f"loss {history.loss[0]:.4f}, accuracy {history.accuracy[0]:.4f}" in lines[0]


def test_verbose_1_draws_a_bar_and_trains_the_same_weights(iris, capsys):
    X, names = iris
    quiet, shown = MLP([4, 16, 3], init="glorot"), MLP([4, 16, 3], init="glorot")
    quiet.fit(X, names, epochs=2, batch_size=16)
    shown.fit(X, names, epochs=2, batch_size=16, verbose=1)
    assert np.array_equal(quiet.get_params(), shown.get_params())
    err = capsys.readouterr().err
    assert "epoch 1" in err and "epoch 2" in err and "10/10" in err
    with pytest.raises(ValueError, match="verbose"):
        quiet.fit(X, names, verbose=3)


def test_callbacks_number_epochs_as_the_command_line(iris):
    X, names = iris
    model = MLP([4, 16, 3], init="glorot")
    seen, blocks = [], []
    model.fit(X, names, epochs=2, batch_size=16, on_epoch=lambda e, h: seen.append(e),
              on_block=lambda e, done, n: blocks.append((e, done)), blocks_per_epoch=2)
    model.fit(X, names, epochs=1, batch_size=16, on_epoch=lambda e, h: seen.append(e))
    assert seen == [1, 2, 3] and model.epochs_trained == 3
    assert blocks[0] == (1, 5) and blocks[-1][0] == 2


def test_score_and_evaluate_metrics_equal_scikit_learns(iris):
    X, names = iris
    model = trained(iris)
    predicted = model.predict(X)
    assert model.score(X, names) == pytest.approx(np.mean(predicted == names))
    found = model.evaluate(X, names, metrics=["accuracy", "report", "confusion_matrix"])
    classes = ["setosa", "versicolor", "virginica"]
    assert np.array_equal(found["confusion_matrix"], confusion_matrix(names, predicted, labels=classes))
    precision, recall, f1, support = precision_recall_fscore_support(names, predicted, labels=classes,
                                                                     zero_division=0)
    for row, p, r, f, s, name in zip(found["report"]["classes"], precision, recall, f1, support, classes):
        assert row["class"] == name and row["support"] == s
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p, r, f))
    assert found["report"]["macro"]["f1"] == pytest.approx(f1.mean())
    with pytest.raises(ValueError, match="r2"):
        model.evaluate(X, names, metrics=["r2"])


def test_score_of_a_regression_is_r2():
    X, y = load_diabetes(return_X_y=True)
    y = (y - y.mean()) / y.std()
    model = MLP([10, 32, 1], output="linear", init="glorot", dtype="float64")
    model.fit(X, y, epochs=30, optimizer=fastnn.Adam(lr=0.01))
    predicted = model.predict(X)[:, 0]
    assert model.score(X, y) == pytest.approx(r2_score(y, predicted), rel=1e-9)
    found = model.evaluate(X, y, metrics=["r2", "rmse", "mae"])
    assert found["rmse"] == pytest.approx(np.sqrt(np.mean((predicted - y) ** 2)), rel=1e-9)
    assert found["mae"] == pytest.approx(np.mean(np.abs(predicted - y)), rel=1e-9)
