"""Update rules over a contiguous segment [s, t) of the flat parameter buffer.

Gradients and optimizer state share the parameters' layout, so an update is one loop over one
segment; the segments of a step are disjoint and may run on different threads. Each rule also
clears the gradient segment it consumed, ready for the next batch. The rules follow PyTorch's
definitions (torch.optim), so that the two can be compared weight for weight.

``hyper`` holds, in the parameters' dtype: [momentum or beta1 or alpha, beta2, eps,
weight_decay, 1 - beta1^step, sqrt(1 - beta2^step)] (see fastnn/optimizers.py).
"""

from .codes import ADAMW, MOMENTUM, NESTEROV, RMSPROP, SGD
from .jit import kernel
from .simd import lanes, vadd, vdiv, vload, vmul, vsplat, vsqrt, vstore, vsub, vzero


@kernel
def update_segment(kind, params, grad, m, v, s, t, lr, hyper, grad_scale):
    """One step of rule ``kind`` on params[s:t]; grad is multiplied by grad_scale (clipping).

    Segments are whole vectors (see fastnn/layout.py); each line is the scalar rule's arithmetic,
    in the same order, on a vector of values at a time (LLVM does not vectorise the scalar loops).
    """
    one = vsplat(params.dtype.type(1))
    beta1, beta2, eps, decay = vsplat(hyper[0]), vsplat(hyper[1]), vsplat(hyper[2]), vsplat(hyper[3])
    correction1, sqrt_correction2 = hyper[4], hyper[5]
    rate, scale, zeros = vsplat(lr), vsplat(grad_scale), vzero(params)
    L = lanes(params)
    if kind == SGD:
        for i in range(s, t, L):
            p = vload(params, i)
            g = vadd(vmul(vload(grad, i), scale), vmul(decay, p))
            vstore(params, i, vsub(p, vmul(rate, g)))
            vstore(grad, i, zeros)
    elif kind == MOMENTUM or kind == NESTEROV:
        nesterov = kind == NESTEROV
        for i in range(s, t, L):
            p = vload(params, i)
            g = vadd(vmul(vload(grad, i), scale), vmul(decay, p))
            mi = vadd(vmul(beta1, vload(m, i)), g)
            vstore(m, i, mi)
            vstore(params, i, vsub(p, vmul(rate, vadd(g, vmul(beta1, mi)) if nesterov else mi)))
            vstore(grad, i, zeros)
    elif kind == RMSPROP:  # its one state vector, the squares' average, is m
        for i in range(s, t, L):
            p = vload(params, i)
            g = vadd(vmul(vload(grad, i), scale), vmul(decay, p))
            vi = vadd(vmul(beta1, vload(m, i)), vmul(vmul(vsub(one, beta1), g), g))
            vstore(m, i, vi)
            vstore(params, i, vsub(p, vdiv(vmul(rate, g), vadd(vsqrt(vi), eps))))
            vstore(grad, i, zeros)
    else:  # ADAM, ADAMW
        decoupled = kind == ADAMW
        step_size = vsplat(lr / correction1)
        root_correction = vsplat(sqrt_correction2)
        shrink = vsub(one, vmul(rate, decay))
        for i in range(s, t, L):
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
