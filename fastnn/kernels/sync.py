"""How workers that share one training loop meet: a task counter, a barrier, and bounded waits.

The protocol, in one place (kernels/train.py follows it; fastnn/workers.py runs the threads):

- The shared state is one int64 array, ``sync``, zero at the start of a kernel call but for
  PATIENCE, which the caller sets. Its counters only ever grow, so nothing is reset between
  phases, and each worker keeps its own count of the barriers it has passed.
- A phase is a list of tasks. A worker claims the next one with ``next_task`` (one atomic add on
  TASKS) until none is left; nobody waits there.
- A phase ends at a ``barrier``: each worker adds one to ARRIVALS, then waits until all
  n_workers have arrived. Every write made before the barrier is seen by every worker after it.
- Stopping: the caller sets STOP (Ctrl-C, SIGTERM). Worker 0 alone reads it, once a batch,
  before the batch's last barrier, and names the batch to stop after in STOP_AT (its number
  + 1). Each worker compares STOP_AT with *its own* batch after that barrier. A flag that names
  its batch cannot be misread one batch early: worker 0 cannot write it for batch b + 1
  before the other workers are past batch b's first barrier, and so past reading it for b.
- Every wait ends. A worker that waits sees the others' progress as the counter it waits on
  moving. With none for PATIENCE microseconds, it gives up: it writes ABORT (the batch + 1),
  WHERE (which wait) and WHO (its worker number + 1), and returns. A worker that finds ABORT
  set in a wait, or after passing a barrier, returns too. The caller then keeps the weights
  from before the call and raises WorkerStalledError.

Waiting escalates: a short spin (a late peer is usually microseconds away), then yielding the
core (the peer may be waiting for this very core: threads pinned to one CPU, more workers than
cores), then sleeping between looks, which is also where the clock is read.
"""

import os
import platform

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .codes import ABORT, ARRIVALS, PATIENCE, TASKS, WHERE, WHO
from .simd import _pointer

from .tuning import SLEEP_MICROSECONDS, SPINS_BEFORE_YIELD, YIELDS_BEFORE_SLEEP

# A build of its own for the stress tests: random delays at every synchronisation point, so
# that the interleavings a host's timing rarely gives are tried. Numba keys its cache on the
# source, not on this value, so such a build must compile into a cache of its own.
JITTER = os.environ.get("FASTNN_SYNC_JITTER", "0") == "1"
if JITTER and not os.environ.get("NUMBA_CACHE_DIR", "").rstrip("/").endswith("jitter"):
    raise RuntimeError("FASTNN_SYNC_JITTER=1 needs a Numba cache of its own: set NUMBA_CACHE_DIR to a folder "
                       "named 'jitter'")

sched_yield = types.ExternalFunction("sched_yield", types.int32())
usleep = types.ExternalFunction("usleep", types.int32(types.uint32))


@intrinsic
def atomic_add(typingctx, array, index, value):
    """array[index] += value as one atomic step (sequentially consistent); returns the old value."""
    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, array, args[0], args[1])
        return builder.atomic_rmw("add", ptr, context.cast(builder, args[2], sig.args[2], array.dtype), "seq_cst")

    return array.dtype(array, index, value), codegen


@intrinsic
def atomic_set_if_zero(typingctx, array, index, value):
    """array[index] = value if it holds 0, as one atomic step (sequentially consistent); returns
    the old value."""
    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, array, args[0], args[1])
        zero = context.get_constant(array.dtype, 0)
        new = context.cast(builder, args[2], sig.args[2], array.dtype)
        return builder.extract_value(builder.cmpxchg(ptr, zero, new, "seq_cst", "seq_cst"), 0)

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
    """The CPU's cycle counter (x86 RDTSC): cheap, for the jitter's random delays."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                            "llvm.readcyclecounter")
        return builder.call(fn, [])

    return types.int64(), codegen


@intrinsic
def monotonic_microseconds(typingctx):
    """The C library's clock_gettime(CLOCK_MONOTONIC) in microseconds."""
    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        timespec = ir.LiteralStructType([i64, i64])  # tv_sec, tv_nsec (64-bit Linux)
        slot = cgutils.alloca_once(builder, timespec)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), [ir.IntType(32), timespec.as_pointer()]), "clock_gettime")
        builder.call(fn, [ir.Constant(ir.IntType(32), 1), slot])  # 1: CLOCK_MONOTONIC
        seconds = builder.load(cgutils.gep_inbounds(builder, slot, 0, 0))
        nanoseconds = builder.load(cgutils.gep_inbounds(builder, slot, 0, 1))
        return builder.add(builder.mul(seconds, ir.Constant(i64, 1_000_000)),
                           builder.sdiv(nanoseconds, ir.Constant(i64, 1000)))

    return types.int64(), codegen


@njit(inline="always")
def jitter():
    """With JITTER, a random delay: mostly none, often a few microseconds, now and then two
    milliseconds (as if the thread lost its core). Compiled away otherwise."""
    if JITTER:
        draw = (cycles() * 0x9E3779B97F4A7C15) >> 54  # 10 fairly random bits of the cycle count
        if draw < 16:
            usleep(2000)
        elif draw < 400:
            usleep(draw)


@njit(inline="always")
def give_up(sync, batch, where, worker):
    """Record the first wait to give up (see the module's docstring): two that give up at once
    must not both write ABORT, which names the batch."""
    if atomic_set_if_zero(sync, ABORT, batch + 1) == 0:
        sync[WHERE], sync[WHO] = where, worker + 1


@njit(inline="always")
def wait_until(sync, index, target, batch, where, worker):
    """Wait until sync[index] >= target. Returns False (and the caller must return) when some
    wait gave up: this one, after PATIENCE microseconds in which sync[index] did not move, or
    another worker's."""
    seen = atomic_load(sync, index)
    looks, since = 0, 0
    while seen < target:
        if looks < SPINS_BEFORE_YIELD:
            pause()
        elif looks < SPINS_BEFORE_YIELD + YIELDS_BEFORE_SLEEP:
            sched_yield()
        else:
            if atomic_load(sync, ABORT) > 0:
                return False
            now = monotonic_microseconds()
            if since == 0:
                since = now
            elif now - since > sync[PATIENCE]:
                give_up(sync, batch, where, worker)
                return False
            usleep(SLEEP_MICROSECONDS)
        looks += 1
        latest = atomic_load(sync, index)
        if latest != seen:  # progress: the others are alive
            seen, since = latest, 0
    return True


@njit(inline="always")
def barrier(sync, n_workers, passed, batch, where, worker):
    """Wait until all n_workers have arrived here; ``passed``: barriers this worker passed before.
    Returns the new count, or -1 when the call is to end (see wait_until). Every write before the
    barrier is seen by every worker after it."""
    jitter()
    atomic_add(sync, ARRIVALS, 1)
    if not wait_until(sync, ARRIVALS, n_workers * (passed + 1), batch, where, worker):
        return -1
    jitter()
    if atomic_load(sync, ABORT) > 0:
        return -1
    return passed + 1


@njit(inline="always")
def next_task(sync, base):
    """Claim the next task of a phase whose first task number is ``base``: its index in the
    phase (at least the phase's task count when none is left). Each worker takes exactly one
    number past the end of each phase, so the next phase starts at base + tasks + n_workers."""
    jitter()
    return atomic_add(sync, TASKS, 1) - base
