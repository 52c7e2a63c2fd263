"""Dropout, sample weights, activations and MSE against a NumPy reference; initialisers'
distributions; early stopping. None of these needs torch, except the one initialiser test that
compares with torch.nn.init (skipped without torch)."""

import numpy as np
import pytest
from scipy import stats

import fastnn
from fastnn import MLP
from fastnn.kernels.layers import dropout_uniform
from fastnn.training import dropout_key, epoch_order
from helpers import gaussian_problem
from torch_reference import (
    dropout_key_numpy,
    dropout_scale,
    dropout_uniform_numpy,
    max_change,
    max_relative_error,
    numpy_train,
)

TOLERANCE = 1e-5  # relative, float64, what the PyTorch comparisons ask; observed errors are ~1e-14
SIZES = [12, 16, 12, 4]


def problem(n, seed=0, sizes=SIZES, output="softmax"):
    return gaussian_problem(n, sizes, seed, output)


def replay_orders(model, n, epochs):
    """The example orders fit(shuffle=True) will draw: epoch_order on a copy of the model's generator."""
    rng = np.random.default_rng()
    rng.bit_generator.state = model.rng.bit_generator.state
    return [epoch_order(rng, n) for _ in range(epochs)]


# -- dropout ----------------------------------------------------------------------------------------

def test_dropout_stream_restated_in_numpy_is_the_kernels():
    """The reference's mask function is the kernels' one: dropout_key and dropout_uniform, restated."""
    rng = np.random.default_rng(0)
    for seed, epoch in [(0, 0), (1, 0), (0, 1), (12345, 7), (2**40 + 3, 99)]:
        key = dropout_key(seed, epoch)
        assert key == dropout_key_numpy(seed, epoch)
        for e, layer, j in zip(rng.integers(0, 70_000, 50), rng.integers(0, 4, 50), rng.integers(0, 1000, 50)):
            assert dropout_uniform(np.uint64(key), int(e), int(layer), int(j)) == \
                dropout_uniform_numpy(key, e, layer, j)


def test_dropout_stream_is_uniform_and_independent():
    """Uniform on [0, 1); different epochs, layers and neighbouring examples give unrelated masks."""
    e, j = np.meshgrid(np.arange(400), np.arange(250), indexing="ij")
    u = dropout_uniform_numpy(dropout_key(3, 0), e, 0, j)
    assert 0 <= u.min() and u.max() < 1
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3
    others = [dropout_uniform_numpy(dropout_key(3, 1), e, 0, j), dropout_uniform_numpy(dropout_key(3, 0), e, 1, j),
              dropout_uniform_numpy(dropout_key(4, 0), e, 0, j), u[1:], u[:, 1:]]
    for v, w in [(u, others[0]), (u, others[1]), (u, others[2]), (u[:-1], others[3]), (u[:, :-1], others[4])]:
        assert abs(np.corrcoef(v.ravel(), w.ravel())[0, 1]) < 0.01
    kept = dropout_scale(3, 0, np.arange(400), 0, 250, 0.3) > 0
    assert abs(kept.mean() - 0.7) < 4 * np.sqrt(0.21 / kept.size)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_training_matches_numpy_reference(activation, rate):
    """Inverted dropout on every hidden layer, the mask of example e, layer l, unit j being
    dropout_uniform(dropout_key(seed, epoch), e, l, j) >= rate: 3 epochs of 10 batches."""
    X, y = problem(160, seed=1)
    model = MLP(SIZES, activation=activation, dropout=rate, init="he", seed=5, dtype="float64")
    start = model.get_weights()
    history = model.fit(X, y, epochs=3, batch_size=16, lr=0.1, shuffle=False)
    expected, losses = numpy_train(start, X, y, lr=0.1, epochs=3, batch_size=16, activation=activation,
                                   dropout=rate, seed=5)
    assert max_change(start, expected) > 1e-2
    assert max_relative_error(model.get_weights(), expected) < TOLERANCE
    np.testing.assert_allclose(history.loss, losses, rtol=1e-10)
    without, _ = numpy_train(start, X, y, lr=0.1, epochs=3, batch_size=16, activation=activation)
    assert max_relative_error(model.get_weights(), without) > 1e-2  # dropout did something


