"""The entry kernels, built ahead of time into one shared library (see build_native.py) and
called through ctypes: a process that finds the library neither imports Numba nor compiles.

The library's manifest lists, for each kernel, the argument types it was built for, and a
fingerprint of the kernels' sources and of the CPU. A call with other types, a library built
from other sources or for another CPU, or FASTNN_NATIVE=0 runs the kernel on Numba's JIT
instead: the same code, compiled the same way, so the results are bit-identical.
ctypes releases the GIL during a call, as the JIT kernels do (nogil), so workers run in parallel.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib
import json
import os
import platform
from pathlib import Path
from typing import Callable

import numpy as np

DIRECTORY = Path(__file__).with_name("_native")
MANIFEST = "manifest.json"

# The kernels that Python calls, and the module of their JIT form.
ENTRY_POINTS = {"train_worker": "train", "train_many_worker": "train", "predict_worker": "train",
                "count_row_nonzeros": "sparse", "fill_rows": "sparse"}

_SCALARS = {"int64": ctypes.c_int64, "uint64": ctypes.c_uint64, "float32": ctypes.c_float,
            "float64": ctypes.c_double, "bool": ctypes.c_bool}


def fingerprint() -> str:
    """What a library must be built from to serve this process: the kernels' sources and the
    CPU (its code uses the CPU's own instructions)."""
    digest = hashlib.sha256(_cpu().encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            lines = [line for line in info if line.startswith(("model name", "flags"))]
        return platform.machine() + "".join(lines[:2])
    except OSError:
        return platform.machine() + platform.processor()


def leaf_type(value) -> str | None:
    """The type name of one argument leaf as the library's manifest spells it (Numba's names),
    or None for what the library cannot take (arrays that are not C-contiguous, aligned and
    writeable: the JIT compiles those separately)."""
    if isinstance(value, np.ndarray):
        flags = value.flags
        return f"{value.dtype.name}[{value.ndim}]" if flags.c_contiguous and flags.aligned and flags.writeable else None
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, np.generic):
        return value.dtype.name
    return None


def leaves(args) -> list:
    """The arguments with their tuples flattened, depth first."""
    flat = []
    for arg in args:
        flat.extend(leaves(arg) if isinstance(arg, tuple) else [arg])
    return flat


def c_argument_types(types: list[str]) -> list:
    """ctypes types of the C function for these leaf types: an array is its data pointer
    followed by its shape."""
    out = []
    for name in types:
        if name.endswith("]"):
            out += [ctypes.c_void_p] + [ctypes.c_int64] * int(name[name.index("[") + 1:-1])
        else:
            out.append(_SCALARS[name])
    return out


class Kernel:
    """One entry kernel: its native builds by argument types, and its JIT form as a fallback."""

    def __init__(self, name: str, builds: dict[tuple, Callable]):
        self.name, self.builds = name, builds

    def __call__(self, *args) -> None:
        flat = leaves(args)
        build = self.builds.get(tuple(leaf_type(value) for value in flat)) if self.builds else None
        if build is None:
            return self.jit()(*args)
        values = []
        for value in flat:
            if isinstance(value, np.ndarray):
                values.append(value.ctypes.data)
                values.extend(value.shape)
            else:
                values.append(value)
        build(*values)

    def jit(self) -> Callable:
        module = importlib.import_module(f"{__package__}.{ENTRY_POINTS[self.name]}")
        return getattr(module, self.name)


def kernel(name: str) -> Kernel:
    """Entry kernel ``name`` (one of ENTRY_POINTS): native where the library serves the call."""
    return Kernel(name, _library().get(name, {}))


@functools.cache
def _library() -> dict[str, dict[tuple, Callable]]:
    """Each kernel's native builds by argument types; empty when there is no usable library."""
    if os.environ.get("FASTNN_NATIVE", "1") == "0":
        return {}
    try:
        manifest = json.loads((DIRECTORY / MANIFEST).read_text())
        if manifest["fingerprint"] != fingerprint():
            return {}
        library = ctypes.CDLL(str(DIRECTORY / manifest["library"]))
    except (OSError, ValueError, KeyError):
        return {}
    builds: dict[str, dict[tuple, Callable]] = {}
    for name, entries in manifest["kernels"].items():
        for entry in entries:
            function = getattr(library, entry["symbol"])
            function.argtypes, function.restype = c_argument_types(entry["types"]), None
            builds.setdefault(name, {})[tuple(entry["types"])] = function
    return builds


def status() -> str:
    """A line saying whether this process runs the entry kernels natively, and why not."""
    if os.environ.get("FASTNN_NATIVE", "1") == "0":
        return "JIT only: FASTNN_NATIVE=0"
    if not (DIRECTORY / MANIFEST).exists():
        return "JIT only: no native library (build it with: python -m fastnn.kernels.build_native)"
    if not _library():
        return "JIT only: the native library was built from other sources or for another CPU (rebuild it)"
    return "native: " + ", ".join(f"{name} ({len(builds)} type sets)" for name, builds in _library().items())
