"""Paired A/B timing of two checkouts of fastnn, for a machine too noisy for separate runs.

    python -m bench.ab DIR_A DIR_B [--hidden 10] [--threads 1 [THREADS_B]] [--rounds 12]
    python -m bench.ab . . --hidden 20 --threads 1 2 --no-probe   # the plan's two workers against one
    python -m bench.ab . . --hidden 128 --threads 1 2 --optimizer adam   # two workers against one, Adam
    python -m bench.ab . . --native 0 1   # the JIT kernels against the native library's
    python -m bench.ab A B --whole   # whole fit(epochs=1) calls, setup included, as bench.compare
    python -m bench.ab A B --layers 784,256,128,10 --optimizer adam   # any network
    python -m bench.ab A B --layers 784,1024,1024,10 --init he --batch 128   # as bench.compare's table

Two warm processes, one per checkout (each with its own Numba cache in DIR/.numba_cache/ab),
take turns: each round, both train 784-H-10 (or --layers) on MNIST for two epochs (batch 64 or
--batch, fastnn's default init or --init he, shuffled), in alternating order. Rounds next to
each other see the same machine, so the median of the per-epoch ratios B/A says more than two
medians taken minutes apart (this VM's epoch times move by a third between runs; the ratio of
pairs stays within a few percent).
"""

import argparse
import os
import subprocess
import sys

import numpy as np


def worker(sizes: list[int], threads: int, min_work: int | None, no_probe: bool, optimizer: str, whole: bool,
           batch: int, init: str) -> None:
    """Warm up, then train for two epochs per line read from stdin; print their seconds (with
    ``whole``, of two fit(epochs=1) calls from start to end, as bench.compare times them)."""
    import importlib
    import inspect
    import time

    import fastnn

    for name in ("fastnn.parallel", "fastnn.training"):  # where the checkout keeps its plan's settings
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if min_work is not None and hasattr(module, "PARALLEL_MIN_WORK"):
            module.PARALLEL_MIN_WORK = min_work
        if no_probe and hasattr(module, "PROBE"):
            module.PROBE = False
    try:
        from fastnn.data.datasets import load_mnist
    except ImportError:  # a checkout from before fastnn/data/
        from fastnn.datasets import load_mnist

    mnist = load_mnist(os.path.join(os.environ.get("FASTNN_DATA", "../shared/data"), "mnist"))
    X = fastnn.prepare(mnist.train_images)

    # 0..255 pixels as X / 255 in either checkout: since MLP's pixels=False default that takes
    # pixels=True; checkouts from before it read uint8 input as pixels.
    pixels = {"pixels": True} if "pixels" in inspect.signature(fastnn.MLP).parameters else {}

    def epochs() -> list[float]:
        inits = {"init": init} if init != "uniform" else {}  # checkouts from before init= take none
        model = fastnn.MLP(sizes, seed=0, **pixels, **inits)
        options = dict(batch_size=batch, threads=threads,
                       optimizer=fastnn.Adam(lr=0.001) if optimizer == "adam" else fastnn.SGD(lr=0.1))
        if not whole:
            return model.fit(X, mnist.train_labels, epochs=2, **options).seconds
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            model.fit(X, mnist.train_labels, epochs=1, **options)
            seconds.append(time.perf_counter() - start)
        return seconds

    epochs()
    print("ready", flush=True)
    for _ in sys.stdin:
        print(" ".join(f"{s:.6f}" for s in epochs()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs=2, metavar="DIR", help="checkouts A and B of the repository")
    parser.add_argument("--hidden", type=int, default=10)
    parser.add_argument("--layers", help="the whole network instead of 784-H-10, e.g. 784,256,128,10")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], metavar="N",
                        help="threads of A's fits, then of B's (default: the same as A's)")
    parser.add_argument("--min-work", type=int, help="fastnn.parallel.PARALLEL_MIN_WORK for both (0: every "
                        "batch on all threads' workers, however small)")
    parser.add_argument("--no-probe", action="store_true", help="run the plan's workers without timing them "
                        "against one (fastnn.parallel.PROBE = False) in both")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                        help="SGD (lr 0.1) or Adam (lr 0.001) for both")
    parser.add_argument("--native", nargs=2, choices=("0", "1"), default=("1", "1"), metavar="0|1",
                        help="FASTNN_NATIVE of A's process, then of B's (default: 1 1, the native library "
                        "where it is built)")
    parser.add_argument("--whole", action="store_true", help="time whole fit(epochs=1) calls, as bench.compare "
                        "does, rather than the training loop alone (History.seconds)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--init", choices=("uniform", "he"), default="uniform",
                        help="the models' initial weights: fastnn's default, or He's (as bench.compare gives wide "
                        "networks; their ReLU layers keep about half their outputs non-zero)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    layers = args.layers or f"784,{args.hidden},10"
    if args.worker:
        return worker([int(size) for size in layers.split(",")], args.threads[0], args.min_work, args.no_probe,
                      args.optimizer, args.whole, args.batch, args.init)
    threads = (args.threads + args.threads)[:2]
    procs = []
    for name, d, t, native in zip("AB", args.dirs, threads, args.native):
        d = os.path.abspath(d)
        if not os.path.isdir(os.path.join(d, "fastnn")):
            sys.exit(f"error: {d} is not a checkout of fastnn (no fastnn/ folder)")
        # This file runs in both workers; each imports fastnn from its own checkout.
        env = {**os.environ, "PYTHONPATH": d, "NUMBA_CACHE_DIR": os.path.join(d, ".numba_cache", "ab"),
               "FASTNN_NATIVE": native}
        procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", *args.dirs,
                                       "--layers", layers, "--threads", str(t),
                                       *(["--min-work", str(args.min_work)] if args.min_work is not None else []),
                                       "--optimizer", args.optimizer, "--batch", str(args.batch), "--init", args.init,
                                       *(["--no-probe"] if args.no_probe else []),
                                       *(["--whole"] if args.whole else [])],
                                      cwd=d, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            sys.exit("error: a worker failed to start (its error is above)")
    seconds: list[list[float]] = [[], []]
    for r in range(args.rounds):
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
            procs[i].stdin.write("go\n")
            procs[i].stdin.flush()
            seconds[i] += [float(s) for s in procs[i].stdout.readline().split()]
    for p in procs:
        p.stdin.close()
        p.wait()
    a, b = np.array(seconds[0]), np.array(seconds[1])
    print(f"{layers.replace(',', '-')}, {args.optimizer}, batch {args.batch}, {args.init} init, {a.size} epochs each, "
          "seconds per epoch")
    for name, d, n, native, t in zip("AB", args.dirs, threads, args.native, (a, b)):
        print(f"  {name} {d}, {n} thread(s), FASTNN_NATIVE={native}: median {np.median(t):.4f}, "
              f"fastest {t.min():.4f}")
    print(f"  B/A, median of paired epochs: {np.median(b / a):.3f}")


if __name__ == "__main__":
    main()
