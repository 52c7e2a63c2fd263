"""Update rules over the flat parameter buffer: one vector's step of each rule, and its loop over a segment.

Gradients and optimizer state share the parameters' layout, so an update is one loop over one
segment; the segments of a step are disjoint and may run on different threads. Each rule also
clears the gradient segment it consumed, ready for the next batch. The rules follow PyTorch's
definitions (torch.optim), so that the two can be compared weight for weight; fastnn/reference.py
states each one again in NumPy. In every formula g is the gradient times ``grad_scale``
(clipping), wd the weight decay, lr the batch's learning rate, and the settings come by name in
``hyper`` (kernels/args.py, Hyper).

Each line is the scalar rule's arithmetic, in the same order, on a vector of values at a time
(LLVM does not vectorise the scalar loops). step_vector is one vector's step: update_segment
runs it over a segment of the gradient buffer, and layers.dense_backward_rows on each tile of
sums as it leaves the registers, the gradient never stored.
"""

import numpy as np
from numba import njit

from .codes import ADAM, ADAMW, MOMENTUM, NESTEROV, RMSPROP, SGD
from .jit import kernel
from .simd import lanes, vadd, vdiv, vload, vmul, vsplat, vsqrt, vstore, vsub, vzero


@njit(inline="always")
def rule_settings(kind, params, lr, hyper, step, grad_scale):
    """The settings of one step (number ``step``, from 1) of rule ``kind`` as vectors of the
    parameters' dtype: (lr, grad_scale, wd, beta1, beta2, eps, Adam's lr / (1 - b1^k), its
    sqrt(1 - b2^k)). The bias corrections in float64, as Python computes them, then in the
    parameters' dtype; only Adam pays for their powers (at 784-10-10 a batch takes 18 us)."""
    dtype = params.dtype.type
    step_size, root_correction = lr, dtype(1)
    if kind == ADAM or kind == ADAMW:
        step_size = lr / dtype(1.0 - hyper.beta1 ** np.float64(step))
        root_correction = dtype(np.sqrt(1.0 - hyper.beta2 ** np.float64(step)))
    return (vsplat(lr), vsplat(grad_scale), vsplat(dtype(hyper.weight_decay)), vsplat(dtype(hyper.beta1)),
            vsplat(dtype(hyper.beta2)), vsplat(dtype(hyper.eps)), vsplat(step_size), vsplat(root_correction))


@njit(inline="always")
def step_vector(kind, params, m, v, i, gradient, settings):
    """One step of rule ``kind`` on the vector of parameters at index i, whose gradient (before
    grad_scale) is the vector ``gradient``; settings: rule_settings. In every rule g is the
    gradient times grad_scale and wd the weight decay:
    - SGD: p <- p - lr (g + wd p);
    - momentum: b <- mu b + (g + wd p); p <- p - lr b, or with Nesterov p <- p - lr ((g + wd p) + mu b);
    - RMSprop: a <- alpha a + (1 - alpha) (g + wd p)^2 (kept in m); p <- p - lr (g + wd p) / (sqrt(a) + eps);
    - Adam at step k: m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
      p <- p - lr / (1 - b1^k) m / (sqrt(v) / sqrt(1 - b2^k) + eps), where g includes wd p (Adam),
      or p is first shrunk by 1 - lr wd (AdamW, decoupled).
    """
    rate, scale, decay, beta1, beta2, eps, step_size, root_correction = settings
    p = vload(params, i)
    g = vmul(gradient, scale)
    if kind == ADAMW:
        p = vmul(p, vsub(vsplat(params.dtype.type(1)), vmul(rate, decay)))
    else:
        g = vadd(g, vmul(decay, p))
    if kind == SGD:
        vstore(params, i, vsub(p, vmul(rate, g)))
    elif kind == MOMENTUM or kind == NESTEROV:
        b = vadd(vmul(beta1, vload(m, i)), g)
        vstore(m, i, b)
        vstore(params, i, vsub(p, vmul(rate, vadd(g, vmul(beta1, b)) if kind == NESTEROV else b)))
    elif kind == RMSPROP:
        a = vadd(vmul(beta1, vload(m, i)), vmul(vmul(vsub(vsplat(params.dtype.type(1)), beta1), g), g))
        vstore(m, i, a)
        vstore(params, i, vsub(p, vdiv(vmul(rate, g), vadd(vsqrt(a), eps))))
    else:  # ADAM, ADAMW
        one = vsplat(params.dtype.type(1))
        mi = vadd(vmul(beta1, vload(m, i)), vmul(vsub(one, beta1), g))
        vi = vadd(vmul(beta2, vload(v, i)), vmul(vmul(vsub(one, beta2), g), g))
        vstore(m, i, mi)
        vstore(v, i, vi)
        vstore(params, i, vsub(p, vdiv(vmul(step_size, mi), vadd(vdiv(vsqrt(vi), root_correction), eps))))


@kernel
def update_segment(kind, params, grad, m, v, s, t, lr, hyper, step, grad_scale):
    """One step (number ``step``, from 1) of rule ``kind`` on params[s:t] (whole vectors, see
    fastnn/layout.py) from grad, multiplied by grad_scale (clipping); clears grad[s:t]."""
    settings = rule_settings(kind, params, lr, hyper, step, grad_scale)
    zeros = vzero(params)
    for i in range(s, t, lanes(params)):
        step_vector(kind, params, m, v, i, vload(grad, i), settings)
        vstore(grad, i, zeros)
