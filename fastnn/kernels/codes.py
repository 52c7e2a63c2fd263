"""Integer codes and sizes shared by the kernels and the Python side (this module imports no
Numba, so the Python side can use them without loading it)."""


def _vector_bytes() -> int:
    """The kernels' SIMD vector: 64 bytes (AVX-512) on a CPU with AVX-512F, else 32 (AVX2). On
    this project's AMD EPYC (Zen 4), 64 against 32, two threads (bench.ab): 784-10-10 0.94x the
    time of an epoch, 784-128-10 and 784-512-10 0.90x, 784-48-10 0.67x (its first layer now takes
    its gradient example by example). A function of the CPU alone, as the compiled kernels'
    caches are keyed by it."""
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

# Activations (kernels/layers.py); the output layer is SOFTMAX (classification) or IDENTITY.
IDENTITY, RELU, LEAKY_RELU, TANH, SIGMOID, SOFTMAX = 0, 1, 2, 3, 4, 5
ACTIVATION_CODES = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU, "tanh": TANH,
                    "sigmoid": SIGMOID}
LEAKY_SLOPE = 0.01

# Examples per block of the training and prediction kernels (kernels/train.py).
BLOCK = 16
# Rows per task of count_row_nonzeros and fill_rows (kernels/sparse.py).
CHUNK = 512
# Slots of a ``sync`` array shared by workers (kernels/sync.py), each group on a 64-byte cache
# line of its own so that workers taking tasks do not slow the barrier: the task and arrival
# counters; how workers with replicas meet (kernels/train.py, train_worker): the followers ready
# to join, the batch they join at + 1, whether worker 0 goes on alone; and what worker 0
# measured to choose (CPU cycles of the batches it timed alone and with the others, their
# counts, the batch from which it went on alone + 1).
TASKS, ARRIVALS = 0, 8
READY, JOIN, ALONE = 16, 17, 18
SOLO_CYCLES, SOLO_BATCHES, TEAM_CYCLES, TEAM_BATCHES, ALONE_FROM = 24, 25, 26, 27, 28
SYNC_SIZE = 32
# How worker 0 of workers with replicas decides whether the others stay (train_worker): by
# timing batches alone and with them; or, to test each path, keep them, or let them go as soon
# as they have been timed.
ADAPTIVE, KEEP_TEAM, LEAVE_AFTER_PROBE = 0, 1, 2