def test_dropout_mask_follows_the_example_across_shuffles_and_fit_calls():
    """Shuffled epochs, one fit call per epoch: the mask depends on (seed, epochs trained so far,
    example index), not on the example's place in the batch or on the fit call."""
    X, y = problem(100, seed=2)
    model = MLP(SIZES, dropout=0.3, init="glorot", seed=6, dtype="float64")
    start = model.get_weights()
    orders = replay_orders(model, 100, 3)
    for _ in range(3):
        model.partial_fit(X, y, batch_size=16, lr=0.05)
    expected, _ = numpy_train(start, X, y, lr=0.05, epochs=3, batch_size=16, dropout=0.3, seed=6, orders=orders)
    assert max_relative_error(model.get_weights(), expected) < TOLERANCE


def test_dropout_is_off_outside_training():
    """predict/evaluate use every unit, unscaled: the same outputs as the same weights without dropout."""
    X, y = problem(50, seed=3)
    model = MLP(SIZES, dropout=0.5, init="he", seed=7, dtype="float64")
    model.fit(X, y, epochs=1, batch_size=16, lr=0.1)
    plain = MLP(SIZES, init="he", seed=7, dtype="float64")
    plain.set_weights(model.get_weights())
    np.testing.assert_array_equal(model.predict_proba(X), plain.predict_proba(X))
    np.testing.assert_array_equal(model.predict_proba(X), model.predict_proba(X))


# -- sample weights, activations, MSE -----------------------------------------------------------

@pytest.mark.parametrize("output", ["softmax", "linear", "sigmoid"])
def test_sample_weight_matches_numpy_reference(output):
    """Each batch's loss is sum(w_i l_i) / sum(w_i); zero weights drop examples out."""
    X, y = problem(160, seed=4, output=output)
    w = np.random.default_rng(8).uniform(0, 3, 160)
    w[::7] = 0
    model = MLP(SIZES, output=output, init="he", seed=9, dtype="float64")
    start = model.get_weights()
    model.fit(X, y, epochs=2, batch_size=16, lr=0.1, shuffle=False, sample_weight=w)
    expected, _ = numpy_train(start, X, y, lr=0.1, epochs=2, batch_size=16, output=output, sample_weight=w)
    unweighted, _ = numpy_train(start, X, y, lr=0.1, epochs=2, batch_size=16, output=output)
    assert max_relative_error(model.get_weights(), expected) < TOLERANCE
    assert max_relative_error(model.get_weights(), unweighted) > 1e-3


def test_sample_and_class_weights_multiply():
    X, y = problem(160, seed=5)
    w = np.random.default_rng(10).uniform(0.5, 2, 160)
    class_weight = np.array([2.0, 0.5, 1.0, 3.0])
    model = MLP(SIZES, init="he", seed=11, dtype="float64")
    start = model.get_weights()
    model.fit(X, y, epochs=2, batch_size=16, lr=0.1, shuffle=False, sample_weight=w, class_weight=class_weight)
    expected, _ = numpy_train(start, X, y, lr=0.1, epochs=2, batch_size=16, sample_weight=w * class_weight[y])
    assert max_relative_error(model.get_weights(), expected) < TOLERANCE


