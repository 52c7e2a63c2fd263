"""Workers that share one training loop: atomic counters, a barrier and a task counter.

fastnn's parallel training runs one worker per thread for a whole block of batches, with two
barriers per batch, instead of a Numba parallel region per phase: starting a region costs tens
of microseconds, a whole 784-10-10 batch about eighty. The shared state is one int64 array,
``sync`` (zero at the start of a call); its counters only ever grow, so nothing is reset between
phases, and each worker keeps its own copy of how far they have come (``Progress``).
"""

import platform

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .codes import ARRIVALS, SYNC_SIZE, TASKS  # noqa: F401 (SYNC_SIZE: for callers)
from .simd import _pointer

# About 30 microseconds of spinning before a waiting worker starts to give up its core: a peer
# that is late by more than that has probably lost its own core to another thread.
SPINS_BEFORE_YIELD = 1000

sched_yield = types.ExternalFunction("sched_yield", types.int32())
usleep = types.ExternalFunction("usleep", types.int32(types.uint32))
# How long a worker that waits for a while (sleep_until) sleeps between looks, in microseconds.
SLEEP_MICROSECONDS = 20


@intrinsic
def atomic_add(typingctx, array, index, value):
    """array[index] += value as one atomic step (sequentially consistent); returns the old value."""
    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, array, args[0], args[1])
        return builder.atomic_rmw("add", ptr, context.cast(builder, args[2], sig.args[2], array.dtype), "seq_cst")

    return array.dtype(array, index, value), codegen


@intrinsic
def atomic_load(typingctx, array, index):
    """array[index], read atomically (sequentially consistent): sees every write made before
    the matching atomic_add in another thread."""
    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, array, args[0], args[1])
        return builder.load_atomic(ptr, "seq_cst", array.dtype.bitwidth // 8)

    return array.dtype(array, index), codegen


@intrinsic
def pause(typingctx):
    """Tell the CPU this is a spin-wait (x86 PAUSE): saves power and the sibling thread's time."""
    def codegen(context, builder, sig, args):
        if platform.machine().lower() in ("x86_64", "amd64", "i686", "x86"):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def cycles(typingctx):
    """The CPU's cycle counter (x86 RDTSC: constant rate), for timing inside a kernel."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                            "llvm.readcyclecounter")
        return builder.call(fn, [])

    return types.int64(), codegen


@njit(inline="always")
def wait_until(sync, index, target):
    """Spin until sync[index] >= target (then give up the core between looks)."""
    spins = 0
    while atomic_load(sync, index) < target:
        if spins < SPINS_BEFORE_YIELD:
            pause()
            spins += 1
        else:
            sched_yield()


@njit(inline="always")
def sleep_until(sync, index, target):
    """Sleep until sync[index] >= target: for a wait of many batches, during which a spinning
    worker would take time from the others (a CPU of this VM may share its core with another).
    Wakes within about SLEEP_MICROSECONDS plus the kernel's timer slack (50 us) of the change."""
    while atomic_load(sync, index) < target:
        usleep(SLEEP_MICROSECONDS)


@njit(inline="always")
def barrier(sync, n_workers, passed):
    """Wait until all n_workers have arrived here; ``passed``: barriers this worker passed before.
    Returns the new count. Every write before the barrier is seen by every worker after it."""
    atomic_add(sync, ARRIVALS, 1)
    wait_until(sync, ARRIVALS, n_workers * (passed + 1))
    return passed + 1


@njit(inline="always")
def next_task(sync, base):
    """Claim the next task of a phase whose first task number is ``base``: its index in the
    phase (at least the phase's task count when none is left). Each worker takes exactly one
    number past the end of each phase, so the next phase starts at base + tasks + n_workers."""
    return atomic_add(sync, TASKS, 1) - base
