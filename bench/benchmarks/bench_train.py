"""Training speed: one epoch of minibatch SGD through the public ``MLP.fit``."""

from __future__ import annotations

import fastnn

from .common import N_TRAIN_SUBSET, Benchmark, mnist, pixels, warm_jit


class TrainEpoch(Benchmark):
    """One epoch of ``fit`` for 784-H-10 (ReLU, He init, lr 0.1, default threads).

    Trained on the first N_TRAIN_SUBSET (1,000) MNIST training images, not all 60,000: the
    full grid would take minutes per case (width 2048 with batch 1 is the slowest: several
    seconds even on 1,000 images). Epoch time is linear in the number of images, so
    multiply by 60 for a full-MNIST estimate. A fresh model is built for every sample;
    the kernels are loaded from Numba's cache (or compiled) in setup, never in the timing.
    """

    params = [[10, 128, 512, 2048], [1, 32, 64, 256]]
    param_names = ["hidden", "batch_size"]

    def setup(self, hidden, batch_size):
        warm_jit()
        data = mnist()
        self.X = data.train_images[:N_TRAIN_SUBSET]
        self.y = data.train_labels[:N_TRAIN_SUBSET]
        self.model = fastnn.MLP([784, hidden, 10], init="he", seed=0, **pixels())

    def time_fit_epoch(self, hidden, batch_size):
        self.model.fit(self.X, self.y, epochs=1, batch_size=batch_size, lr=0.1)


class TrainEpochThreads(Benchmark):
    """One epoch of ``fit`` (first 1,000 images) with the thread count forced to 1 or 2.

    ``fit`` runs several workers when threads > 1 and a batch has enough work; this shows
    whether that choice pays off, including for batch size 1 at large widths.
    """

    params = [[512, 2048], [1, 64], [1, 2]]
    param_names = ["hidden", "batch_size", "threads"]

    def setup(self, hidden, batch_size, threads):
        warm_jit()
        data = mnist()
        self.X = data.train_images[:N_TRAIN_SUBSET]
        self.y = data.train_labels[:N_TRAIN_SUBSET]
        self.model = fastnn.MLP([784, hidden, 10], init="he", seed=0, **pixels())

    def time_fit_epoch(self, hidden, batch_size, threads):
        self.model.fit(self.X, self.y, epochs=1, batch_size=batch_size, lr=0.1, threads=threads)


class FullEpochThreads(Benchmark):
    """One epoch of ``fit`` on all 60,000 training images (prepared once), 1 or 2 threads, SGD
    and Adam: where fastnn.parallel decides to run one worker, two threads
    must cost what one does; where it runs two, they must keep their gain."""

    params = [[10, 32, 128, 512], ["sgd", "adam"], [1, 2]]
    param_names = ["hidden", "optimizer", "threads"]

    def setup(self, hidden, optimizer, threads):
        warm_jit()
        data = mnist()
        self.X = fastnn.prepare(data.train_images)
        self.y = data.train_labels
        self.model = fastnn.MLP([784, hidden, 10], seed=0, **pixels())
        self.optimizer = fastnn.Adam(lr=0.001) if optimizer == "adam" else fastnn.SGD(lr=0.1)

    def time_fit_epoch(self, hidden, optimizer, threads):
        self.model.fit(self.X, self.y, epochs=1, batch_size=64, optimizer=self.optimizer, threads=threads)


class DeepEpoch(Benchmark):
    """One epoch of ``fit`` on all 60,000 training images (prepared once), 2 threads, for deeper
    and wider networks, SGD and Adam: the dense hidden-to-hidden products
    (layers.dense_block_forward and dense_block_backward_input) and the optimizer's update of
    every weight. Batch 128 at 1024-1024, as the comparison with JAX (bench.compare) runs it."""

    params = [["784-256-128-10", "784-1024-1024-10"], ["sgd", "adam"]]
    param_names = ["network", "optimizer"]
    timeout = 300

    def setup(self, network, optimizer):
        warm_jit()
        data = mnist()
        self.X = fastnn.prepare(data.train_images)
        self.y = data.train_labels
        self.model = fastnn.MLP([int(n) for n in network.split("-")], init="he", seed=0, **pixels())
        self.optimizer = fastnn.Adam(lr=0.001) if optimizer == "adam" else fastnn.SGD(lr=0.1)
        self.batch_size = 128 if "1024" in network else 64

    def time_fit_epoch(self, network, optimizer):
        self.model.fit(self.X, self.y, epochs=1, batch_size=self.batch_size, optimizer=self.optimizer, threads=2)


class FullBatchIteration(Benchmark):
    """Ten iterations of the tutorial's full-batch gradient descent (784-10-10, alpha 0.10, float64,
    the first 41,000 MNIST training images as one batch, shuffle off): the large-batch way of
    sharing a batch (plan CHUNKS, kernels/train.py chunked_batch), with one and two threads."""

    params = [[1, 2]]
    param_names = ["threads"]

    def setup(self, threads):
        warm_jit()
        data = mnist()
        self.X = fastnn.prepare(data.train_images[:41_000])
        self.y = data.train_labels[:41_000]
        self.model = fastnn.MLP([784, 10, 10], seed=0, dtype="float64", **pixels())

    def time_ten_iterations(self, threads):
        self.model.fit(self.X, self.y, epochs=10, batch_size=41_000, lr=0.1, shuffle=False, threads=threads)
