"""Peak memory (asv ``peakmem_``: the benchmark process's maximum resident set size).

The figure includes the interpreter, numpy, numba and whatever setup loaded, so compare it
across commits rather than reading it as the cost of the call alone.
"""

from __future__ import annotations

import fastnn

from .common import Benchmark, mnist, pixels, warm_jit


class LoadMNIST(Benchmark):
    """``fastnn.data.datasets.load_mnist`` of the four gzip IDX files (~55 MB of uint8 arrays)."""

    def setup(self):
        import fastnn.data.datasets  # noqa: F401  (import cost and memory stay out of the figure)

    def peakmem_load_mnist(self):
        from fastnn.data.datasets import load_mnist

        load_mnist(download=False)


class TrainMemory(Benchmark):
    """One epoch of 784-128-10 (He init, batch 64, lr 0.1) on all 60,000 training images."""

    timeout = 600.0

    def setup(self):
        warm_jit()
        data = mnist()
        self.X, self.y = data.train_images, data.train_labels

    def peakmem_fit_epoch_full_mnist(self):
        fastnn.MLP([784, 128, 10], init="he", seed=0, **pixels()).fit(self.X, self.y, epochs=1,
                                                                      batch_size=64, lr=0.1)
