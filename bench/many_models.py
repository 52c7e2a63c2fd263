"""Many models at once: K tutorial networks (784-10-10, different seeds) for one epoch each,
trained one after another with MLP.fit, then together with fastnn.fit_many; prints the
throughput (models x epochs per second) of both, their ratio, and checks the weights agree.

    python -m bench.many_models [--models 32] [--epochs 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastnn
from fastnn.data.datasets import load_mnist


def one_after_another(X, y, k, epochs):
    models = [fastnn.MLP([784, 10, 10], seed=s) for s in range(k)]
    started = time.perf_counter()
    for model in models:
        model.fit(X, y, epochs=epochs, batch_size=64, lr=0.1)
    return time.perf_counter() - started, models


def all_at_once(X, y, k, epochs):
    models = [fastnn.MLP([784, 10, 10], seed=s) for s in range(k)]
    started = time.perf_counter()
    fastnn.fit_many(models, X, y, epochs=epochs, batch_size=64, lr=0.1)
    return time.perf_counter() - started, models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    mnist = load_mnist(download=False)
    X, y = mnist.train_images, mnist.train_labels
    one_after_another(X[:1000], y[:1000], 2, 1)  # load the kernels
    all_at_once(X[:1000], y[:1000], 2, 1)
    times = {"one after another": [], "fit_many": []}
    for _ in range(args.repeats):  # interleaved, so that both see the same machine
        seconds, singles = one_after_another(X, y, args.models, args.epochs)
        times["one after another"].append(seconds)
        seconds, together = all_at_once(X, y, args.models, args.epochs)
        times["fit_many"].append(seconds)
    same = all(np.array_equal(a.get_params(), b.get_params()) for a, b in zip(singles, together))
    work = args.models * args.epochs
    for name, seconds in times.items():
        median = float(np.median(seconds))
        print(f"{name:>18}: {median:7.3f} s median of {args.repeats}, {work / median:6.1f} models x epochs / s")
    ratio = np.median(times["one after another"]) / np.median(times["fit_many"])
    print(f"fit_many throughput / one after another: {ratio:.2f}x; weights identical: {same}")


if __name__ == "__main__":
    main()
