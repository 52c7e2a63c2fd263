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


@pytest.mark.parametrize("hidden", [40, 56, 72, 200], ids=lambda h: f"784-{h}-10")
def test_transposed_batch_gives_the_per_example_gradient_bit_for_bit(mnist, monkeypatch, hidden):
    """Wide first layers sum their gradient over the batch grouped by input unit: the same
    additions in the same order as example by example (tiles of 4+1, 4+2+1, 8+1, 8+8+8+1 vectors)."""
    import fastnn.layout

    X, y = mnist.train_images[:1000], mnist.train_labels[:1000]
    transposed = train(X, y, threads=1, sizes=(784, hidden, 10))
    monkeypatch.setattr(fastnn.layout, "TRANSPOSE_MIN_VECTORS", 10**6)
    assert np.array_equal(transposed, train(X, y, threads=1, sizes=(784, hidden, 10)))
