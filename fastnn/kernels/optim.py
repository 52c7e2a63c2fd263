"""Update rules over a contiguous segment [s, t) of the flat parameter buffer.

Gradients and optimizer state share the parameters' layout, so an update is one loop over one
segment; the segments of a step are disjoint and may run on different threads. Each rule also
clears the gradient segment it consumed, ready for the next batch. The rules follow PyTorch's
definitions (torch.optim), so that the two can be compared weight for weight.

``hyper`` holds, in the parameters' dtype: [momentum or beta1 or alpha, beta2, eps,
weight_decay, 1 - beta1^step, sqrt(1 - beta2^step)] (see fastnn/optimizers.py).
"""

import numpy as np
from numba import njit

from .codes import ADAMW, MOMENTUM, NESTEROV, RMSPROP, SGD
from .simd import lanes, vadd, vload, vmul, vsplat, vstore, vsub, vzero


@njit(cache=True)
def update_segment(kind, params, grad, m, v, s, t, lr, hyper, grad_scale):
    """One step of rule ``kind`` on params[s:t]; grad is multiplied by grad_scale (clipping)."""
    zero, one = params.dtype.type(0), params.dtype.type(1)
    beta1, beta2, eps, decay = hyper[0], hyper[1], hyper[2], hyper[3]
    correction1, sqrt_correction2 = hyper[4], hyper[5]
    if kind == SGD:  # the common case, in explicit vectors (segments are whole vectors)
        L = lanes(params)
        rate, scale, decay_v, zeros = vsplat(lr), vsplat(grad_scale), vsplat(decay), vzero(params)
        for i in range(s, t, L):
            p = vload(params, i)
            g = vadd(vmul(vload(grad, i), scale), vmul(decay_v, p))
            vstore(params, i, vsub(p, vmul(rate, g)))
            vstore(grad, i, zeros)
    elif kind == MOMENTUM or kind == NESTEROV:
        nesterov = kind == NESTEROV
        for i in range(s, t):
            g = grad[i] * grad_scale + decay * params[i]
            m[i] = beta1 * m[i] + g
            params[i] -= lr * (g + beta1 * m[i] if nesterov else m[i])
            grad[i] = zero
    elif kind == RMSPROP:
        for i in range(s, t):
            g = grad[i] * grad_scale + decay * params[i]
            v[i] = beta1 * v[i] + (one - beta1) * g * g
            params[i] -= lr * g / (np.sqrt(v[i]) + eps)
            grad[i] = zero
    else:  # ADAM, ADAMW
        decoupled = kind == ADAMW
        step_size = lr / correction1
        for i in range(s, t):
            g = grad[i] * grad_scale
            if decoupled:
                params[i] *= one - lr * decay
            else:
                g += decay * params[i]
            m[i] = beta1 * m[i] + (one - beta1) * g
            v[i] = beta2 * v[i] + (one - beta2) * g * g
            params[i] -= step_size * m[i] / (np.sqrt(v[i]) / sqrt_correction2 + eps)
            grad[i] = zero
