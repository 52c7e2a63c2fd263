"""The entry kernels, built ahead of time into one shared library (see fastnn/native/build.py) and
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
import struct
from ctypes import addressof, c_char
from pathlib import Path
from typing import Callable

import numpy as np

DIRECTORY = Path(__file__).with_name("_native")
KERNELS = Path(__file__).parents[1] / "kernels"
MANIFEST = "manifest.json"

# The kernels that Python calls, and the module of their JIT form.
ENTRY_POINTS = {"train_worker": "train", "train_many_worker": "train", "predict_worker": "train",
                "count_row_nonzeros": "sparse", "fill_rows": "sparse", "input_fingerprint": "sparse",
                "shuffle_order": "order"}

# How native.Kernel packs each leaf into the wrapper's int64 slots (struct formats, 8 bytes a
# slot): a float32 goes as the float64 of the same value, converted back exactly in the wrapper.
SLOT_FORMATS = {"int64": "q", "uint64": "Q", "float32": "d", "float64": "d", "bool": "?7x"}
# Numba's names of the dtypes and scalar types the library may hold.
_DTYPES = {name: np.dtype(name) for name in ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
                                             "uint64", "float32", "float64")}
_SCALAR_TYPES = {bool: "bool", np.bool_: "bool", int: "int64", np.int64: "int64", np.uint64: "uint64",
                 float: "float64", np.float64: "float64", np.float32: "float32"}


def fingerprint() -> str:
    """What a library must be built from to serve this process: the kernels' sources and the
    CPU (its code uses the CPU's own instructions)."""
    digest = hashlib.sha256(_cpu().encode())
    for path in sorted(KERNELS.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            lines = [line for line in info if line.startswith(("model name", "flags"))]
        return platform.machine() + "".join(lines[:2])
    except OSError:
        return platform.machine() + platform.processor()


def key_of(name: str):
    """pack's key for a type name in the manifest (Numba's names: "float32[2]", "int64")."""
    if name.endswith("]"):
        dtype, ndim = name[:-1].split("[")
        return _DTYPES[dtype], int(ndim)
    return name


def slot_layout(types: list[str]) -> struct.Struct:
    """The packing of these leaf types into the wrapper's slots: an array is its data pointer,
    then its shape."""
    formats = [("q" * (1 + int(name[name.index("[") + 1:-1])) if name.endswith("]") else SLOT_FORMATS[name])
               for name in types]
    return struct.Struct("=" + "".join(formats))


def pack(args: tuple) -> tuple[tuple, list] | None:
    """What a build must have been made for to take ``args``, and the values of its slots; None
    for an argument none can take. Tuples are flattened, depth first. An array's key is its
    (dtype, ndim), its slots its data pointer (0 when empty: no kernel reads it) and shape; an
    array must be C-contiguous, aligned and writeable (the JIT compiles others separately). A
    scalar's key is the name of its type. Cheap on purpose: a call has dozens of leaves, and
    fit makes one per block of batches."""
    key: list = []
    values: list = []
    return (tuple(key), values) if _pack(args, key, values) else None


def _pack(args: tuple, key: list, values: list) -> bool:
    for value in args:
        if isinstance(value, tuple):
            if not _pack(value, key, values):
                return False
        elif isinstance(value, np.ndarray):
            if not value.flags.carray:
                return False
            key.append((value.dtype, value.ndim))
            # Through the buffer protocol: four times faster than value.ctypes.data.
            values.append(addressof(c_char.from_buffer(value)) if value.size else 0)
            values.extend(value.shape)
        else:
            scalar = _SCALAR_TYPES.get(type(value))
            if scalar is None:
                return False
            key.append(scalar)
            values.append(value)
    return True


class Kernel:
    """One entry kernel: its native builds by argument types, and its JIT form as a fallback."""

    def __init__(self, name: str, builds: dict[tuple, tuple]):
        self.name, self.builds = name, builds

    def __call__(self, *args) -> None:
        if not self.builds:
            return self.jit()(*args)
        packed = pack(args)
        build = self.builds.get(packed[0]) if packed is not None else None
        if build is None:
            return self.jit()(*args)
        function, layout = build
        function(layout.pack(*packed[1]))

    def jit(self) -> Callable:
        """The kernel's Numba dispatcher (importing Numba, compiling on a cold cache)."""
        module = importlib.import_module(f"fastnn.kernels.{ENTRY_POINTS[self.name]}")
        return getattr(module, self.name)


def kernel(name: str) -> Kernel:
    """Entry kernel ``name`` (one of ENTRY_POINTS): native where the library serves the call."""
    return Kernel(name, _library().get(name, {}))


@functools.cache
def _library() -> dict[str, dict[tuple, tuple]]:
    """Each kernel's native builds by argument types, each a (C function, slot layout); empty
    when there is no usable library."""
    if os.environ.get("FASTNN_NATIVE", "1") == "0" or os.environ.get("FASTNN_SYNC_JITTER", "0") == "1":
        return {}  # asked for the JIT; or for the stress tests' build (sync.JITTER), which the library is not
    try:
        manifest = json.loads((DIRECTORY / MANIFEST).read_text())
        if manifest["fingerprint"] != fingerprint():
            return {}
        library = ctypes.CDLL(str(DIRECTORY / manifest["library"]))
        builds: dict[str, dict[tuple, tuple]] = {}
        for name, entries in manifest["kernels"].items():
            for entry in entries:
                function = getattr(library, entry["symbol"])
                function.argtypes, function.restype = [ctypes.c_char_p], None
                key = tuple(key_of(t) for t in entry["types"])
                builds.setdefault(name, {})[key] = (function, slot_layout(entry["types"]))
        return builds
    except (OSError, ValueError, KeyError, AttributeError):  # unreadable, or from another version
        return {}


def missing() -> str | None:
    """Why this process runs the entry kernels on the JIT though the user did not ask for it
    (FASTNN_NATIVE=0); None when the native library serves them."""
    if _library() or os.environ.get("FASTNN_NATIVE", "1") == "0":
        return None
    if not (DIRECTORY / MANIFEST).exists():
        return "no native library (build it with: fastnn build)"
    return "the native library was built from other sources or for another CPU (rebuild it: fastnn build)"


def status() -> str:
    """A line saying whether this process runs the entry kernels natively, and why not."""
    if os.environ.get("FASTNN_NATIVE", "1") == "0":
        return "JIT only: FASTNN_NATIVE=0"
    reason = missing()
    if reason is not None:
        return f"JIT only: {reason}"
    return "native: " + ", ".join(f"{name} ({len(builds)} type sets)" for name, builds in _library().items())
