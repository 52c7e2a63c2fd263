"""Explicit SIMD vectors for Numba: 32-byte (AVX) vectors of float32 or float64.

LLVM's auto-vectoriser keeps the accumulators of a loop over a runtime-length row in memory;
with these intrinsics a tile of outputs lives in registers across a whole loop of inputs.
A vector is an SSA value of type <8 x float> (float32) or <4 x double> (float64): every
operation here is one LLVM instruction or intrinsic call, inlined into the caller.
Array indices are not checked: callers stay inside padded rows (see fastnn/layout.py).
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

VECTOR_BYTES = 32


class Vector(types.Type):
    """A SIMD vector of ``lanes`` values of the float type ``dtype``."""

    def __init__(self, dtype, lanes):
        self.dtype, self.lanes = dtype, lanes
        super().__init__(name=f"Vector({dtype} x {lanes})")


@register_model(Vector)
class VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def vector_of(dtype) -> Vector:
    return Vector(dtype, VECTOR_BYTES // (dtype.bitwidth // 8))


def _pointer(context, builder, array_type, array, index):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [index])


@intrinsic
def lanes(typingctx, array):
    """The number of values in one vector of the array's dtype (a compile-time constant)."""
    n = vector_of(array.dtype).lanes

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, n)

    return types.intp(array), codegen


@intrinsic
def vload(typingctx, array, index):
    """array[index : index + lanes] as a vector (unaligned load)."""
    vt = vector_of(array.dtype)

    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, array, args[0], args[1])
        llvm_type = context.get_value_type(vt)
        return builder.load(builder.bitcast(ptr, llvm_type.as_pointer()), align=array.dtype.bitwidth // 8)

    return vt(array, index), codegen


@intrinsic
def load(typingctx, array, index):
    """array[index] for an index known to be in range: no negative-index wrap-around, which
    Numba adds to every access with a signed index it cannot prove non-negative."""
    def codegen(context, builder, sig, args):
        return builder.load(_pointer(context, builder, array, args[0], args[1]))

    return array.dtype(array, index), codegen


@intrinsic
def load_word(typingctx, array, word):
    """The 8-byte word number ``word`` of a C-contiguous array's data, as a uint64 (unaligned)."""
    def codegen(context, builder, sig, args):
        data = builder.bitcast(context.make_array(array)(context, builder, args[0]).data, ir.IntType(64).as_pointer())
        return builder.load(builder.gep(data, [args[1]]), align=1)

    return types.uint64(array, types.intp), codegen


def c_layout(array) -> bool:
    """Whether Numba typed ``array`` as C-contiguous (a compile-time constant): load_word's
    callers check it, since an 'A'-layout array's data need not be one run of words."""
    return array.flags.c_contiguous


@overload(c_layout, jit_options={"cache": True})
def _c_layout(array):
    contiguous = array.layout == "C"
    return lambda array: contiguous


@intrinsic
def store(typingctx, array, index, value):
    """array[index] = value for an index known to be in range (see load); value is cast to the
    array's dtype."""
    def codegen(context, builder, sig, args):
        item = context.cast(builder, args[2], sig.args[2], array.dtype)
        builder.store(item, _pointer(context, builder, array, args[0], args[1]))
        return context.get_dummy_value()

    return types.none(array, index, value), codegen


@intrinsic
def vstore(typingctx, array, index, vector):
    """array[index : index + lanes] = vector."""
    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, array, args[0], args[1])
        builder.store(args[2], builder.bitcast(ptr, args[2].type.as_pointer()),
                      align=array.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(array, index, vector), codegen


@intrinsic
def vsplat(typingctx, x):
    """A vector with every lane equal to the float x."""
    vt = vector_of(x)

    def codegen(context, builder, sig, args):
        llvm_type = context.get_value_type(vt)
        one = builder.insert_element(ir.Constant(llvm_type, ir.Undefined), args[0], ir.Constant(ir.IntType(32), 0))
        mask = ir.Constant(ir.VectorType(ir.IntType(32), vt.lanes), [0] * vt.lanes)
        return builder.shuffle_vector(one, ir.Constant(llvm_type, ir.Undefined), mask)

    return vt(x), codegen


@intrinsic
def vzero(typingctx, array):
    """A zero vector of the array's dtype."""
    vt = vector_of(array.dtype)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vt), None)

    return vt(array), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """a * b + c, fused (one rounding)."""
    def codegen(context, builder, sig, args):
        vt = args[0].type
        name = f"llvm.fma.v{vt.count}f{32 if isinstance(vt.element, ir.FloatType) else 64}"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt, vt]), name)
        return builder.call(fn, args)

    return a(a, b, c), codegen


def _binary(name, build):
    def typer(typingctx, a, b):
        def codegen(context, builder, sig, args):
            return build(builder)(args[0], args[1])

        return a(a, b), codegen

    typer.__name__ = name
    return intrinsic(typer)


vadd = _binary("vadd", lambda b: b.fadd)  # a + b
vsub = _binary("vsub", lambda b: b.fsub)  # a - b
vmul = _binary("vmul", lambda b: b.fmul)  # a * b
vdiv = _binary("vdiv", lambda b: b.fdiv)  # a / b


@intrinsic
def vwhere_positive(typingctx, z, x):
    """x in the lanes where z > 0, else 0: ReLU's derivative applied to x, without branches."""
    def codegen(context, builder, sig, args):
        zero = ir.Constant(args[0].type, None)
        return builder.select(builder.fcmp_ordered(">", args[0], zero), args[1], zero)

    return x(z, x), codegen


@intrinsic
def vsqrt(typingctx, a):
    """The square root of each lane (correctly rounded, as np.sqrt)."""
    def codegen(context, builder, sig, args):
        vt = args[0].type
        name = f"llvm.sqrt.v{vt.count}f{32 if isinstance(vt.element, ir.FloatType) else 64}"
        return builder.call(cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt]), name), args)

    return a(a), codegen


@intrinsic
def prefetch(typingctx, array, index):
    """Ask the CPU to bring array[index]'s cache line closer (a hint; never faults)."""
    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, array, args[0], args[1])
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.none(array, index), codegen
