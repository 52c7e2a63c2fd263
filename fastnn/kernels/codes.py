"""Integer codes and sizes shared by the kernels and the Python side (this module imports no
Numba, so the Python side can use them without loading it)."""

from .tuning import BLOCK, CHUNK  # noqa: F401 (for the kernels' callers)


def _vector_bytes() -> int:
    """The kernels' SIMD vector: 64 bytes (AVX-512) on a CPU with AVX-512F, else 32 (AVX2); the
    wider vectors measured faster at every width (docs/performance.md). A function of the CPU
    alone, as the compiled kernels' caches are keyed by it."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return 64 if "avx512f" in line.split() else 32
    except OSError:
        pass
    return 32


VECTOR_BYTES = _vector_bytes()

# Update rules (kernels/optim.py).
SGD, MOMENTUM, NESTEROV, RMSPROP, ADAM, ADAMW = 0, 1, 2, 3, 4, 5
OPTIMIZER_CODES = {"sgd": SGD, "momentum": MOMENTUM, "nesterov": NESTEROV, "rmsprop": RMSPROP,
                   "adam": ADAM, "adamw": ADAMW}

# Activations (kernels/layers.py). The output layer's code picks the loss: SOFTMAX (classes,
# cross-entropy), IDENTITY (regression, mean squared error) or SIGMOID (binary and multi-label,
# binary cross-entropy).
IDENTITY, RELU, LEAKY_RELU, TANH, SIGMOID, SOFTMAX, GELU, SILU = 0, 1, 2, 3, 4, 5, 6, 7
ACTIVATION_CODES = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU, "tanh": TANH,
                    "sigmoid": SIGMOID, "gelu": GELU, "silu": SILU}
LEAKY_SLOPE = 0.01

# Slots of a ``sync`` array shared by workers (the protocol: kernels/sync.py). The two counters
# that workers write all the time each have a 64-byte cache line of their own, so that workers
# taking tasks do not slow the barrier. The rest: set by the caller (PATIENCE: microseconds a
# wait may see no progress; STOP: stop after the current batch); and by the workers (STOP_AT:
# the batch they stop after + 1; ABORT: the batch + 1 of a wait that gave up, WHERE: which
# wait, WHO: whose, the worker's number + 1).
TASKS, ARRIVALS = 0, 8
PATIENCE, STOP, STOP_AT, ABORT, WHERE, WHO = 16, 17, 18, 19, 20, 21
SYNC_SIZE = 24
# The waits of kernels/train.py, for WHERE: the barriers after phase 1 and phase 2 of a batch,
# the two of a clipped batch around its gradient's norm, and the one after the first layer's
# half sums of workers that split it.
AFTER_EXAMPLES, AFTER_UPDATE, BEFORE_NORM, AFTER_NORM, AFTER_HALVES = 1, 2, 3, 4, 5
WAIT_NAMES = {AFTER_EXAMPLES: "the barrier after the forward and backward passes",
              AFTER_UPDATE: "the barrier after the update", BEFORE_NORM: "the barrier before the gradient's norm",
              AFTER_NORM: "the barrier after the gradient's norm",
              AFTER_HALVES: "the barrier after the first layer's half sums"}
# parse_csv_rows' verdict on the lines it read (kernels/csv.py): all plain rows, or one was not.
PLAIN, NOT_PLAIN = 0, 1
# How workers share a batch (kernels/train.py, train_worker; fastnn/parallel.py chooses): on
# the model's weights; each on a replica of its own; two that split the first layer by inputs.
SHARED, REPLICAS, SPLIT, CHUNKS = 0, 1, 2, 3
