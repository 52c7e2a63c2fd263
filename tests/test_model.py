"""The MLP API: predictions against the reference, weights, files, and checks at the boundary."""

import numpy as np
import pytest

from fastnn import MLP, DataError, ModelFileError, reference
from helpers import random_pixels, to_reference


@pytest.fixture
def small():
    X, rng = random_pixels(120, 30, seed=8)
    return X, rng.integers(0, 4, 120)


def test_predict_proba_equals_reference(small):
    X, y = small
    model = MLP([30, 9, 4], pixels=True, seed=2, dtype="float64")
    expected = reference.forward_prop(to_reference(model.get_weights()), reference.scale_pixels(X))[1][-1].T
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-12)
    assert np.array_equal(model.predict(X), expected.argmax(axis=1))
    metrics = model.evaluate(X, y)
    assert metrics["accuracy"] == pytest.approx(np.mean(expected.argmax(axis=1) == y))
    assert metrics["loss"] == pytest.approx(reference.loss(to_reference(model.get_weights()),
                                                           reference.scale_pixels(X), y), rel=1e-12)


def test_set_weights_round_trip(small):
    X, _ = small
    a, b = MLP([30, 9, 4], seed=1), MLP([30, 9, 4], seed=2)
    assert not np.array_equal(a.predict_proba(X), b.predict_proba(X))
    b.set_weights(a.get_weights())
    assert np.array_equal(a.get_params(), b.get_params())
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))


def test_set_weights_rejects_wrong_shapes_and_nan():
    model = MLP([30, 9, 4])
    weights = model.get_weights()
    with pytest.raises(ValueError, match="layer 0"):
        model.set_weights([(weights[0][0].T, weights[0][1]), weights[1]])
    weights[1][0][0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        model.set_weights(weights)


def test_save_load_round_trip(tmp_path, small):
    X, y = small
    model = MLP([30, 9, 4], activation="tanh", init="he", seed=3, dtype="float64")
    model.fit(X, y, epochs=2, batch_size=16, lr=0.05)
    model.save(tmp_path / "m.npz", note="hello")
    loaded = MLP.load(tmp_path / "m.npz")
    assert loaded.config() == model.config()
    assert np.array_equal(loaded.get_params(), model.get_params())
    assert loaded.metadata == {"note": "hello"}
    # The generator state travels too: further training continues identically.
    model.fit(X, y, epochs=1, batch_size=16, lr=0.05)
    loaded.fit(X, y, epochs=1, batch_size=16, lr=0.05)
    assert np.array_equal(loaded.get_params(), model.get_params())


def test_load_refuses_tampered_truncated_and_missing_files(tmp_path):
    path = tmp_path / "m.npz"
    MLP([5, 3, 2]).save(path)
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["params"][0] += 1  # a valid archive whose weights no longer match the checksum
    np.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(ModelFileError, match="checksum"):
        MLP.load(tmp_path / "tampered.npz")
    data = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        MLP.load(tmp_path / "truncated.npz")
    corrupt = bytearray(data)
    at = data.index(arrays["params"][1:].tobytes())  # inside the stored weights: the CRC breaks
    corrupt[at] ^= 0xFF
    (tmp_path / "corrupt.npz").write_bytes(bytes(corrupt))
    with pytest.raises(ModelFileError):
        MLP.load(tmp_path / "corrupt.npz")
    with pytest.raises(ModelFileError, match="does not exist"):
        MLP.load(tmp_path / "nothing.npz")


def test_load_refuses_pickles(tmp_path):
    np.savez(tmp_path / "evil.npz", params=np.zeros(3), meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFileError, match="pickle"):
        MLP.load(tmp_path / "evil.npz")


@pytest.mark.parametrize("X, message", [
    (np.zeros((10, 29), np.uint8), "29 features"),
    (np.zeros((10,), np.uint8), "2-D"),
    (np.zeros((0, 30), np.uint8), "no examples"),
    (np.full((10, 30), np.nan), "NaN"),
    (np.full((10, 30), np.inf), "NaN or infinite"),
    (np.full((10, 30), 1e300), "too large"),
    (np.array([["a"] * 30] * 10), "numbers"),
    (np.zeros((10, 30), complex), "real"),
])
def test_bad_inputs_raise_before_any_kernel(X, message):
    with pytest.raises(DataError, match=message):
        MLP([30, 5, 3]).fit(X, np.zeros(len(X), int))


@pytest.mark.parametrize("y, message", [
    # Labels other than 0..2 name the classes: there must be exactly 3 of them.
    (np.array([0, 1, 3, 4] * 3), r"y has 4 classes \(0, 1, 3, 4\), the network has 3 outputs"),
    (np.array([0, -1] * 6), "y has 2 classes for a network of 3 outputs"),
    (np.array([0.5] * 12), "y has 1 classes for a network of 3 outputs"),
    (np.array(["a", "b"] * 6), "y has 2 classes for a network of 3 outputs"),
    (np.array([True, False] * 6), "y has 2 classes for a network of 3 outputs"),  # bools are not 0 and 1
    (np.array([0.0, 1.0, np.nan] * 4), "a class label cannot be nan"),
    (np.array([1j, 2j, 3j] * 4), "not complex"),
    (np.array([None, "a", "b"] * 4, dtype=object), "not NoneType"),
    (np.zeros(11, int), "y has 11 labels for 12 examples"),
    (np.array(["a", "b", "c"] * 4)[:11], "y has 11 labels for 12 examples"),
    (np.zeros((12, 1), int), "1-D"),
    (np.array([["a"], ["b"], ["c"]] * 4), "1-D"),
])
def test_bad_labels_raise(y, message):
    with pytest.raises(DataError, match=message):
        MLP([30, 5, 3]).fit(np.zeros((12, 30), np.uint8), y)


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": -1}, "epochs"), ({"batch_size": 0}, "batch_size"), ({"lr": 0}, "lr"),
    ({"lr": float("nan")}, "lr"), ({"threads": 0}, "threads"),
])
def test_bad_options_raise(small, kwargs, message):
    X, _ = small
    with pytest.raises(ValueError, match=message):
        MLP([30, 9, 4]).fit(X, np.zeros(len(X), int), **kwargs)


