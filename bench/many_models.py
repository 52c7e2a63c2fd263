"""Many models at once: K networks of one shape (different seeds) trained for an epoch each,
one after another with MLP.fit, then together with fastnn.fit_many, and (with --jax) as one
jit-compiled jax.vmap over the K models' epochs; prints each one's throughput (models x epochs
per second), the ratios, and checks that fit_many's weights equal the single fits'.

    python -m bench.many_models [--models 32] [--layers 784,10,10] [--optimizer sgd] [--repeats 3] [--jax]
    python -m bench.many_models --models 8 --layers 784,128,10 --optimizer adam --jax

SGD lr 0.1 or Adam lr 0.001 (betas 0.9, 0.999, eps 1e-8), batch 64, float32, MNIST's 60,000
training images, prepared once for fastnn (as JAX's arrays are put on its device once). Each
JAX model draws its own shuffle order, as fastnn's do.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

BATCH = 64


def optimizer(name: str):
    import fastnn

    return fastnn.Adam(lr=0.001) if name == "adam" else fastnn.SGD(lr=0.1)


def one_after_another(X, y, layers, k, name):
    import fastnn

    models = [fastnn.MLP(layers, seed=s, init="he", pixels=True) for s in range(k)]  # MNIST pixels
    started = time.perf_counter()
    for model in models:
        model.fit(X, y, epochs=1, batch_size=BATCH, optimizer=optimizer(name))
    return time.perf_counter() - started, models


def all_at_once(X, y, layers, k, name):
    import fastnn

    models = [fastnn.MLP(layers, seed=s, init="he", pixels=True) for s in range(k)]  # MNIST pixels
    started = time.perf_counter()
    fastnn.fit_many(models, X, y, epochs=1, batch_size=BATCH, optimizers=optimizer(name))
    return time.perf_counter() - started, models


def jax_vmap_epoch(X, y, layers, k, name):
    """A function that trains the K models for one epoch per call (jax.vmap of a lax.scan over
    each model's batches, jit-compiled), and returns their test-free state."""
    import jax
    import jax.numpy as jnp

    from bench.peers import ADAM_BETAS, ADAM_EPS

    n = len(y) - len(y) % BATCH  # whole batches: every model the same number of steps
    lr = 0.001 if name == "adam" else 0.1
    (beta1, beta2), eps = ADAM_BETAS, ADAM_EPS

    def loss(params, x, labels):
        for w, b in params[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = params[-1]
        logp = jax.nn.log_softmax(x @ w + b)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))

    def step(state, idx):
        params, m, v, count = state
        grads = jax.grad(loss)(params, x_all[idx], y_all[idx])
        if name != "adam":
            return (jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), m, v, count), None
        count = count + 1
        k_ = count.astype(jnp.float32)
        m = jax.tree_util.tree_map(lambda m, g: beta1 * m + (1 - beta1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda v, g: beta2 * v + (1 - beta2) * g * g, v, grads)
        size, root = lr / (1 - beta1 ** k_), jnp.sqrt(1 - beta2 ** k_)
        params = jax.tree_util.tree_map(lambda p, m, v: p - size * m / (jnp.sqrt(v) / root + eps), params, m, v)
        return (params, m, v, count), None

    def epoch(state, key):
        order = jax.random.permutation(key, len(y))[:n].reshape(-1, BATCH)
        return jax.lax.scan(step, state, order)[0]

    x_all, y_all = jnp.asarray(X.astype(np.float32) / 255), jnp.asarray(y.astype(np.int32))
    rng = np.random.default_rng(0)
    params = []
    for _ in range(k):
        model = []
        for fan_in, fan_out in zip(layers[:-1], layers[1:]):
            limit = np.sqrt(6 / fan_in)
            model.append((rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32),
                          np.zeros(fan_out, np.float32)))
        params.append(model)
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *params)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, stacked)
    state = [(stacked, zeros, zeros, jnp.zeros(k, jnp.int32))]
    run = jax.jit(jax.vmap(epoch))
    keys = iter(jax.random.split(jax.random.PRNGKey(0), 1000))

    def train():
        state[0] = run(state[0], jax.random.split(next(keys), k))
        jax.block_until_ready(state[0])

    return train


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=32)
    parser.add_argument("--layers", default="784,10,10")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="for fastnn and XLA")
    parser.add_argument("--jax", action="store_true", help="also time jax.vmap over the models")
    args = parser.parse_args(argv)
    os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen=true "
                                       f"intra_op_parallelism_threads={args.threads}")
    import fastnn
    from fastnn.data.datasets import load_mnist

    layers = [int(n) for n in args.layers.split(",")]
    mnist = load_mnist(os.path.join(os.environ.get("FASTNN_DATA", "../shared/data"), "mnist"))
    X, y = mnist.train_images, mnist.train_labels
    prepared = fastnn.prepare(X)
    k, name = args.models, args.optimizer
    one_after_another(prepared, y, layers, 2, name)  # load the kernels
    all_at_once(prepared, y, layers, 2, name)
    runs = {"one after another": lambda: one_after_another(prepared, y, layers, k, name),
            "fit_many": lambda: all_at_once(prepared, y, layers, k, name)}
    if args.jax:
        train = jax_vmap_epoch(X, y, layers, k, name)
        train()  # compiles
        runs["jax.vmap"] = lambda: (seconds_of(train), None)
    times = {label: [] for label in runs}
    results = {}
    for _ in range(args.repeats):  # interleaved, so that all see the same machine
        for label, run in runs.items():
            seconds, models = run()
            times[label].append(seconds)
            results[label] = models
    same = all(np.array_equal(a.get_params(), b.get_params())
               for a, b in zip(results["one after another"], results["fit_many"]))
    print(f"{k} x {args.layers}, {name}, batch {BATCH}, {args.threads} threads, one epoch each")
    for label, seconds in times.items():
        median = float(np.median(seconds))
        print(f"{label:>18}: {median:7.3f} s median of {args.repeats}, {k / median:6.1f} models x epochs / s")
    fit_many = np.median(times["fit_many"])
    print(f"fit_many throughput / one after another: {np.median(times['one after another']) / fit_many:.2f}x; "
          f"weights identical: {same}")
    if args.jax:
        print(f"fit_many throughput / jax.vmap: {np.median(times['jax.vmap']) / fit_many:.2f}x")


def seconds_of(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
