"""Inference throughput: class probabilities for the 10,000 MNIST test images."""

from __future__ import annotations

import fastnn

from .common import Benchmark, mnist, pixels, warm_jit


class PredictProba(Benchmark):
    """``predict_proba`` on all 10,000 test images, 784-H-10 (untrained, He init, seed 0).

    Throughput in images per second is 10,000 divided by the time.
    """

    params = [[10, 128, 512]]
    param_names = ["hidden"]

    def setup(self, hidden):
        warm_jit()
        self.X = mnist().test_images
        self.model = fastnn.MLP([784, hidden, 10], init="he", seed=0, **pixels())

    def time_predict_proba(self, hidden):
        self.model.predict_proba(self.X)
