"""Integer codes and sizes shared by the kernels and the Python side (this module imports no
Numba, so the Python side can use them without loading it)."""

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
# Length of a ``sync`` array shared by workers (kernels/sync.py): two counters, each on its own
# 64-byte cache line so that workers taking tasks do not slow the barrier.
TASKS, ARRIVALS = 0, 8
SYNC_SIZE = 16
