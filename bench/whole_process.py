"""Whole-process wall time of one training job: start Python, import, load MNIST, train one
784-10-10 epoch (batch 64, lr 0.1), print the test accuracy, exit.

    python -m bench.whole_process [--runs 5] [--cold]

Runs, each as a fresh process, timed from outside; each round runs every job once, in turn, and
the table gives the medians over rounds and fastnn's median ratio to each peer within a round:
  fastnn           `fastnn train --epochs 1 -q`: the native library where `fastnn build` made one
  fastnn JIT       the same with FASTNN_NATIVE=0: Numba's JIT, warm cache
  fastnn cold      (--cold) the same with an empty NUMBA_CACHE_DIR each run: every kernel compiles
  fastnn cold lib  (--cold) the native library, with an empty NUMBA_CACHE_DIR: nothing compiles
  numpy            a plain NumPy script with the same minibatch loop
  torch, jax       the same in PyTorch eager and in JAX (a jitted lax.scan epoch), where installed
The issue's targets: at most 1.5x the NumPy script, a fifth of PyTorch's and a third of JAX's
time with a warm cache; with a cold one, at most the PyTorch script's.
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


JAX = LOAD + """
import jax, jax.numpy as jnp
X, Xt, Y = jnp.asarray(Xtr, jnp.float32) / 255, jnp.asarray(Xte, jnp.float32) / 255, jnp.asarray(ytr, jnp.int32)
k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
params = (jax.random.uniform(k1, (784, 10), minval=-.5, maxval=.5), jnp.zeros(10),
          jax.random.uniform(k2, (10, 10), minval=-.5, maxval=.5), jnp.zeros(10))
def loss(p, x, y):
    z = jnp.maximum(x @ p[0] + p[1], 0) @ p[2] + p[3]
    return -jnp.mean(jax.nn.log_softmax(z)[jnp.arange(y.shape[0]), y])
@jax.jit
def epoch(p, batches):  # one compiled epoch: lax.scan over the batches
    def step(p, i):
        return tuple(w - 0.1 * g for w, g in zip(p, jax.grad(loss)(p, X[i], Y[i]))), None
    return jax.lax.scan(step, p, batches)[0]
params = epoch(params, jax.random.permutation(k3, len(ytr))[:len(ytr) // 64 * 64].reshape(-1, 64))
z = jnp.maximum(Xt @ params[0] + params[1], 0) @ params[2] + params[3]
print("test accuracy", float((z.argmax(1) == yte).mean()))
"""


def timed(command: list[str], env: dict, fresh_cache: bool) -> float:
    """Seconds of one run of ``command`` as a new process."""
    cache = tempfile.mkdtemp(prefix="fastnn-cold-") if fresh_cache else None
    run_env = dict(env, NUMBA_CACHE_DIR=cache) if cache else env
    started = time.perf_counter()
    done = subprocess.run(command, env=run_env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if cache:
        shutil.rmtree(cache, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{done.stderr[-2000:]}")
    return seconds


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.whole_process", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--cold", action="store_true", help="also fastnn with an empty JIT cache each run")
    args = p.parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    from fastnn.native import loader as native

    print(f"fastnn kernels: {native.status()}")
    env = dict(os.environ)
    cli = [sys.executable, "-m", "fastnn.cli", "train", "--epochs", "1", "-q"]
    # (command, environment, fresh JIT cache each run)
    jobs = {"fastnn": (cli, env, False), "fastnn JIT": (cli, dict(env, FASTNN_NATIVE="0"), False)}
    if args.cold:
        jobs["fastnn cold"] = (cli, dict(env, FASTNN_NATIVE="0"), True)
        jobs["fastnn cold lib"] = (cli, env, True)
    jobs["numpy"] = ([sys.executable, "-c", NUMPY.format(root=root)], env, False)
    import importlib.util
    for name, script in (("torch", TORCH), ("jax", JAX)):
        if importlib.util.find_spec(name) is not None:
            jobs[name] = ([sys.executable, "-c", script.format(root=root)], env, False)
    timed(cli, jobs["fastnn JIT"][1], False)  # fills the JIT cache if it is empty
    seconds: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(args.runs):
        for name, (command, job_env, fresh) in jobs.items():
            seconds[name].append(timed(command, job_env, fresh))
    for name, times in seconds.items():
        print(f"{name:16s} median {statistics.median(times):6.2f} s   runs: " + " ".join(f"{t:.2f}" for t in times))
    for mine in [m for m in seconds if m.startswith("fastnn")]:
        for name in [n for n in seconds if not n.startswith("fastnn")]:
            ratio = statistics.median(a / b for a, b in zip(seconds[mine], seconds[name]))
            print(f"{mine} / {name}: {ratio:.2f}x the time (median of per-round ratios)")


if __name__ == "__main__":
    main()
