"""The kernels at the vector width this CPU does not use (codes.VECTOR_BYTES: 64 bytes with
AVX-512, else 32), against the NumPy reference: a process of their own compiles them afresh."""

import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import reference
from fastnn.kernels.codes import VECTOR_BYTES
from helpers import random_pixels, to_reference

# Trains each case from data.npz and saves the weights before and after.
SCRIPT = """
import sys
import numpy as np
import fastnn.kernels.codes as codes
import fastnn.layout as layout
codes.VECTOR_BYTES = layout.VECTOR_BYTES = int(sys.argv[1])  # before kernels/simd.py is imported
from fastnn import MLP
data = np.load(sys.argv[2])
out = {}
for i, (sizes, dtype, threads) in enumerate(eval(sys.argv[3])):
    model = MLP(sizes, pixels=True, seed=i, dtype=dtype)  # uint8 pixels, as reference.scale_pixels
    out[f"before{i}"] = np.concatenate([np.append(W.ravel(), b) for W, b in model.get_weights()])
    model.fit(data["X"], data["y"], epochs=1, batch_size=32, lr=0.1, shuffle=False, threads=threads)
    out[f"after{i}"] = np.concatenate([np.append(W.ravel(), b) for W, b in model.get_weights()])
import fastnn.kernels.simd as simd
assert simd.VECTOR_BYTES == layout.Layout((2, 3)).lanes * 4 == int(sys.argv[1])  # the width really taken
np.savez(sys.argv[4], **out)
"""
# A narrow first layer (by example), a wide one (by input unit, on two threads), three layers.
CASES = [([784, 16, 10], "float32", 1), ([784, 90, 10], "float64", 2), ([784, 24, 12, 5], "float64", 2)]


def unflatten(flat, sizes):
    params, at = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        W = flat[at:at + n_in * n_out].reshape(n_in, n_out)
        b = flat[at + n_in * n_out:at + (n_in + 1) * n_out]
        params.append((W, b))
        at += (n_in + 1) * n_out
    return params


@pytest.mark.slow  # compiling every kernel afresh at the other width takes about three minutes
def test_the_other_vector_width_trains_as_the_reference(tmp_path):
    X, rng = random_pixels(320, 784, seed=4, density=0.2)
    y = rng.integers(0, 5, 320)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    other = 32 if VECTOR_BYTES == 64 else 64
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "FASTNN_NATIVE": "0"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(other), str(tmp_path / "data.npz"), repr(CASES),
                           str(tmp_path / "out.npz")], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = np.load(tmp_path / "out.npz")
    for i, (sizes, dtype, _) in enumerate(CASES):
        start = to_reference(unflatten(out[f"before{i}"].astype(np.float64), sizes))
        expected = reference.sgd_epoch(start, reference.scale_pixels(X), y, 0.1, 32)
        got = unflatten(out[f"after{i}"].astype(np.float64), sizes)
        error = max(max(np.abs(W - Wr.T).max() / np.abs(Wr).max(), np.abs(b - br.ravel()).max() / np.abs(br).max())
                    for (W, b), (Wr, br) in zip(got, expected))
        assert error < (1e-5 if dtype == "float32" else 1e-12), (sizes, dtype, error)
