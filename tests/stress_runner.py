"""Fits on several workers under whatever scheduling this process is given, each checked bit for
bit against one worker. tests/test_stress.py runs it in subprocesses with a hard time limit,
pinned to one CPU, beside a busy process, or with FASTNN_SYNC_JITTER=1 (random delays at every
synchronisation point), so that a hang fails a test instead of stalling it.

    python tests/stress_runner.py --cases quick --threads 2 3 [--repeat N]

Prints a line per fit and exits 1 if any differs from one worker or ran on one worker though
given more threads.
"""

import argparse
import sys

import numpy as np

# Every parallel path: each update rule, with and without clipping (two more barriers a batch),
# 1 and 20 kernel calls an epoch, ragged last batches, dropout, float64, a transposed batch (a
# first layer of 4 vectors or more), several hidden layers.
CASES = {
    "sgd": dict(sizes=(64, 10, 10), n=650, fit=dict(batch_size=64)),
    "sgd, 20 calls": dict(sizes=(64, 20, 10), n=1000, fit=dict(batch_size=32, blocks_per_epoch=20)),
    "momentum, dropout": dict(sizes=(64, 24, 10), n=700, dropout=0.2, fit=dict(batch_size=32, optimizer="momentum")),
    "nesterov, 20 calls": dict(sizes=(64, 16, 10), n=900, fit=dict(batch_size=48, optimizer="nesterov",
                                                                   blocks_per_epoch=20)),
    "adam": dict(sizes=(64, 32, 10), n=700, fit=dict(batch_size=64, optimizer="adam")),
    "adam, 20 calls": dict(sizes=(64, 20, 10), n=1300, fit=dict(batch_size=64, optimizer="adam",
                                                                blocks_per_epoch=20)),
    "rmsprop, 20 calls": dict(sizes=(64, 10, 10), n=1300, fit=dict(batch_size=64, optimizer="rmsprop",
                                                                   blocks_per_epoch=20)),
    "adam, clipping, float64": dict(sizes=(64, 12, 8, 10), n=700, dtype="float64",
                                    fit=dict(batch_size=64, optimizer="adam", clip_norm=0.5)),
    "sgd, transposed batch": dict(sizes=(64, 80, 10), n=500, fit=dict(batch_size=64)),
    "adamw, dropout, three layers": dict(sizes=(64, 40, 20, 10), n=600, dropout=0.1,
                                         fit=dict(batch_size=32, optimizer="adamw", blocks_per_epoch=3)),
    "adam, batch 128": dict(sizes=(64, 20, 10), n=1100, fit=dict(batch_size=128, optimizer="adam")),
    # 80 -> 80 sums its input gradient along W's rows (layers.dense_block_backward_input)
    "adam, wide hidden layers": dict(sizes=(64, 80, 80, 10), n=600, fit=dict(batch_size=64, optimizer="adam")),
    # batches of 4,500 are cut into chunks of 2,048 (plan CHUNKS): three a batch, two batches an epoch
    "adam, chunked batches": dict(sizes=(64, 20, 10), n=9000, fit=dict(batch_size=4500, optimizer="adam")),
    "sgd, chunked full batch, float64": dict(sizes=(64, 12, 8, 10), n=5000, dtype="float64",
                                             fit=dict(batch_size=5000)),
}
# Replicas (narrow first layers), shared weights (the transposed batch, wide hidden layers) and
# chunks (large batches), each update rule.
QUICK = ["sgd, 20 calls", "momentum, dropout", "adam, 20 calls", "rmsprop, 20 calls", "adam, clipping, float64",
         "sgd, transposed batch", "adam, wide hidden layers", "adam, chunked batches"]


def data(n: int, d: int):
    rng = np.random.default_rng(n)
    X = ((rng.random((n, d)) < 0.3) * rng.integers(1, 256, (n, d))).astype(np.uint8)
    return X, rng.integers(0, 10, n)


def train(case: dict, threads: int) -> tuple[np.ndarray, int]:
    import fastnn

    optimizers = {"momentum": fastnn.SGD(lr=0.05, momentum=0.9), "nesterov": fastnn.SGD(lr=0.05, momentum=0.9,
                                                                                          nesterov=True),
                  "adam": fastnn.Adam(lr=0.003), "adamw": fastnn.AdamW(lr=0.003), "rmsprop": fastnn.RMSprop(lr=0.001)}
    X, y = data(case["n"], case["sizes"][0])
    model = fastnn.MLP(list(case["sizes"]), seed=4, dtype=case.get("dtype", "float32"),
                       dropout=case.get("dropout", 0.0), pixels=True)  # uint8 pixels: the kernels' byte path
    options = dict(case["fit"], optimizer=optimizers.get(case["fit"].get("optimizer")), threads=threads)
    workers = model.fit(X, y, epochs=1, **options).workers
    model.fit(X, y, epochs=1, **options)  # continues the optimizer's state
    return model.get_params(), workers


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default="quick", help="quick, all, or names joined by ';'")
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    import fastnn.parallel

    fastnn.parallel.PARALLEL_MIN_WORK = 0  # every fit on its plan's workers, however small, untimed
    fastnn.parallel.PROBE = False
    names = {"quick": QUICK, "all": list(CASES)}.get(args.cases) or args.cases.split(";")
    failures = 0
    for _ in range(args.repeat):
        for name in names:
            expected, _ = train(CASES[name], 1)
            for threads in args.threads:
                got, workers = train(CASES[name], threads)
                same = np.array_equal(got, expected)
                failures += not (same and workers > 1)
                print(f"{name}: {workers} workers of {threads} threads, "
                      f"{'bit-identical to one' if same else 'DIFFERS from one'}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
