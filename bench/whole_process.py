"""Whole-process wall time of one training job: start Python, import, load MNIST, train one
784-10-10 epoch (batch 64, lr 0.1), print the test accuracy, exit.

    python -m bench.whole_process [--runs 5] [--cold]

Runs, each as a fresh process, timed from outside (median of --runs):
  fastnn   `fastnn train --epochs 1 -q` (the command line: warm JIT cache; --cold: an empty
           NUMBA_CACHE_DIR each run, so every kernel compiles)
  numpy    a plain NumPy script with the same minibatch loop
  torch    the same in PyTorch eager (skipped when torch is not installed)
Prints the medians and fastnn's ratios to them; the issue's targets: at most 1.5x the NumPy
script's time with a warm cache, at most the PyTorch script's with a cold one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# The peers load MNIST with bench.compare's reader (NumPy and gzip only), not with fastnn.
LOAD = """
import os, sys
sys.path.insert(0, {root!r})
from bench.compare import read_mnist
Xtr, ytr, Xte, yte = read_mnist(os.path.join(os.environ.get("FASTNN_DATA", "../shared/data"), "mnist"))
"""

NUMPY = LOAD + """
import numpy as np
rng = np.random.default_rng(0)
X, Xt = Xtr.astype(np.float32) / 255, Xte.astype(np.float32) / 255
W1, b1 = rng.uniform(-.5, .5, (784, 10)).astype(np.float32), rng.uniform(-.5, .5, 10).astype(np.float32)
W2, b2 = rng.uniform(-.5, .5, (10, 10)).astype(np.float32), rng.uniform(-.5, .5, 10).astype(np.float32)
order = rng.permutation(len(ytr))
for s in range(0, len(order), 64):
    i = order[s:s + 64]
    x, y = X[i], ytr[i]
    h = np.maximum(x @ W1 + b1, 0)
    z = h @ W2 + b2
    p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    p[np.arange(len(i)), y] -= 1; p /= len(i)
    dh = (p @ W2.T) * (h > 0)
    W2 -= 0.1 * h.T @ p; b2 -= 0.1 * p.sum(0); W1 -= 0.1 * x.T @ dh; b1 -= 0.1 * dh.sum(0)
print("test accuracy", ((np.maximum(Xt @ W1 + b1, 0) @ W2 + b2).argmax(1) == yte).mean())
"""

TORCH = LOAD + """
import torch
torch.manual_seed(0)
X, Xt = torch.from_numpy(Xtr).float() / 255, torch.from_numpy(Xte).float() / 255
y = torch.from_numpy(ytr).long()
net = torch.nn.Sequential(torch.nn.Linear(784, 10), torch.nn.ReLU(), torch.nn.Linear(10, 10))
opt = torch.optim.SGD(net.parameters(), lr=0.1)
for i in torch.randperm(len(y)).split(64):
    opt.zero_grad(); torch.nn.functional.cross_entropy(net(X[i]), y[i]).backward(); opt.step()
print("test accuracy", (net(Xt).argmax(1).numpy() == yte).mean())
"""


def timed(command: list[str], env: dict, runs: int, fresh_cache: bool) -> list[float]:
    seconds = []
    for _ in range(runs):
        cache = tempfile.mkdtemp(prefix="fastnn-cold-") if fresh_cache else None
        run_env = dict(env, NUMBA_CACHE_DIR=cache) if cache else env
        started = time.perf_counter()
        done = subprocess.run(command, env=run_env, capture_output=True, text=True)
        seconds.append(time.perf_counter() - started)
        if cache:
            shutil.rmtree(cache, ignore_errors=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command[:3])} failed:\n{done.stderr[-2000:]}")
    return seconds


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.whole_process", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--cold", action="store_true", help="fastnn with an empty JIT cache each run")
    args = p.parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    jobs = {"fastnn": [sys.executable, "-m", "fastnn.cli", "train", "--epochs", "1", "-q"],
            "numpy": [sys.executable, "-c", NUMPY.format(root=root)]}
    try:
        import importlib.util
        if importlib.util.find_spec("torch") is not None:
            jobs["torch"] = [sys.executable, "-c", TORCH.format(root=root)]
    except (ImportError, ValueError):
        pass
    if not args.cold:
        timed(jobs["fastnn"], env, 1, False)  # fills the JIT cache if it is empty
    medians = {}
    for name, command in jobs.items():
        seconds = timed(command, env, args.runs, args.cold and name == "fastnn")
        medians[name] = statistics.median(seconds)
        print(f"{name:7s} median {medians[name]:6.2f} s   runs: " + " ".join(f"{s:.2f}" for s in seconds), flush=True)
    cache = "cold JIT cache" if args.cold else "warm JIT cache"
    for name in medians:
        if name != "fastnn":
            print(f"fastnn ({cache}) / {name}: {medians['fastnn'] / medians[name]:.2f}x the time")


if __name__ == "__main__":
    main()
