"""Same seed, same data: bit-identical weights, on every run and for any number of threads."""

import numpy as np

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
    assert np.array_equal(serial, train(X, y, threads=2, sizes=(784, 32, 10)))