def test_uniform_sample_weights_change_nothing():
    X, y = problem(160, seed=6)
    a = MLP(SIZES, init="he", seed=12, dtype="float64")
    b = MLP(SIZES, init="he", seed=12, dtype="float64")
    a.fit(X, y, epochs=2, batch_size=16, lr=0.1, shuffle=False)
    b.fit(X, y, epochs=2, batch_size=16, lr=0.1, shuffle=False, sample_weight=np.full(160, 2.5))
    assert max_relative_error(b.get_weights(), a.get_weights()) < 1e-12


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "identity", "gelu", "silu"])
@pytest.mark.parametrize("output", ["softmax", "linear", "sigmoid"])
def test_activation_and_loss_match_numpy_reference(activation, output):
    """Without torch, the activations, cross-entropy, MSE and binary cross-entropy (four labels
    per example) still meet an independent reference."""
    X, y = problem(160, seed=7, output=output)
    model = MLP(SIZES, activation=activation, output=output, init="uniform", seed=13, dtype="float64")
    start = model.get_weights()
    history = model.fit(X, y, epochs=2, batch_size=16, lr=0.05, shuffle=False)
    expected, losses = numpy_train(start, X, y, lr=0.05, epochs=2, batch_size=16, activation=activation,
                                   output=output)
    assert max_change(start, expected) > 1e-3
    assert max_relative_error(model.get_weights(), expected) < TOLERANCE
    np.testing.assert_allclose(history.loss, losses, rtol=1e-10)


# -- initialisers --------------------------------------------------------------------------------

INIT_SIZES = [784, 300, 100, 10]


def init_limit(init, n_in, n_out):
    return {"uniform": 0.5, "he": np.sqrt(6 / n_in), "glorot": np.sqrt(6 / (n_in + n_out))}[init]


@pytest.mark.parametrize("init", ["uniform", "he", "glorot"])
def test_initialiser_distribution(init):
    """Every layer's W is uniform on [-limit, limit): within the bounds, reaching them, mean 0,
    variance limit^2 / 3, and a Kolmogorov-Smirnov test; biases uniform too ('uniform') or zero."""
    model = MLP(INIT_SIZES, init=init, seed=0, dtype="float64")
    for (W, b), n_in, n_out in zip(model.get_weights(), INIT_SIZES[:-1], INIT_SIZES[1:]):
        limit = init_limit(init, n_in, n_out)
        w = W.ravel()
        assert np.abs(w).max() <= limit
        assert np.abs(w).max() > limit * (1 - 20 / w.size)
        sd = limit / np.sqrt(3)
        assert abs(w.mean()) < 5 * sd / np.sqrt(w.size)
        assert abs(w.var() / sd**2 - 1) < 5 * np.sqrt(0.8 / w.size)  # var of u^2 is 4/5 sd^4 for uniform
        assert stats.kstest(w, stats.uniform(-limit, 2 * limit).cdf).pvalue > 1e-3
        if init == "uniform":
            assert np.abs(b).max() <= 0.5 and np.unique(b).size == n_out
        else:
            np.testing.assert_array_equal(b, 0)


@pytest.mark.parametrize("init", ["uniform", "he", "glorot"])
def test_initialiser_is_seeded(init):
    """Same seed, same weights, bit for bit, in float32 and float64 (the same draws, rounded);
    another seed, other weights; the layers are not copies of each other."""
    a = MLP(INIT_SIZES, init=init, seed=3, dtype="float64").get_params()
    np.testing.assert_array_equal(a, MLP(INIT_SIZES, init=init, seed=3, dtype="float64").get_params())
    np.testing.assert_array_equal(a.astype(np.float32), MLP(INIT_SIZES, init=init, seed=3).get_params())
    other = MLP(INIT_SIZES, init=init, seed=4, dtype="float64").get_params()
    assert np.mean(a == other) < 0.05
    w1, w2 = (W for W, _ in MLP([50, 50, 50], init=init, seed=3, dtype="float64").get_weights())
    assert abs(np.corrcoef(w1.ravel(), w2.ravel())[0, 1]) < 0.1


def test_uniform_initialiser_is_the_references():
    from fastnn import reference
    model = MLP([30, 20, 10], init="uniform", seed=5, dtype="float64")
    for (W, b), (Wr, br) in zip(model.get_weights(), reference.init_params([30, 20, 10], seed=5)):
        np.testing.assert_array_equal(W, Wr.T)
        np.testing.assert_array_equal(b, br.ravel())


