"""The order of an epoch's examples: a shuffle drawn from one 64-bit key.

Each draw is a few multiplies and shifts of a counter-based stream, cheaper than the PCG64
draws of numpy's Generator.permutation: a narrow network's epoch is short enough for the
shuffle's cost to show.
"""

import numpy as np

from .jit import kernel

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
LOW_32 = np.uint64(0xFFFFFFFF)


@kernel
def stream_word(key, counter):
    """Word ``counter`` of the stream of ``key``, 32 random bits: the top half of splitmix64's
    finaliser over key + counter * golden (as dropout_uniform's stream)."""
    x = key + np.uint64(counter) * GOLDEN
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (x ^ (x >> np.uint64(31))) >> np.uint64(32)


@kernel
def draw_below(key, counter, bound):
    """A uniform draw from 0..bound-1 (bound a uint64 up to 2**32) on the stream's words from
    ``counter`` on, and the counter after them: Lemire's multiply-and-reject, without the
    modulo's bias."""
    product = stream_word(key, counter) * bound
    counter += 1
    if product & LOW_32 < bound:  # rarely (bound / 2**32): reject the words that would bias
        threshold = (np.uint64(2**32) - bound) % bound
        while product & LOW_32 < threshold:
            product = stream_word(key, counter) * bound
            counter += 1
    return product >> np.uint64(32), counter


@kernel(nogil=True)
def shuffle_order(order, key):
    """order = a permutation of 0..n-1 drawn from ``key`` alone: Fisher-Yates from the last
    position down, position i swapping with one drawn uniformly from 0..i."""
    n = order.size
    for i in range(n):
        order[i] = i
    counter = 0
    for i in range(n - 1, 0, -1):
        j, counter = draw_below(key, counter, np.uint64(i + 1))
        order[i], order[j] = order[j], order[i]
