"""Same seed, same data: bit-identical weights, on every run and for any number of threads."""

import numpy as np
import pytest

from fastnn import MLP


def train(X, y, threads, seed=0, sizes=(784, 32, 10)):
    model = MLP(list(sizes), seed=seed)
    model.fit(X, y, epochs=2, batch_size=64, lr=0.1, threads=threads)
    return model.get_params()


def test_same_seed_same_weights(mnist):
    X, y = mnist.train_images[:5000], mnist.train_labels[:5000]
    assert np.array_equal(train(X, y, threads=2), train(X, y, threads=2))


def test_different_seeds_differ(mnist):
    X, y = mnist.train_images[:2000], mnist.train_labels[:2000]
    assert not np.array_equal(train(X, y, threads=1, seed=0), train(X, y, threads=1, seed=1))


def test_one_and_two_threads_agree_bit_for_bit(mnist, force_parallel):
    X, y = mnist.train_images[:5000], mnist.train_labels[:5000]
    serial = train(X, y, threads=1)
    assert np.array_equal(serial, train(X, y, threads=2))
    wide = train(X, y, threads=1, sizes=(784, 200, 10))
    assert np.array_equal(wide, train(X, y, threads=2, sizes=(784, 200, 10)))


def test_two_workers_with_clipping_agree_with_one_on_every_run(force_parallel):
    """With clipping, each worker sums the whole gradient's squares, then the workers update (and
    clear) its rows. A worker that started updating while another was still summing changed the
    other's norm: 4 to 16 runs in 300 differed from one thread, by up to 0.05. Many short runs,
    so that a race shows up."""
    import fastnn

    rng = np.random.default_rng(26)
    X = ((rng.random((160, 64)) < 0.3) * rng.integers(1, 256, (160, 64))).astype(np.uint8)
    y = rng.integers(0, 10, 160)

    def run(threads):
        model = MLP([64, 24, 12, 10], init="he", seed=27, dtype="float64")
        model.fit(X, y, epochs=2, batch_size=16, optimizer=fastnn.Adam(lr=0.01), shuffle=False, clip_norm=0.3,
                  threads=threads)
        return model.get_params()

    serial = run(1)
    differing = sum(not np.array_equal(run(2), serial) for _ in range(200))
    assert differing == 0, f"{differing} of 200 two-worker runs differ from one worker"


@pytest.mark.parametrize("hidden", [40, 56, 72, 200], ids=lambda h: f"784-{h}-10")
def test_transposed_batch_gives_the_per_example_gradient_bit_for_bit(mnist, monkeypatch, hidden):
    """Wide first layers sum their gradient over the batch grouped by input unit: the same
    additions in the same order as example by example (tiles of 4+1, 4+2+1, 8+1, 8+8+8+1 vectors)."""
    import fastnn.layout

    X, y = mnist.train_images[:1000], mnist.train_labels[:1000]
    transposed = train(X, y, threads=1, sizes=(784, hidden, 10))
    monkeypatch.setattr(fastnn.layout, "TRANSPOSE_MIN_VECTORS", 10**6)
    assert np.array_equal(transposed, train(X, y, threads=1, sizes=(784, hidden, 10)))
