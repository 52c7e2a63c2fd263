"""Machine limits measured in the same run as the benchmark.

Numbers from a shared, noisy machine only mean something next to timings
taken minutes apart on it, so bench.compare measures them itself: the numpy
BLAS in use, float32 GEMM speed, memory read bandwidth, and from these the
dense-arithmetic floor of one training epoch.
"""
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

# Set on some machines because old OpenBLAS builds misbehave there; a current
# numpy runs slower kernels with them, so the benchmark drops them for itself.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_REEXEC_MARK = "FASTNN_BENCH_REEXEC"


def reexec_without_openblas_overrides(module):
    """Re-run `python -m module` without OPENBLAS_CORETYPE/L2_SIZE, once.

    Call it first thing: the process is replaced, so nothing done before
    (numpy already imported with them, say) carries over.  Returns the names
    an earlier re-exec dropped (empty if none), so the caller can say so.
    """
    done = os.environ.get(_REEXEC_MARK)
    if done is not None:
        return done.split(",") if done else []
    found = [k for k in OPENBLAS_OVERRIDES if k in os.environ]
    if not found:
        return []
    env = {k: v for k, v in os.environ.items() if k not in found}
    env[_REEXEC_MARK] = ",".join(found)
    print(f"note: re-running this benchmark with {' and '.join(found)} unset", flush=True)
    os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], env)


def blas_description():
    """One line per BLAS library numpy uses: name, version, kernel, threads."""
    lines = []
    for lib in threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        lines.append(
            f"{lib.get('internal_api')} {lib.get('version')} "
            f"(kernel {lib.get('architecture', '?')}, {lib.get('threading_layer', '?')}, "
            f"{lib.get('num_threads')} threads) {os.path.basename(lib.get('filepath', ''))}"
        )
    return lines or ["no BLAS found by threadpoolctl"]


def _best_time(fn, min_seconds=0.3, max_reps=10_000):
    """Best wall time of fn(), repeated until min_seconds have passed.

    Best, not median: these are peaks, and noise on a shared machine only
    ever makes a run slower.
    """
    fn()  # warm caches and thread pools
    best, start, reps = float("inf"), time.perf_counter(), 0
    while reps < 3 or (time.perf_counter() - start < min_seconds and reps < max_reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        reps += 1
    return best


def gemm_gflops(m, k, n, threads):
    """float32 GFLOP/s of numpy's (m,k) @ (k,n) with `threads` BLAS threads."""
    rng = np.random.default_rng(0)
    a = rng.random((m, k), dtype=np.float32)
    b = rng.random((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    with threadpool_limits(threads, user_api="blas"):
        seconds = _best_time(lambda: np.matmul(a, b, out=out))
    return 2.0 * m * k * n / seconds / 1e9


def read_bandwidth_gbs(threads, nbytes=1 << 30):
    """GB/s of summing a float32 array of nbytes, split over `threads` threads.

    np.sum releases the GIL and runs on one core, so one Python thread per
    chunk lets all `threads` cores read at once.
    """
    x = np.ones(nbytes // 4, dtype=np.float32)
    chunks = np.array_split(x, threads)
    with ThreadPoolExecutor(threads) as pool:
        seconds = _best_time(lambda: list(pool.map(np.sum, chunks)), min_seconds=1.0)
    del chunks, x
    return nbytes / seconds / 1e9


def epoch_flops(n, widths):
    """FLOPs of the matrix products one epoch of an MLP must do, over every layer of `widths`
    (784, hidden..., 10): the same for SGD and Adam, for any batch size.

    Per sample and layer with fan-in a, fan-out b: forward 2ab, weight
    gradient 2ab, and input gradient 2ab except for the first layer (the
    input needs no gradient).  For 784-H-10 that is n*(4*784*H + 6*H*10); for
    784-H1-H2-10, n*(4*784*H1 + 6*H1*H2 + 6*H2*10).
    Biases, ReLU, softmax and the update (SGD's or Adam's, per batch, not per
    sample) are O(ab/batch) or smaller: ignored.
    """
    flops = 0
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        flops += (4 if i == 0 else 6) * a * b
    return float(n) * flops


FLOPS_FORMULA = ("n*(4*784*H1 + sum of 6*a*b over the later layers a->b), e.g. n*(4*784*H + 6*H*10) "
                 "for 784-H-10: fwd GEMMs + bwd dW of every layer, dA of all but the first; "
                 "optimizer updates not counted")


def measure(threads, shapes=((64, 784, 10), (64, 784, 128), (64, 784, 512))):
    """All machine numbers as a dict (GFLOP/s, GB/s, library lines): float32 GEMM rates of a
    2048-cube and of each (m, k, n) in shapes (bench.compare passes each case's first layer,
    (batch, 784, H1)), the best of them as peak_gflops."""
    gemm = {"2048x2048x2048": gemm_gflops(2048, 2048, 2048, threads)}
    for m, k, n in shapes:
        gemm[f"{m}x{k}x{n}"] = gemm_gflops(m, k, n, threads)
    return {
        "blas": blas_description(),
        "gemm_gflops": gemm,
        "peak_gflops": max(gemm.values()),  # the best rate seen: noise only slows
        "read_gbs": read_bandwidth_gbs(threads),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
    }


def cpu_snapshot():
    """(wall, busy CPU seconds of the whole machine, CPU seconds of this process)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # up to steal, no guest
    own = os.times()
    return time.perf_counter(), busy, own.user + own.system


def others_cores(start, end):
    """Cores that other processes kept busy on average between two snapshots.

    A core taken by someone else stalls every thread barrier of a
    multi-threaded trainer, so timings taken meanwhile are flagged.
    """
    wall = end[0] - start[0]
    if wall <= 0:
        return 0.0
    return max(0.0, ((end[1] - start[1]) - (end[2] - start[2])) / wall)


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
