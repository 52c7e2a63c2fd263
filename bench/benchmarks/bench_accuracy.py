"""Quality guards: test-set accuracy and loss after one epoch on the full MNIST training set.

Training is seeded and bit-identical whatever the thread count, so these figures change only
when the numerics change: a change that makes training faster but wrong shows up here.
"""

from __future__ import annotations

import fastnn

from .common import Benchmark, mnist, pixels, warm_jit

# name -> (MLP sizes, init); both train 1 epoch, batch 64, lr 0.1, seed 0, ReLU.
NETWORKS = {
    "784-10-10/uniform": ([784, 10, 10], "uniform"),  # the tutorial's network and init
    "784-128-10/he": ([784, 128, 10], "he"),
}


class OneEpochAccuracy(Benchmark):
    """Test accuracy/loss (10,000 images) after one epoch on the 60,000 training images."""

    params = [list(NETWORKS)]
    param_names = ["network"]
    timeout = 600.0

    def setup_cache(self):
        # Trains each network once (not once per track_ method and parameter).
        warm_jit()
        data = mnist()
        results = {}
        for name, (sizes, init) in NETWORKS.items():
            model = fastnn.MLP(sizes, init=init, seed=0, **pixels())
            model.fit(data.train_images, data.train_labels, epochs=1, batch_size=64, lr=0.1)
            results[name] = model.evaluate(data.test_images, data.test_labels)
        return results

    def track_test_accuracy(self, results, network):
        return results[network]["accuracy"]

    track_test_accuracy.unit = "accuracy"

    def track_test_loss(self, results, network):
        return results[network]["loss"]

    track_test_loss.unit = "cross-entropy"
