"""Update rules over a contiguous segment [s, t) of the flat parameter buffer.

Gradients and optimizer state share the parameters' layout, so an update is one loop over one
segment; the segments of a step are disjoint and may run on different threads. Each rule also
clears the gradient segment it consumed, ready for the next batch.
"""

from numba import njit


@njit(inline="always")
def sgd_update(params, grad, s, t, lr):
    """Plain gradient descent: w -= lr * g."""
    zero = grad.dtype.type(0)
    for i in range(s, t):
        params[i] -= lr * grad[i]
        grad[i] = zero
