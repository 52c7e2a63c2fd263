"""Explicit SIMD vectors for Numba: vectors of float32 or float64 as wide as the CPU's
(codes.VECTOR_BYTES: 64 bytes with AVX-512, else 32).

LLVM's auto-vectoriser keeps the accumulators of a loop over a runtime-length row in memory;
with these intrinsics a tile of outputs lives in registers across a whole loop of inputs.
A vector is an SSA value of type <16 x float> or <8 x double> (<8 x float> or <4 x double>): every
operation here is emitted straight into the caller's code: one LLVM instruction or intrinsic for
most, a short sequence of them for vexp, vtail and the reductions.
Array indices are not checked: callers stay inside padded rows (see fastnn/layout.py).
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

from .codes import VECTOR_BYTES


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


def _splat_constant(vector_type, value):
    return ir.Constant(vector_type, [value] * vector_type.count)


def _call(builder, name, vector_type, args):
    """The LLVM intrinsic ``name`` (e.g. "llvm.rint") on vectors of vector_type."""
    suffix = f".v{vector_type.count}f{32 if isinstance(vector_type.element, ir.FloatType) else 64}"
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector_type, [vector_type] * len(args)),
                                        name + suffix)
    return builder.call(fn, args)


def _splat(builder, vector_type, value):
    """A vector of vector_type with every lane equal to the scalar value."""
    one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    mask = ir.Constant(ir.VectorType(ir.IntType(32), vector_type.count), [0] * vector_type.count)
    return builder.shuffle_vector(one, ir.Constant(vector_type, ir.Undefined), mask)


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
        return _splat(builder, context.get_value_type(vt), args[0])

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
        return _call(builder, "llvm.fma", args[0].type, args)

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
        return _call(builder, "llvm.sqrt", args[0].type, args)

    return a(a), codegen


def _larger(builder, a, b):
    """a where a > b, else b (b where either is NaN), lane by lane."""
    return builder.select(builder.fcmp_ordered(">", a, b), a, b)


@intrinsic
def vmax(typingctx, a, b):
    """The larger of a and b in each lane (b where either is NaN)."""
    def codegen(context, builder, sig, args):
        return _larger(builder, args[0], args[1])

    return a(a, b), codegen


@intrinsic
def vtail(typingctx, v, count, fill):
    """v in lanes 0..count-1, the float ``fill`` in the others: a row's last vector without
    the padding past its ``count`` values."""
    def codegen(context, builder, sig, args):
        vt = args[0].type
        index_type = ir.VectorType(ir.IntType(64), vt.count)
        limit = _splat(builder, index_type, context.cast(builder, args[1], sig.args[1], types.int64))
        inside = builder.icmp_signed("<", ir.Constant(index_type, list(range(vt.count))), limit)
        fill = _splat(builder, vt, context.cast(builder, args[2], sig.args[2], v.dtype))
        return builder.select(inside, args[0], fill)

    return v(v, count, fill), codegen


@intrinsic
def nonzero_lanes(typingctx, v):
    """An int64 whose bit j is set where lane j of v is not zero (a NaN counts as not zero)."""
    def codegen(context, builder, sig, args):
        vt = args[0].type
        bits = builder.fcmp_unordered("!=", args[0], ir.Constant(vt, None))
        return builder.zext(builder.bitcast(bits, ir.IntType(vt.count)), ir.IntType(64))

    return types.int64(v), codegen


def _bit_function(name, llvm_name, extra_args):
    def typer(typingctx, x):
        def codegen(context, builder, sig, args):
            i64 = ir.IntType(64)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(i64, [i64] + [a.type for a in extra_args]), llvm_name)
            return builder.call(fn, [context.cast(builder, args[0], sig.args[0], types.int64), *extra_args])

        return types.int64(x), codegen

    typer.__name__ = name
    return intrinsic(typer)


lowest_bit = _bit_function("lowest_bit", "llvm.cttz.i64", [ir.Constant(ir.IntType(1), 1)])  # of x != 0
bit_count = _bit_function("bit_count", "llvm.ctpop.i64", [])


def _reduce(name, combine):
    def typer(typingctx, v):
        """Lanes combined pairwise, halves first: the same order on every call."""
        def codegen(context, builder, sig, args):
            x, width = args[0], args[0].type.count
            while width > 1:
                half = width // 2
                low = builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(ir.IntType(32), half), list(range(half))))
                high = builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(ir.IntType(32), half),
                                                                list(range(half, width))))
                x, width = combine(builder, low, high), half
            return builder.extract_element(x, ir.Constant(ir.IntType(32), 0))

        return v.dtype(v), codegen

    typer.__name__ = name
    return intrinsic(typer)


vsum = _reduce("vsum", lambda b, x, y: b.fadd(x, y))  # the lanes' sum
vlargest = _reduce("vlargest", _larger)  # the largest lane

# e^r on |r| <= ln(2)/2: Taylor terms up to r^7 (float32) or r^13 (float64); the first term
# left out is under a tenth of an ulp there.
_EXP_TERMS = {32: 8, 64: 14}


@intrinsic
def vexp(typingctx, x):
    """e^x in each lane, within one ulp: x = k ln 2 + r, e^r by its Taylor polynomial, times
    2^k put in the exponent's bits. Past the range of normal results it gives
    0 (x below -87.3 in float32, -708 in float64) or inf (x above 88 or 709); NaN stays NaN."""
    def codegen(context, builder, sig, args):
        x = args[0]
        vt = x.type
        bits = 32 if isinstance(vt.element, ir.FloatType) else 64
        mantissa, bias = (23, 127) if bits == 32 else (52, 1023)
        low, high = (-87.3, 88.0) if bits == 32 else (-708.0, 709.0)
        ln2_high, ln2_low = (0.693359375, -2.12194440e-4) if bits == 32 else \
            (6.93145751953125e-1, 1.42860682030941723212e-6)
        c = lambda value: _splat_constant(vt, value)  # noqa: E731
        inside = builder.select(builder.fcmp_ordered("<", x, c(low)), c(low), x)
        inside = builder.select(builder.fcmp_ordered(">", inside, c(high)), c(high), inside)
        k = _call(builder, "llvm.rint", vt, [builder.fmul(inside, c(1.4426950408889634))])
        r = _call(builder, "llvm.fma", vt, [k, c(-ln2_high), inside])
        r = _call(builder, "llvm.fma", vt, [k, c(-ln2_low), r])
        terms = _EXP_TERMS[bits]
        factorial = [1.0]
        for j in range(1, terms):
            factorial.append(factorial[-1] * j)
        p = c(1.0 / factorial[terms - 1])
        for j in range(terms - 2, -1, -1):
            p = _call(builder, "llvm.fma", vt, [p, r, c(1.0 / factorial[j])])
        int_type = ir.VectorType(ir.IntType(bits), vt.count)
        exponent = builder.add(builder.fptosi(k, int_type), _splat_constant(int_type, bias))
        power = builder.bitcast(builder.shl(exponent, _splat_constant(int_type, mantissa)), vt)
        y = builder.fmul(p, power)
        y = builder.select(builder.fcmp_ordered("<", x, c(low)), c(0.0), y)
        y = builder.select(builder.fcmp_ordered(">", x, c(high)), c(float("inf")), y)
        return builder.select(builder.fcmp_unordered("uno", x, x), x, y)

    return x(x), codegen


def _prefetch(name: str, write: int, doc: str):
    def typer(typingctx, array, index):
        def codegen(context, builder, sig, args):
            ptr = _pointer(context, builder, array, args[0], args[1])
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                                "llvm.prefetch.p0")
            builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, write), ir.Constant(i32, 3),
                              ir.Constant(i32, 1)])
            return context.get_dummy_value()

        return types.none(array, index), codegen

    typer.__name__, typer.__doc__ = name, doc
    return intrinsic(typer)


prefetch = _prefetch("prefetch", 0, "Ask the CPU to bring array[index]'s cache line closer (a hint; never faults).")