@pytest.mark.parametrize("init", ["he", "glorot"])
def test_initialiser_matches_torch_init(init):
    """Two-sample KS test against torch.nn.init.kaiming_uniform_(nonlinearity='relu') (He) or
    xavier_uniform_ (Glorot) on a weight of the same shape (n_out, n_in)."""
    torch = pytest.importorskip("torch", reason="compares with torch.nn.init")
    torch.manual_seed(0)
    model = MLP(INIT_SIZES, init=init, seed=0, dtype="float64")
    for (W, _), n_in, n_out in zip(model.get_weights(), INIT_SIZES[:-1], INIT_SIZES[1:]):
        t = torch.empty(n_out, n_in, dtype=torch.float64)
        if init == "he":
            torch.nn.init.kaiming_uniform_(t, nonlinearity="relu")
        else:
            torch.nn.init.xavier_uniform_(t)
        t = t.numpy().ravel()
        assert stats.ks_2samp(W.ravel(), t).pvalue > 1e-3
        assert abs(np.abs(W).max() / np.abs(t).max() - 1) < 1e-2


# -- early stopping ------------------------------------------------------------------------------

def overfitting_run(restore_best_weights=True, patience=5, epochs=200):
    """A wide network on 40 training examples with 30% noisy labels: the validation loss falls,
    then rises as the network learns the noise."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(20, 3))
    X = rng.normal(size=(1040, 20))
    y = (X @ W).argmax(axis=1)
    noisy = rng.random(1040) < 0.3
    y[noisy] = rng.integers(0, 3, noisy.sum())
    model = MLP([20, 64, 3], init="he", seed=1, dtype="float64")
    snapshots = []
    history = model.fit(X[:40], y[:40], epochs=epochs, batch_size=8, optimizer=fastnn.Adam(lr=0.005),
                        validation_data=(X[40:], y[40:]),
                        early_stopping=fastnn.EarlyStopping(patience=patience,
                                                            restore_best_weights=restore_best_weights),
                        on_epoch=lambda epoch, h: snapshots.append(model.get_params()))
    return model, history, snapshots, (X[40:], y[40:])


def test_early_stopping_stops_and_restores_the_best_weights():
    model, history, snapshots, (X_val, y_val) = overfitting_run()
    val = np.array(history.val_loss)
    assert history.stopped_early
    assert history.best_epoch == int(val.argmin())
    assert len(val) == history.best_epoch + 5 + 1 < 200  # patience: 5 epochs without improvement
    assert history.best_epoch >= 2  # the validation loss fell first ...
    assert (val[history.best_epoch + 1:] > val[history.best_epoch]).all()
    assert val[-1] > val.min() * 1.04  # ... then rose: it really overfitted before stopping
    assert history.loss[-1] < history.loss[history.best_epoch]  # while the training loss kept falling
    np.testing.assert_array_equal(model.get_params(), snapshots[history.best_epoch])
    assert model.evaluate(X_val, y_val)["loss"] == pytest.approx(val.min(), rel=1e-12)


def test_early_stopping_without_restore_keeps_the_last_weights():
    model, history, snapshots, (X_val, y_val) = overfitting_run(restore_best_weights=False)
    assert history.stopped_early
    np.testing.assert_array_equal(model.get_params(), snapshots[-1])
    assert model.evaluate(X_val, y_val)["loss"] == pytest.approx(history.val_loss[-1], rel=1e-12)


def test_early_stopping_watches_the_training_loss_without_validation_data():
    """No validation data: the monitored loss is the training loss, which here keeps falling."""
    X, y = problem(64, seed=8)
    model = MLP(SIZES, init="he", seed=14, dtype="float64")
    history = model.fit(X, y, epochs=6, batch_size=16, optimizer=fastnn.Adam(lr=0.01),
                        early_stopping=fastnn.EarlyStopping(patience=1))
    assert not history.stopped_early and len(history.loss) == 6
    assert history.best_epoch == 5 and np.all(np.diff(history.loss) < 0)