@pytest.mark.parametrize("kwargs", [
    {"sizes": [30]}, {"sizes": [30, 0, 4]}, {"sizes": [30, 5, 1]},
    {"sizes": [30, 5, 4], "activation": "swish"}, {"sizes": [30, 5, 4], "dtype": "float16"},
    {"sizes": [30, 5, 4], "init": "zeros"},
])
def test_bad_networks_raise(kwargs):
    with pytest.raises(ValueError):
        MLP(**kwargs)


def test_other_input_dtypes_train(small):
    """Integer, boolean, float and non-contiguous inputs are used as given; results match."""
    X, y = small
    Xf = X / 255.0
    base = MLP([30, 9, 4], seed=0, dtype="float64")
    base.fit(Xf, y, epochs=1, batch_size=16)
    for variant in (np.asfortranarray(Xf), Xf[::-1].copy()[::-1], np.repeat(Xf, 2, axis=1)[:, ::2]):
        model = MLP([30, 9, 4], seed=0, dtype="float64")
        model.fit(variant, y, epochs=1, batch_size=16)
        assert np.array_equal(model.get_params(), base.get_params())
    for other in (X.astype(np.int64), X > 0):
        MLP([30, 9, 4]).fit(other, y, epochs=1)


def test_zero_epochs_changes_nothing(small):
    X, y = small
    model = MLP([30, 9, 4])
    before = model.get_params()
    assert model.fit(X, y, epochs=0).loss == []
    assert np.array_equal(model.get_params(), before)


def test_divergence_is_detected_and_weights_kept(small):
    from fastnn import TrainingDivergedError

    X, y = small
    model = MLP([30, 9, 4], init="he")
    with pytest.raises(TrainingDivergedError, match="NaN or infinite"):
        model.fit(X.astype(np.float64) * 1e18, y, epochs=3, lr=1e6)
    assert np.isfinite(model.get_params()).all()


def test_optimizer_state_survives_a_new_learning_rate(small):
    """As in torch, changing lr keeps the moments and the step count; changing the rule resets them."""
    import fastnn

    X, y = small
    model = MLP([30, 9, 4], seed=1)
    model.fit(X, y, epochs=1, batch_size=30, optimizer=fastnn.Adam(lr=0.01))
    moments = model.optimizer_state.m.copy()
    model.partial_fit(X, y, batch_size=30, optimizer=fastnn.Adam(lr=0.001))
    assert model.optimizer_state.step == 8 and model.optimizer_state.optimizer.lr == 0.001
    assert not np.array_equal(model.optimizer_state.m, moments)
    model.partial_fit(X, y, batch_size=30, optimizer=fastnn.SGD(lr=0.1, momentum=0.9))
    assert model.optimizer_state.step == 4


def test_validation_split_holds_out_the_rows_the_command_line_and_sweeps_hold_out():
    """One split (fastnn.data.validation_rows) for the API, `fastnn train --validation-split`
    and sweeps: the same seed and fraction hold out the same examples."""
    from fastnn.data.examples import validation_rows

    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(200, 20)), rng.integers(0, 3, 200)
    model = MLP([20, 8, 3], seed=5)
    history = model.fit(X, y, epochs=1, validation_split=0.25)
    train, held = validation_rows(200, 0.25, seed=5)
    assert held.size == 50 and np.intersect1d(train, held).size == 0
    assert history.val_loss[-1] == pytest.approx(model.evaluate(X[held], y[held])["loss"], rel=1e-12)
    other = model.evaluate(X[train[:50]], y[train[:50]])["loss"]
    assert history.val_loss[-1] != pytest.approx(other, rel=1e-6)
