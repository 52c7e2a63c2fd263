"""fit_many: K models at once, each bit-identical to its own single fit."""

import numpy as np
import pytest

import fastnn
from fastnn import MLP, fit_many
from helpers import random_pixels


@pytest.fixture
def data():
    X, rng = random_pixels(1500, 60, seed=3)
    return X, rng.integers(0, 4, 1500)


@pytest.mark.parametrize("optimizers", [None, fastnn.Adam(lr=0.01),
                                        [fastnn.SGD(lr=0.05, momentum=0.9), fastnn.SGD(lr=0.2, momentum=0.5),
                                         fastnn.SGD(lr=0.1, momentum=0.9)]],
                         ids=["sgd", "adam", "momentum per model"])
def test_each_model_equals_its_single_run(data, optimizers):
    X, y = data
    make = lambda: [MLP([60, 12, 4], seed=s, dropout=0.1, init="he", pixels=True)  # noqa: E731
                    for s in range(3)]
    singles, many = make(), make()
    options = dict(epochs=2, batch_size=32, schedule=fastnn.schedules.Cosine(2))
    for k, model in enumerate(singles):
        model.fit(X, y, optimizer=optimizers[k] if isinstance(optimizers, list) else optimizers, **options)
    histories = fit_many(many, X, y, optimizers=optimizers, **options)
    for single, other, history in zip(singles, many, histories):
        assert np.array_equal(single.get_params(), other.get_params())
        assert other.epochs_trained == 2 and len(history.loss) == 2
    # Training continues from the same state too: one more epoch each way.
    singles[0].fit(X, y, epochs=1, batch_size=32, optimizer=optimizers[0] if isinstance(optimizers, list)
                   else optimizers)
    fit_many(many[:1], X, y, epochs=1, batch_size=32,
             optimizers=optimizers[:1] if isinstance(optimizers, list) else optimizers)
    assert np.array_equal(singles[0].get_params(), many[0].get_params())


def test_models_of_different_shapes_are_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="one shape"):
        fit_many([MLP([60, 12, 4]), MLP([60, 13, 4])], X, y)
    with pytest.raises(ValueError, match="one kind"):
        fit_many([MLP([60, 12, 4]), MLP([60, 12, 4], seed=1)], X, y, optimizers=[fastnn.SGD(), fastnn.Adam()])


def test_large_batches_equal_their_single_runs():
    """Batches of 4,096 examples or more train in chunks (plan CHUNKS) in fit: in fit_many too."""
    X, rng = random_pixels(5000, 60, seed=4)
    y = rng.integers(0, 4, 5000)
    make = lambda: [MLP([60, 12, 4], seed=s, pixels=True) for s in range(3)]  # noqa: E731
    singles, many = make(), make()
    options = dict(epochs=2, batch_size=4500, optimizer=fastnn.Adam(lr=0.01))
    for model in singles:
        model.fit(X, y, threads=1, **options)
    fit_many(many, X, y, optimizers=options.pop("optimizer"), **options)
    for single, other in zip(singles, many):
        assert np.array_equal(single.get_params(), other.get_params())
