"""Training on real MNIST reaches the accuracies the tutorial and the peers reach."""

import numpy as np
import pytest

from fastnn import MLP, reference
from fastnn.data.datasets import read_csv
from helpers import to_reference

def test_tutorial_network_minibatch_sgd(mnist):
    """784-10-10, the tutorial's initialisation, lr 0.1, batch 64: median over five seeds."""
    after_one, after_five = [], []
    for seed in range(5):
        model = MLP([784, 10, 10], pixels=True, seed=seed)
        accuracy = []
        model.fit(mnist.train_images, mnist.train_labels, epochs=5, batch_size=64, lr=0.1,
                  on_epoch=lambda e, h: accuracy.append(
                      model.evaluate(mnist.test_images, mnist.test_labels)["accuracy"]))
        after_one.append(accuracy[0])
        after_five.append(accuracy[4])
    assert np.median(after_one) >= 0.86
    assert np.median(after_five) >= 0.91


def test_wider_network_reaches_97_percent(mnist):
    model = MLP([784, 128, 10], init="he", pixels=True, seed=0)
    model.fit(mnist.train_images, mnist.train_labels, epochs=10, batch_size=64, lr=0.1)
    assert model.evaluate(mnist.test_images, mnist.test_labels)["accuracy"] >= 0.97


@pytest.fixture(scope="module")
def kaggle(shared_data):
    """The tutorial's split: shuffled rows, the first 1,000 for dev, the other 41,000 to train."""
    X, y = read_csv(shared_data / "digit-recognizer" / "train.csv.gz")
    return X, y


def tutorial_split(X, y, seed):
    order = np.random.default_rng(seed).permutation(len(y))
    return X[order[1000:]], y[order[1000:]], X[order[:1000]], y[order[:1000]]


@pytest.mark.slow
def test_full_batch_matches_reference_on_the_tutorial(kaggle):
    X, y, X_dev, y_dev = tutorial_split(*kaggle, seed=0)
    model = MLP([784, 10, 10], pixels=True, seed=0, dtype="float64")
    params = reference.gradient_descent(to_reference(model.get_weights()), reference.scale_pixels(X), y,
                                        0.10, 500)
    model.fit(X, y, epochs=500, batch_size=len(y), lr=0.10, shuffle=False)
    expected = reference.get_accuracy(reference.get_predictions(params, reference.scale_pixels(X_dev)), y_dev)
    assert model.evaluate(X_dev, y_dev)["accuracy"] == expected
    W, _ = model.get_weights()[0]
    np.testing.assert_allclose(W, params[0][0].T, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_tutorial_dev_accuracy_over_five_seeds(kaggle):
    dev = []
    for seed in range(5):
        X, y, X_dev, y_dev = tutorial_split(*kaggle, seed=seed)
        model = MLP([784, 10, 10], pixels=True, seed=seed)
        model.fit(X, y, epochs=500, batch_size=len(y), lr=0.10, shuffle=False)
        dev.append(model.evaluate(X_dev, y_dev)["accuracy"])
    assert np.median(dev) >= 0.83, dev
