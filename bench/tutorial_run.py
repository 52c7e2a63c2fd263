"""The tutorial's whole run against `fastnn train --tutorial`, each as a fresh process, timed from
outside: read the Kaggle CSV, 500 full-batch iterations of 784-10-10 (alpha 0.10), print the
training and dev accuracy.

    FASTNN_DATA=../shared/data python -m bench.tutorial_run [--runs 3] [--dtype float64]

Each round runs both, in turn; the table gives the medians and the median of the rounds' ratios.
The NumPy script is the tutorial's code (pandas to read, examples as columns), float64 as
NumPy computes it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NUMPY = """
import sys
import numpy as np
import pandas as pd

data = np.array(pd.read_csv(sys.argv[1]))
m, n = data.shape
np.random.shuffle(data)
data_dev = data[0:1000].T
Y_dev, X_dev = data_dev[0], data_dev[1:n] / 255.
data_train = data[1000:m].T
Y_train, X_train = data_train[0], data_train[1:n] / 255.

def init_params():
    W1 = np.random.rand(10, 784) - 0.5
    b1 = np.random.rand(10, 1) - 0.5
    W2 = np.random.rand(10, 10) - 0.5
    b2 = np.random.rand(10, 1) - 0.5
    return W1, b1, W2, b2

def ReLU(Z):
    return np.maximum(Z, 0)

def softmax(Z):
    A = np.exp(Z) / sum(np.exp(Z))
    return A

def forward_prop(W1, b1, W2, b2, X):
    Z1 = W1.dot(X) + b1
    A1 = ReLU(Z1)
    Z2 = W2.dot(A1) + b2
    A2 = softmax(Z2)
    return Z1, A1, Z2, A2

def one_hot(Y):
    one_hot_Y = np.zeros((Y.size, Y.max() + 1))
    one_hot_Y[np.arange(Y.size), Y] = 1
    return one_hot_Y.T

def backward_prop(Z1, A1, Z2, A2, W1, W2, X, Y):
    one_hot_Y = one_hot(Y)
    dZ2 = A2 - one_hot_Y
    dW2 = 1 / m * dZ2.dot(A1.T)
    db2 = 1 / m * np.sum(dZ2, axis=1, keepdims=True)
    dZ1 = W2.T.dot(dZ2) * (Z1 > 0)
    dW1 = 1 / m * dZ1.dot(X.T)
    db1 = 1 / m * np.sum(dZ1, axis=1, keepdims=True)
    return dW1, db1, dW2, db2

def update_params(W1, b1, W2, b2, dW1, db1, dW2, db2, alpha):
    return W1 - alpha * dW1, b1 - alpha * db1, W2 - alpha * dW2, b2 - alpha * db2

def get_accuracy(predictions, Y):
    return np.sum(predictions == Y) / Y.size

def gradient_descent(X, Y, alpha, iterations):
    W1, b1, W2, b2 = init_params()
    for i in range(iterations):
        Z1, A1, Z2, A2 = forward_prop(W1, b1, W2, b2, X)
        dW1, db1, dW2, db2 = backward_prop(Z1, A1, Z2, A2, W1, W2, X, Y)
        W1, b1, W2, b2 = update_params(W1, b1, W2, b2, dW1, db1, dW2, db2, alpha)
        if i % 10 == 0:
            print("Iteration:", i, get_accuracy(np.argmax(A2, 0), Y))
    return W1, b1, W2, b2

W1, b1, W2, b2 = gradient_descent(X_train, Y_train, 0.10, 500)
print("dev accuracy", get_accuracy(np.argmax(forward_prop(W1, b1, W2, b2, X_dev)[3], 0), Y_dev))
"""


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    args = parser.parse_args()
    csv = Path(os.environ.get("FASTNN_DATA", "../shared/data")) / "digit-recognizer" / "train.csv.gz"
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "tutorial.py"
        script.write_text(NUMPY)
        jobs = {"fastnn train --tutorial": [sys.executable, "-m", "fastnn.cli", "train", "--tutorial", "--data", str(csv),
                                            "--dtype", args.dtype],
                "the tutorial's NumPy script": [sys.executable, str(script), str(csv)]}
        times: dict[str, list[float]] = {name: [] for name in jobs}
        for _ in range(args.runs):
            for name, command in jobs.items():
                times[name].append(timed(command))
    fastnn, numpy = times.values()
    print(f"{'whole process':30s} {'median s':>9s}  runs")
    for name, seconds in times.items():
        print(f"{name:30s} {statistics.median(seconds):9.2f}  {' '.join(f'{s:.2f}' for s in seconds)}")
    print(f"NumPy / fastnn, median of the rounds' ratios: {statistics.median(n / f for n, f in zip(numpy, fastnn)):.2f}x "
          f"(fastnn {args.dtype})")


if __name__ == "__main__":
    main()
