"""Large batches in chunks (plan CHUNKS, kernels/train.py chunked_batch): each chunk of 2,048
examples sums its own gradient, the chunks' sums are added in order, then the rule steps. The
same bits for any number of workers, and the reference's steps to rounding."""

import functools

import numpy as np
import pytest

import fastnn
import fastnn.parallel as parallel
from fastnn import MLP, reference
from fastnn.kernels.codes import CHUNKS, REPLICAS, SHARED
from fastnn.kernels.tuning import CHUNK_EXAMPLES
from fastnn.parallel import Plan
from helpers import random_pixels, to_reference
from test_sgd import max_relative_error


def test_large_batches_of_a_narrow_first_layer_are_cut_into_chunks(mnist):
    model = MLP([784, 10, 10], pixels=True)
    examples = model._examples(mnist.train_images[:5000], mnist.train_labels[:5000])
    adam = fastnn.Adam()

    def plan(model, batch_size, threads, clip_norm=0.0):
        return parallel.parallel_plan(model, examples, batch_size, threads, adam, clip_norm)

    large = 2 * CHUNK_EXAMPLES
    assert plan(model, large, 2) == Plan(2, CHUNKS)
    assert plan(model, large, 1) == Plan(1, CHUNKS)  # one worker sums in the same chunks
    assert plan(model, large, 8) == Plan(2, CHUNKS)  # a chunk each at most
    assert plan(model, large - 1, 2) == Plan(2, REPLICAS)
    assert plan(model, large, 2, clip_norm=1.0) == Plan(2, REPLICAS)  # the norm needs the summed gradient first
    assert plan(MLP([784, 512, 10]), large, 2) == Plan(2, SHARED)  # wide: the transposed batch
    assert Plan(2, CHUNKS).alone == Plan(1, CHUNKS) and Plan(2, REPLICAS).alone == Plan()


def test_chunks_that_would_take_too_much_memory_are_not_used(mnist, monkeypatch):
    model = MLP([784, 10, 10], pixels=True)
    examples = model._examples(mnist.train_images[:100], mnist.train_labels[:100])
    monkeypatch.setattr(parallel, "CHUNKED_MAX_BYTES", 2 * model.layout.n_params * 4 - 1)
    assert parallel.parallel_plan(model, examples, 2 * CHUNK_EXAMPLES, 2, fastnn.Adam(), 0.0) == Plan(2, REPLICAS)


@pytest.mark.parametrize("n, batch_size", [(5000, 5000), (5000, 4500)], ids=["full batch", "ragged last batch"])
def test_chunked_steps_equal_reference(n, batch_size):
    sizes = [784, 16, 10]
    X, rng = random_pixels(n, sizes[0], seed=3, density=0.2)
    y = rng.integers(0, 10, n)
    model = MLP(sizes, pixels=True, seed=7, dtype="float64")
    params = initial = to_reference(model.get_weights())
    model.fit(X, y, epochs=2, batch_size=batch_size, lr=0.5, shuffle=False, threads=1)
    for _ in range(2):
        params = reference.sgd_epoch(params, reference.scale_pixels(X), y, 0.5, batch_size)
    assert max_relative_error(model, params) < 1e-12
    assert max_relative_error(model, initial) > 1e-3  # the steps moved the weights


def test_chunked_adam_equals_reference():
    sizes = [784, 12, 8, 10]
    X, rng = random_pixels(4200, sizes[0], seed=5, density=0.2)
    y = rng.integers(0, 10, 4200)
    model = MLP(sizes, pixels=True, seed=2, dtype="float64")
    params = to_reference(model.get_weights())
    model.fit(X, y, epochs=3, batch_size=4200, shuffle=False, optimizer=fastnn.Adam(lr=0.01), threads=1)
    rule, states = functools.partial(reference.adam_step, lr=0.01), None
    for _ in range(3):
        params, states = reference.optimizer_epoch(params, reference.scale_pixels(X), y, 4200, rule, states)
    assert max_relative_error(model, params) < 1e-10


CHUNKED_RUNS = {
    "sgd, full batch, float64": dict(sizes=(784, 10, 10), n=5000, batch_size=5000, dtype="float64"),
    "adam, two batches an epoch": dict(sizes=(784, 16, 10), n=9000, batch_size=4500, optimizer="adam"),
    "momentum, three layers, dropout": dict(sizes=(784, 12, 8, 10), n=4100, batch_size=4100,
                                            optimizer="momentum", dropout=0.2),
}


@pytest.mark.parametrize("case", CHUNKED_RUNS.values(), ids=CHUNKED_RUNS.keys())
def test_two_workers_agree_with_one_bit_for_bit(mnist, force_parallel, two_cpus, case):
    X, y = mnist.train_images[:case["n"]], mnist.train_labels[:case["n"]]
    optimizers = {"adam": fastnn.Adam(lr=0.003), "momentum": fastnn.SGD(lr=0.05, momentum=0.9)}

    def run(threads):
        model = MLP(list(case["sizes"]), pixels=True, seed=4, dtype=case.get("dtype", "float32"),
                    dropout=case.get("dropout", 0.0))
        settings = dict(batch_size=case["batch_size"], optimizer=optimizers.get(case.get("optimizer")),
                        threads=threads)
        assert model.fit(X, y, epochs=1, **settings).workers == threads
        model.fit(X, y, epochs=2, **settings)  # continues the optimizer's state
        return model.get_params()

    assert np.array_equal(run(2), run(1))
