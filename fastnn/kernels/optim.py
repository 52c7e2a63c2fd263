"""Update rules over a contiguous segment [s, t) of the flat parameter buffer, one function each.

Gradients and optimizer state share the parameters' layout, so an update is one loop over one
segment; the segments of a step are disjoint and may run on different threads. Each rule also
clears the gradient segment it consumed, ready for the next batch. The rules follow PyTorch's
definitions (torch.optim), so that the two can be compared weight for weight; fastnn/reference.py
states each one again in NumPy. In every formula g is the gradient times ``grad_scale``
(clipping), wd the weight decay, lr the batch's learning rate, and the settings come by name in
``hyper`` (kernels/args.py, Hyper).

Each line is the scalar rule's arithmetic, in the same order, on a vector of values at a time
(LLVM does not vectorise the scalar loops).
"""

import numpy as np
from numba import njit

from .codes import ADAMW, MOMENTUM, NESTEROV, RMSPROP, SGD
from .jit import kernel
from .simd import lanes, vadd, vdiv, vload, vmul, vsplat, vsqrt, vstore, vsub, vzero


@njit(inline="always")
def decayed_gradient(params, grad, i, scale, decay):
    """g + wd p at index i (L2 weight decay, added to the gradient)."""
    p = vload(params, i)
    return p, vadd(vmul(vload(grad, i), scale), vmul(decay, p))


@njit(inline="always")
def sgd_update(params, grad, s, t, lr, hyper, grad_scale):
    """p <- p - lr (g + wd p)."""
    rate, scale, decay, zeros = vsplat(lr), vsplat(grad_scale), vsplat(params.dtype.type(hyper.weight_decay)), \
        vzero(params)
    for i in range(s, t, lanes(params)):
        p, g = decayed_gradient(params, grad, i, scale, decay)
        vstore(params, i, vsub(p, vmul(rate, g)))
        vstore(grad, i, zeros)


@njit(inline="always")
def momentum_update(params, grad, m, s, t, lr, hyper, grad_scale, nesterov):
    """b <- mu b + (g + wd p); p <- p - lr b, or with Nesterov p <- p - lr ((g + wd p) + mu b)."""
    rate, scale, decay, zeros = vsplat(lr), vsplat(grad_scale), vsplat(params.dtype.type(hyper.weight_decay)), \
        vzero(params)
    mu = vsplat(params.dtype.type(hyper.beta1))
    for i in range(s, t, lanes(params)):
        p, g = decayed_gradient(params, grad, i, scale, decay)
        b = vadd(vmul(mu, vload(m, i)), g)
        vstore(m, i, b)
        vstore(params, i, vsub(p, vmul(rate, vadd(g, vmul(mu, b)) if nesterov else b)))
        vstore(grad, i, zeros)


@njit(inline="always")
def rmsprop_update(params, grad, m, s, t, lr, hyper, grad_scale):
    """a <- alpha a + (1 - alpha) (g + wd p)^2 (kept in m); p <- p - lr (g + wd p) / (sqrt(a) + eps)."""
    rate, scale, decay, zeros = vsplat(lr), vsplat(grad_scale), vsplat(params.dtype.type(hyper.weight_decay)), \
        vzero(params)
    one, alpha, eps = vsplat(params.dtype.type(1)), vsplat(params.dtype.type(hyper.beta1)), \
        vsplat(params.dtype.type(hyper.eps))
    for i in range(s, t, lanes(params)):
        p, g = decayed_gradient(params, grad, i, scale, decay)
        a = vadd(vmul(alpha, vload(m, i)), vmul(vmul(vsub(one, alpha), g), g))
        vstore(m, i, a)
        vstore(params, i, vsub(p, vdiv(vmul(rate, g), vadd(vsqrt(a), eps))))
        vstore(grad, i, zeros)


@njit(inline="always")
def adam_update(params, grad, m, v, s, t, lr, hyper, step, grad_scale, decoupled):
    """Adam at step k (from 1): m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
    p <- p - lr / (1 - b1^k) m / (sqrt(v) / sqrt(1 - b2^k) + eps), where g includes wd p (Adam),
    or p is first shrunk by 1 - lr wd (AdamW, decoupled)."""
    dtype = params.dtype.type
    one, scale, decay, zeros = vsplat(dtype(1)), vsplat(grad_scale), vsplat(dtype(hyper.weight_decay)), vzero(params)
    beta1, beta2, eps = vsplat(dtype(hyper.beta1)), vsplat(dtype(hyper.beta2)), vsplat(dtype(hyper.eps))
    # The bias corrections in float64, as Python computes them, then in the parameters' dtype.
    correction1 = dtype(1.0 - hyper.beta1 ** np.float64(step))
    step_size = vsplat(lr / correction1)
    root_correction = vsplat(dtype(np.sqrt(1.0 - hyper.beta2 ** np.float64(step))))
    shrink = vsub(one, vmul(vsplat(lr), decay))
    for i in range(s, t, lanes(params)):
        p = vload(params, i)
        g = vmul(vload(grad, i), scale)
        if decoupled:
            p = vmul(p, shrink)
        else:
            g = vadd(g, vmul(decay, p))
        mi = vadd(vmul(beta1, vload(m, i)), vmul(vsub(one, beta1), g))
        vi = vadd(vmul(beta2, vload(v, i)), vmul(vmul(vsub(one, beta2), g), g))
        vstore(m, i, mi)
        vstore(v, i, vi)
        vstore(params, i, vsub(p, vdiv(vmul(step_size, mi), vadd(vdiv(vsqrt(vi), root_correction), eps))))
        vstore(grad, i, zeros)


@kernel
def update_segment(kind, params, grad, m, v, s, t, lr, hyper, step, grad_scale):
    """One step (number ``step``, from 1) of rule ``kind`` on params[s:t] (whole vectors, see
    fastnn/layout.py); grad is multiplied by grad_scale (clipping)."""
    if kind == SGD:
        sgd_update(params, grad, s, t, lr, hyper, grad_scale)
    elif kind == MOMENTUM or kind == NESTEROV:
        momentum_update(params, grad, m, s, t, lr, hyper, grad_scale, kind == NESTEROV)
    elif kind == RMSPROP:
        rmsprop_update(params, grad, m, s, t, lr, hyper, grad_scale)
    else:  # ADAM, ADAMW
        adam_update(params, grad, m, v, s, t, lr, hyper, step, grad_scale, kind == ADAMW)
