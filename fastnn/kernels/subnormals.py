"""Training with subnormal numbers flushed to zero, as XLA (JAX) and TensorFlow do on CPUs.

A subnormal float (below 1.2e-38 in float32, 2.2e-308 in float64) takes a slow path through
the CPU's floating-point unit. Adam makes many: the first moment m of a weight whose gradient
stays zero (a pixel that is always blank in the batches since) shrinks by beta1 = 0.9 a step,
so it passes 1e-38 within about 800 steps of its last non-zero gradient and stays there. At
784-1024-1024-10, after the first epoch, an Adam epoch took a quarter longer from them alone
(docs/performance.md). With flushing, a result that would be subnormal is zero, and a
subnormal input counts as zero: the values lost are below any rounding error of the training.

The mode is the calling thread's own (x86's MXCSR: flush-to-zero and denormals-are-zero), set
by the kernels that workers run and restored before they return, so the caller's thread and
its NumPy code keep IEEE arithmetic. Elsewhere than x86 nothing changes.
"""

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
FLUSH_BITS = 0x8040  # MXCSR's FTZ (bit 15) and DAZ (bit 6)


def _mxcsr(builder, name, slot):
    """Call llvm.x86.sse.stmxcsr or ldmxcsr on the 32-bit ``slot``."""
    i8_pointer = ir.IntType(8).as_pointer()
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8_pointer]), name)
    builder.call(fn, [builder.bitcast(slot, i8_pointer)])


@intrinsic
def flush_subnormals(typingctx):
    """Flush subnormals to zero in this thread from now on; returns the mode to restore
    (restore_float_mode)."""
    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        if not X86:
            return ir.Constant(i32, 0)
        slot = cgutils.alloca_once(builder, i32)
        _mxcsr(builder, "llvm.x86.sse.stmxcsr", slot)
        old = builder.load(slot)
        builder.store(builder.or_(old, ir.Constant(i32, FLUSH_BITS)), slot)
        _mxcsr(builder, "llvm.x86.sse.ldmxcsr", slot)
        return old

    return types.int32(), codegen


@intrinsic
def restore_float_mode(typingctx, mode):
    """Put back the mode that flush_subnormals returned."""
    def codegen(context, builder, sig, args):
        if X86:
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(args[0], slot)
            _mxcsr(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()

    return types.none(types.int32), codegen
