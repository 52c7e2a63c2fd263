"""The epoch's example order: kernels/order.py against a plain-Python restatement, and its
distribution."""

import itertools

import numpy as np
import pytest
from scipy import stats

from fastnn.kernels.order import draw_below, shuffle_order
from fastnn.training import epoch_order
from torch_reference import MASK64


def stream_word_python(key: int, counter: int) -> int:
    x = (key + counter * 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return (x ^ (x >> 31)) >> 32


def draw_below_python(key: int, counter: int, bound: int) -> tuple[int, int]:
    """Lemire's rule as usually written: accept a word whose product's low half is at least
    2**32 mod bound."""
    while True:
        product = stream_word_python(key, counter) * bound
        counter += 1
        if product & 0xFFFFFFFF >= (2**32 - bound) % bound:
            return product >> 32, counter


def shuffle_python(key: int, n: int) -> list[int]:
    order, counter = list(range(n)), 0
    for i in range(n - 1, 0, -1):
        j, counter = draw_below_python(key, counter, i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def shuffled(key: int, n: int) -> np.ndarray:
    order = np.full(n, -1, dtype=np.int64)
    shuffle_order(order, np.uint64(key))
    return order


def test_shuffle_restated_in_python_is_the_kernels():
    for key in (0, 1, 12345, 2**63 + 11, MASK64):
        for n in (0, 1, 2, 7, 1000):
            assert shuffled(key, n).tolist() == shuffle_python(key, n)


def test_draw_below_rejects_the_words_that_would_bias():
    """With bound 2**31 + 1 about half the words are rejected: draws stay below the bound, match
    the restatement, and fall in either half of the range equally often."""
    bound, key = 2**31 + 1, 99
    draws, counter, used = [], 0, 0
    for _ in range(4000):
        j, after = draw_below(np.uint64(key), counter, np.uint64(bound))
        assert (int(j), int(after)) == draw_below_python(key, counter, bound)
        draws.append(int(j))
        used += after - counter
        counter = after
    assert max(draws) < bound
    assert 1.8 < used / len(draws) < 2.2  # 1 / (1 - 0.4999...) words a draw
    assert abs(np.mean(np.array(draws) < bound // 2) - 0.5) < 0.03


def test_shuffle_draws_every_permutation_equally_often():
    """All 24 orders of 4 items over 24,000 keys: a chi-square test of uniformity."""
    index = {p: i for i, p in enumerate(itertools.permutations(range(4)))}
    counts = np.zeros(len(index))
    for key in range(24_000):
        counts[index[tuple(shuffled(key * 0x9E3779B97F4A7C15 % 2**64, 4))]] += 1
    assert stats.chisquare(counts).pvalue > 1e-3


def test_epoch_order_takes_one_word_of_the_generator():
    """Orders are permutations, the same from the same generator state, new each epoch; the
    generator moves on by exactly one 64-bit draw."""
    rng, twin = np.random.default_rng(3), np.random.default_rng(3)
    first, second = epoch_order(rng, 60_000), epoch_order(rng, 60_000)
    assert np.array_equal(np.sort(first), np.arange(60_000))
    assert np.mean(first == second) < 0.01
    assert np.array_equal(first, epoch_order(twin, 60_000))
    twin.integers(2**64, dtype=np.uint64)
    assert rng.bit_generator.state == twin.bit_generator.state


def test_epoch_order_refuses_more_examples_than_its_draws_can_bound():
    with pytest.raises(ValueError, match="at most 2\\*\\*32"):
        epoch_order(np.random.default_rng(0), 2**32 + 1)
