"""How soon fastnn reaches the tutorial's result: 85.5% accuracy on its 1,000-example dev set.

    python -m bench.time_to_accuracy [--seeds 5] [--check-every 10] [--threads 1]
                                     [--init uniform] [--lr 0.1] [--batch-size 64]

The tutorial (../shared/docs/seed.md) shuffles Kaggle's train.csv, keeps the first 1,000 rows
as its dev set and trains 784-10-10 on the other 41,000 with 500 iterations of full-batch
gradient descent; that run took 14 to 23 s here (median 18 s) to reach 85.5% dev accuracy.

fastnn trains the same network on the same split with minibatch SGD (by default batch 64, the
tutorial's initialisation and learning rate), its inputs prepared once (outside the timing), and checks the dev accuracy every ``check-every``
batches; it stops at the first check that reaches 85.5%. Each seed is timed once after a
warm-up run (the JIT cache is loaded, nothing compiles in the timing). Printed per seed: the
batches trained, the wall time of the whole fit (training and the dev checks), and the ratio
of the tutorial's 18 s to it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

import fastnn
from fastnn.data.datasets import read_csv

TUTORIAL_SECONDS = 18.0  # the tutorial's full-batch NumPy run, median, measured on this machine
TARGET = 0.855


def run(X, y, dev_X, dev_y, seed: int, args) -> tuple[int, float, float]:
    """Train until the dev accuracy reaches TARGET; returns (batches, seconds, dev accuracy)."""
    model = fastnn.MLP([784, 10, 10], seed=seed, init=args.init, pixels=True)  # the tutorial's X / 255
    n_batches = -(-len(y) // args.batch_size)
    reached = {}

    def check(epoch: int, batches_done: int, total: int) -> bool:
        accuracy = model.evaluate(dev_X, dev_y)["accuracy"]
        if accuracy >= TARGET:
            reached.update(batches=epoch * n_batches + batches_done, accuracy=accuracy)
        return bool(reached)

    started = time.perf_counter()
    model.fit(X, y, epochs=10, batch_size=args.batch_size, lr=args.lr, threads=args.threads, on_block=check,
              blocks_per_epoch=-(-n_batches // args.check_every))
    seconds = time.perf_counter() - started
    if not reached:
        raise SystemExit(f"seed {seed}: {TARGET:.1%} dev accuracy not reached in 10 epochs")
    return reached["batches"], seconds, reached["accuracy"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.time_to_accuracy", description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1, each its own shuffle and weights")
    p.add_argument("--check-every", type=int, default=10, help="batches between dev-accuracy checks")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--init", default="uniform", help="uniform (the tutorial's), he or glorot")
    p.add_argument("--lr", type=float, default=0.1, help="the tutorial's alpha, 0.1")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--data", type=Path, default=Path(os.environ.get("FASTNN_DATA", "../shared/data")),
                   help="folder with digit-recognizer/train.csv.gz (default: $FASTNN_DATA)")
    args = p.parse_args(argv)
    X, y = read_csv(args.data / "digit-recognizer" / "train.csv.gz")
    results = []
    for seed in range(args.seeds):
        order = np.random.default_rng(seed).permutation(len(y))  # the tutorial's split, as `fastnn train --tutorial`
        dev, train = order[:1000], order[1000:]
        train_X, dev_X = fastnn.prepare(X[train]), fastnn.prepare(X[dev])
        run(train_X, y[train], dev_X, y[dev], seed, args)  # warm-up
        batches, seconds, accuracy = run(train_X, y[train], dev_X, y[dev], seed, args)
        results.append(seconds)
        print(f"seed {seed}: dev accuracy {accuracy:.3f} after {batches} batches ({batches * args.batch_size:,} examples): "
              f"{1000 * seconds:.1f} ms, {TUTORIAL_SECONDS / seconds:,.0f}x sooner than the tutorial's {TUTORIAL_SECONDS:.0f} s")
    median = statistics.median(results)
    print(f"median over {len(results)} seeds: {1000 * median:.1f} ms, {TUTORIAL_SECONDS / median:,.0f}x sooner "
          f"(target: 1,000x, {1000 * TUTORIAL_SECONDS / 1000:.0f} ms)")


if __name__ == "__main__":
    main()
