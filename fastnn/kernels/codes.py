"""Integer codes shared by the kernels and the Python side (this module imports no Numba)."""

# Update rules (kernels/optim.py).
SGD, MOMENTUM, NESTEROV, RMSPROP, ADAM, ADAMW = 0, 1, 2, 3, 4, 5
OPTIMIZER_CODES = {"sgd": SGD, "momentum": MOMENTUM, "nesterov": NESTEROV, "rmsprop": RMSPROP,
                   "adam": ADAM, "adamw": ADAMW}

# Activations (kernels/layers.py); the output layer is SOFTMAX (classification) or IDENTITY.
IDENTITY, RELU, LEAKY_RELU, TANH, SIGMOID, SOFTMAX = 0, 1, 2, 3, 4, 5
ACTIVATION_CODES = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU, "tanh": TANH,
                    "sigmoid": SIGMOID}
LEAKY_SLOPE = 0.01
