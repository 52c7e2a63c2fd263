"""Same seed, same data: bit-identical weights, on every run and for any number of threads."""

import numpy as np
import pytest

from fastnn import MLP, SGD, Adam
from fastnn.kernels.codes import VECTOR_BYTES
from fastnn.layout import TRANSPOSE_MIN_VECTORS

LANES = VECTOR_BYTES // 4  # float32 values per vector: 16 with AVX-512, 8 with AVX2


def train(X, y, threads, seed=0, sizes=(784, 32, 10), clip_norm=None, optimizer=None):
    model = MLP(list(sizes), pixels=True, seed=seed)
    model.fit(X, y, epochs=2, batch_size=64, lr=0.1 if optimizer is None else None, optimizer=optimizer,
              threads=threads, clip_norm=clip_norm)
    return model.get_params()


def test_same_seed_same_weights(mnist):
    X, y = mnist.train_images[:5000], mnist.train_labels[:5000]
    assert np.array_equal(train(X, y, threads=2), train(X, y, threads=2))


def test_different_seeds_differ(mnist):
    X, y = mnist.train_images[:2000], mnist.train_labels[:2000]
    assert not np.array_equal(train(X, y, threads=1, seed=0), train(X, y, threads=1, seed=1))


def test_one_and_two_threads_agree_bit_for_bit(mnist, force_parallel, two_cpus):
    X, y = mnist.train_images[:5000], mnist.train_labels[:5000]
    serial = train(X, y, threads=1)
    assert np.array_equal(serial, train(X, y, threads=2))
    wide = train(X, y, threads=1, sizes=(784, 200, 10))
    assert np.array_equal(wide, train(X, y, threads=2, sizes=(784, 200, 10)))


THREAD_RUNS = {
    "sgd, ragged last batch": dict(sizes=(784, 10, 10), n=1000, fit=dict(batch_size=64)),
    "three blocks a batch, three calls an epoch": dict(sizes=(784, 16, 10), n=1000,
                                                      fit=dict(batch_size=48, blocks_per_epoch=3)),
    "momentum, dropout": dict(sizes=(784, 24, 10), n=700, dropout=0.2,
                              fit=dict(batch_size=32, optimizer="momentum")),
    "rmsprop, twenty calls an epoch": dict(sizes=(784, 20, 10), n=1300,
                                           fit=dict(batch_size=64, optimizer="rmsprop", blocks_per_epoch=20)),
    "adam, clipping, float64": dict(sizes=(784, 12, 8, 10), n=700, dtype="float64",
                                    fit=dict(batch_size=64, optimizer="adam", clip_norm=0.5)),
    "sgd, float64, three layers": dict(sizes=(784, 12, 8, 10), n=700, dtype="float64", fit=dict(batch_size=32)),
    # The sigmoid output: two classes (digit >= 5), and ten labels (one-hot: the multi-label path).
    "gelu, sigmoid, two classes": dict(sizes=(784, 16, 1), n=700, activation="gelu", output="sigmoid",
                                       targets=lambda y: (y >= 5).astype(int), fit=dict(batch_size=32)),
    "silu, sigmoid, ten labels, adam": dict(sizes=(784, 24, 10), n=700, activation="silu", output="sigmoid",
                                            targets=lambda y: np.eye(10, dtype=int)[y],
                                            fit=dict(batch_size=64, optimizer="adam")),
}


@pytest.mark.parametrize("case", THREAD_RUNS.values(), ids=THREAD_RUNS.keys())
def test_two_workers_agree_with_one_bit_for_bit(mnist, force_parallel, two_cpus, case):
    """The weights of two workers and of one, over three epochs in two fit calls (the second
    continues the optimizer's state)."""
    import fastnn

    X, y = mnist.train_images[:case["n"]], case.get("targets", np.asarray)(mnist.train_labels[:case["n"]])
    optimizers = {"momentum": fastnn.SGD(lr=0.05, momentum=0.9), "adam": fastnn.Adam(lr=0.003),
                  "rmsprop": fastnn.RMSprop(lr=0.001)}

    def run(threads):
        model = MLP(list(case["sizes"]), pixels=True, seed=4, dtype=case.get("dtype", "float32"),
                    dropout=case.get("dropout", 0.0), activation=case.get("activation", "relu"),
                    output=case.get("output", "softmax"))
        settings = dict(case["fit"], optimizer=optimizers.get(case["fit"].get("optimizer")))
        assert model.fit(X, y, epochs=1, threads=threads, **settings).workers == threads
        model.fit(X, y, epochs=2, threads=threads, **settings)
        return model.get_params()

    assert np.array_equal(run(2), run(1))


