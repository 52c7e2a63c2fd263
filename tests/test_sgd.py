"""SGD steps of the fused kernels against the NumPy reference, from the same weights and batches.
The data are uint8 pixels, read with pixels=True as reference.scale_pixels reads them."""

import numpy as np
import pytest

from fastnn import MLP, reference
from fastnn.training import epoch_order
from helpers import random_pixels, to_reference


def max_relative_error(model, params):
    return max(np.abs(W - Wr.T).max() / np.abs(Wr).max() for (W, _), (Wr, _) in zip(model.get_weights(), params)) \
        + max(np.abs(b - br.ravel()).max() / np.abs(br).max() for (_, b), (_, br) in zip(model.get_weights(), params))


@pytest.mark.parametrize("n_examples", [64, 640, 650], ids=["one step", "ten steps", "ragged last batch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sgd_steps_equal_reference(n_examples, dtype):
    sizes = [784, 16, 10]
    X, rng = random_pixels(n_examples, sizes[0], seed=n_examples, density=0.2)
    y = rng.integers(0, 10, n_examples)
    model = MLP(sizes, pixels=True, seed=7, dtype=dtype)
    params = to_reference(model.get_weights())
    model.fit(X, y, epochs=1, batch_size=64, lr=0.1, shuffle=False)
    expected = reference.sgd_epoch(params, reference.scale_pixels(X), y, 0.1, 64)
    assert max_relative_error(model, expected) < (1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("threads", [1, 2])
def test_workers_steps_equal_reference(force_parallel, two_cpus, threads):
    sizes = [100, 24, 12, 5]
    X, rng = random_pixels(300, sizes[0], seed=11)
    y = rng.integers(0, sizes[-1], 300)
    model = MLP(sizes, pixels=True, seed=3, dtype="float64")
    params = to_reference(model.get_weights())
    assert model.fit(X, y, epochs=1, batch_size=32, lr=0.05, shuffle=False, threads=threads).workers == threads
    expected = reference.sgd_epoch(params, reference.scale_pixels(X), y, 0.05, 32)
    assert max_relative_error(model, expected) < 1e-12


@pytest.mark.parametrize("threads", [1, 2])
def test_wide_blocks_steps_equal_reference(force_parallel, two_cpus, threads):
    """A float64 hidden layer of 1024 x 1024 (8 MB) runs phase 1 in blocks of each worker's
    share of the batch (64 examples with one worker, 32 with two); the last batch (32 examples)
    in one block of 32 with one worker, in BLOCKs with two."""
    sizes = [100, 1024, 1024, 5]
    X, rng = random_pixels(160, sizes[0], seed=13)
    y = rng.integers(0, sizes[-1], 160)
    model = MLP(sizes, pixels=True, seed=3, dtype="float64", init="he")
    params = to_reference(model.get_weights())
    assert model.fit(X, y, epochs=1, batch_size=64, lr=0.01, shuffle=False, threads=threads).workers == threads
    expected = reference.sgd_epoch(params, reference.scale_pixels(X), y, 0.01, 64)
    assert max_relative_error(model, expected) < 1e-12


def test_an_output_layer_with_a_whole_vector_of_padding_steps_equal_reference():
    """512 float64 classes take 4 KB a row, so their rows get one more vector (Layout.strides):
    the softmax, its gradient and the update must leave that vector out."""
    sizes = [60, 8, 512]
    X, rng = random_pixels(96, sizes[0], seed=17)
    y = rng.integers(0, sizes[-1], 96)
    model = MLP(sizes, pixels=True, seed=5, dtype="float64", init="he")
    assert model.layout.strides[-1] > sizes[-1] + model.layout.lanes - 1
    params = to_reference(model.get_weights())
    model.fit(X, y, epochs=1, batch_size=32, lr=0.05, shuffle=False)
    expected = reference.sgd_epoch(params, reference.scale_pixels(X), y, 0.05, 32)
    assert max_relative_error(model, expected) < 1e-12


def test_block_examples_gives_each_worker_its_share_from_a_hidden_layer_of_wide_block_min_bytes():
    from fastnn.kernels.train import block_examples
    from fastnn.kernels.tuning import BLOCK, WIDE_BLOCK_MAX

    def block(sizes, dtype, n_batch, workers):
        model = MLP(sizes, dtype=dtype)
        return block_examples(model._params, model._net(), n_batch, workers)

    assert block([100, 1024, 1024, 5], "float64", 64, 2) == 32  # 8 MB
    assert block([100, 1024, 1024, 5], "float64", 63, 2) == BLOCK  # a share of 31: one BLOCK
    assert block([100, 1024, 1024, 5], "float64", 100, 2) == 48  # whole BLOCKs
    assert block([100, 1024, 1024, 5], "float64", 32, 1) == 32
    assert block([100, 1024, 1024, 5], "float64", 128, 1) == 128
    assert WIDE_BLOCK_MAX == 128 and block([100, 1024, 1024, 5], "float64", 1000, 2) == WIDE_BLOCK_MAX
    assert block([100, 1024, 1024, 5], "float32", 128, 2) == 64  # 4.3 MB: rows of 1,040 (Layout.strides)
    assert block([100, 1024, 768, 5], "float32", 128, 2) == BLOCK  # 3 MB
    assert block([100, 768, 1024, 1100], "float32", 64, 2) == 32  # the output layer's 4.5 MB count
    assert block([2048, 1024, 5], "float64", 128, 2) == BLOCK  # the first layer's weights do not count


def test_shuffled_epoch_follows_the_seeded_order():
    """fit draws each epoch's order from the model's generator, right after the initial weights."""
    sizes = [50, 8, 3]
    X, rng = random_pixels(200, sizes[0], seed=5)
    y = rng.integers(0, 3, 200)
    model = MLP(sizes, pixels=True, seed=9, dtype="float64")
    params = to_reference(model.get_weights())
    order = np.random.default_rng(9)
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):  # replay the initialisation's draws
        order.random((n_out, n_in)), order.random(n_out)
    model.fit(X, y, epochs=1, batch_size=16, lr=0.1)
    expected = reference.sgd_epoch(params, reference.scale_pixels(X), y, 0.1, 16, epoch_order(order, 200))
    assert max_relative_error(model, expected) < 1e-12


def test_full_batch_is_gradient_descent():
    sizes = [30, 8, 4]
    X, rng = random_pixels(90, sizes[0], seed=2)
    y = rng.integers(0, 4, 90)
    model = MLP(sizes, pixels=True, seed=4, dtype="float64")
    params = to_reference(model.get_weights())
    model.fit(X, y, epochs=20, batch_size=10_000, lr=0.1)
    expected = reference.gradient_descent(params, reference.scale_pixels(X), y, 0.1, 20)
    assert max_relative_error(model, expected) < 1e-12