def test_two_workers_with_clipping_agree_with_one_on_every_run(force_parallel, two_cpus):
    """With clipping, each worker sums the whole gradient's squares, then the workers update (and
    clear) its rows. A worker that started updating while another was still summing changed the
    other's norm: 4 to 16 runs in 300 differed from one thread, by up to 0.05. Many short runs,
    so that a race shows up."""
    import fastnn

    rng = np.random.default_rng(26)
    X = ((rng.random((160, 64)) < 0.3) * rng.integers(1, 256, (160, 64))).astype(np.uint8)
    y = rng.integers(0, 10, 160)

    def run(threads):
        model = MLP([64, 24, 12, 10], init="he", pixels=True, seed=27, dtype="float64")
        model.fit(X, y, epochs=2, batch_size=16, optimizer=fastnn.Adam(lr=0.01), shuffle=False, clip_norm=0.3,
                  threads=threads)
        return model.get_params()

    serial = run(1)
    differing = sum(not np.array_equal(run(2), serial) for _ in range(200))
    assert differing == 0, f"{differing} of 200 two-worker runs differ from one worker"


@pytest.mark.parametrize("hidden", [5 * LANES, 7 * LANES - 3, 9 * LANES, 25 * LANES - 1],
                         ids=lambda h: f"784-{h}-10")
def test_transposed_batch_gives_the_per_example_gradient_bit_for_bit(mnist, monkeypatch, hidden):
    """Wide first layers sum their gradient over the batch grouped by input unit: the same
    additions in the same order as example by example (tiles of 4+1, 4+2+1, 8+1, 8+8+8+1 vectors).
    A clip norm that never clips keeps the gradient whole in both: with plain SGD each path
    fuses the first layer's step into its own loop, by example or by input unit."""
    import fastnn.layout

    X, y = mnist.train_images[:1000], mnist.train_labels[:1000]
    transposed = train(X, y, threads=1, sizes=(784, hidden, 10), clip_norm=1e30)
    monkeypatch.setattr(fastnn.layout, "TRANSPOSE_MIN_VECTORS", 10**6)
    assert np.array_equal(transposed, train(X, y, threads=1, sizes=(784, hidden, 10), clip_norm=1e30))


def test_fused_steps_stay_within_rounding_of_the_summed_gradient(mnist):
    """Without clipping, each weight row's sums take the rule's step as they leave the
    registers; clipping with a norm that never clips steps from the stored gradient instead.
    With a transposed batch the step takes each weight row's whole sum, so the two agree bit for
    bit, for every rule; example by example plain SGD takes each example's term in turn: the
    same math, other rounding (float32's)."""
    X, y = mnist.train_images[:1000], mnist.train_labels[:1000]
    wide = (784, TRANSPOSE_MIN_VECTORS * LANES + 3, 10)
    assert np.array_equal(train(X, y, threads=1, sizes=wide), train(X, y, threads=1, sizes=wide, clip_norm=1e30))
    for optimizer in (Adam(lr=0.01), SGD(lr=0.05, momentum=0.9, weight_decay=1e-3)):
        assert np.array_equal(train(X, y, threads=1, sizes=wide, optimizer=optimizer),
                              train(X, y, threads=1, sizes=wide, optimizer=optimizer, clip_norm=1e30))
    narrow = (784, 10, 10)
    fused, summed = train(X, y, threads=1, sizes=narrow), train(X, y, threads=1, sizes=narrow, clip_norm=1e30)
    assert not np.array_equal(fused, summed)
    np.testing.assert_allclose(fused, summed, rtol=0, atol=1e-5)
