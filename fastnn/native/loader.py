"""The entry kernels, built ahead of time into one shared library (see fastnn/native/build.py) and
called through ctypes: a process that finds the library neither imports Numba nor compiles.

The library's manifest lists, for each kernel, the argument types it was built for; a
fingerprint of the kernels' sources; the CPU it was built for; and the library file's size and
SHA-256. The loader checks all of them before it loads the file: dlopen maps a truncated or
altered file as it is, and the process would die of SIGBUS or SIGILL on its first call. A call
with other types, a library that fails a check, or FASTNN_NATIVE=0 runs the kernel on Numba's
JIT instead: the same code, compiled the same way, so the results are bit-identical; missing()
says why. ctypes releases the GIL during a call, as the JIT kernels do (nogil), so workers run
in parallel.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib
import json
import os
import platform
import stat
import struct
import threading
from ctypes import addressof, c_char
from pathlib import Path
from types import ModuleType
from typing import Callable

import numpy as np

DIRECTORY = Path(__file__).with_name("_native")
KERNELS = Path(__file__).parents[1] / "kernels"
MANIFEST = "manifest.json"

# The kernels that Python calls, and the module of their JIT form.
ENTRY_POINTS = {"train_worker": "train", "train_many_worker": "train", "predict_worker": "train",
                "count_row_nonzeros": "sparse", "fill_rows": "sparse", "input_fingerprint": "sparse",
                "shuffle_order": "order", "parse_csv_rows": "csv"}

# How native.Kernel packs each leaf into the wrapper's int64 slots (struct formats, 8 bytes a
# slot): a float32 goes as the float64 of the same value, converted back exactly in the wrapper.
SLOT_FORMATS = {"int64": "q", "uint64": "Q", "float32": "d", "float64": "d", "bool": "?7x"}
# Numba's names of the dtypes and scalar types the library may hold.
_DTYPES = {name: np.dtype(name) for name in ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
                                             "uint64", "float32", "float64")}
_SCALAR_TYPES = {bool: "bool", np.bool_: "bool", int: "int64", np.int64: "int64", np.uint64: "uint64",
                 float: "float64", np.float64: "float64", np.float32: "float32"}


# What a manifest holds, and the JSON type of each entry: a manifest without one was written by
# an older fastnn, whose library the loader cannot check.
MANIFEST_FIELDS = {"fingerprint": str, "cpu": dict, "library": str, "size": int, "sha256": str, "kernels": dict}


def fingerprint() -> str:
    """What a library must be built from to serve this process: the kernels' sources."""
    digest = hashlib.sha256()
    for path in sorted(KERNELS.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cpu() -> dict:
    """The CPU that compiled code is for: its architecture, its feature flags (as
    /proc/cpuinfo names them) and the width of the kernels' SIMD vectors, which the Python side's
    buffer layout follows (kernels/codes.py)."""
    from ..kernels.codes import VECTOR_BYTES  # imports no Numba

    return {"machine": platform.machine(), "flags": sorted(_cpu_flags()), "vector_bytes": VECTOR_BYTES}


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith(("flags", "Features")):  # x86, ARM
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def file_record(path: Path) -> dict:
    """The size and SHA-256 of the file at ``path``, as the manifest records its library."""
    with open(path, "rb") as file:
        return {"size": os.fstat(file.fileno()).st_size, "sha256": _sha256(file.fileno())}


def _sha256(fd: int) -> str:
    digest = hashlib.sha256()
    while chunk := os.read(fd, 1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


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
        module = jit_module(ENTRY_POINTS[self.name])
        return getattr(module, self.name)


_jit_modules: dict[str, ModuleType] = {}
_jit_lock = threading.Lock()


def jit_module(name: str) -> ModuleType:
    """fastnn.kernels.``name``, its kernels and those it calls reading Numba's cache as checked
    files (see numba_cache.py) before any of them compiles: how Python reaches a JIT kernel."""
    if name in _jit_modules:
        return _jit_modules[name]
    with _jit_lock:  # workers may ask at once; the check must be in place before either compiles
        if name not in _jit_modules:
            module = importlib.import_module(f"fastnn.kernels.{name}")
            try:
                from .numba_cache import check_kernel_caches

                check_kernel_caches()
            except (ImportError, AttributeError, TypeError):  # a Numba with other internals: its own cache as is
                pass
            _jit_modules[name] = module
        return _jit_modules[name]


def kernel(name: str) -> Kernel:
    """Entry kernel ``name`` (one of ENTRY_POINTS): native where the library serves the call."""
    return Kernel(name, _library().get(name, {}))


class Unusable(Exception):
    """Why the native library cannot serve this process: the reason missing() gives."""


def _rebuild(what: str) -> Unusable:
    return Unusable(f"{what}: rebuild it with: fastnn build")


_unusable_because: str | None = None  # why the last _library() found no library to use


@functools.cache
def _library() -> dict[str, dict[tuple, tuple]]:
    """Each kernel's native builds by argument types, each a (C function, slot layout); empty
    when there is no usable library, and then _unusable_because says why."""
    global _unusable_because
    try:
        builds = load(DIRECTORY)
    except Unusable as reason:
        _unusable_because = str(reason)
        return {}
    _unusable_because = None
    return builds


def load(directory: Path) -> dict[str, dict[tuple, tuple]]:
    """The builds of the library in ``directory`` (as _library() gives them); raises Unusable
    where it cannot serve. The file is loaded only once its manifest, the kernels' sources,
    this CPU and the file itself check out."""
    if os.environ.get("FASTNN_NATIVE", "1") == "0":
        raise Unusable("FASTNN_NATIVE=0")
    if os.environ.get("FASTNN_SYNC_JITTER", "0") == "1":  # the stress tests' build (sync.JITTER)
        raise Unusable("FASTNN_SYNC_JITTER=1 asks for the kernels with random delays, which the library is not")
    manifest = read_manifest(directory)
    if manifest["fingerprint"] != fingerprint():
        raise _rebuild("the native library was built from other kernel sources")
    check_cpu(manifest["cpu"])
    library = open_checked(directory / manifest["library"], manifest["size"], manifest["sha256"])
    try:
        builds = _builds(library, manifest["kernels"])
    except (TypeError, ValueError, KeyError, AttributeError, struct.error):
        raise _rebuild(f"the native library's manifest {directory / MANIFEST} is malformed (kernels)") from None
    if not builds:
        raise _rebuild("the native library holds no kernels")
    return builds


def read_manifest(directory: Path) -> dict:
    """The manifest in ``directory``, with each of MANIFEST_FIELDS of its type; raises Unusable."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise Unusable("no native library (build it with: fastnn build)") from None
    except OSError as error:
        raise _rebuild(f"the native library's manifest {path} is unreadable ({error.strerror})") from None
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested past the parser's depth
        raise _rebuild(f"the native library's manifest {path} is unreadable (not JSON)") from None
    if not isinstance(manifest, dict):
        raise _rebuild(f"the native library's manifest {path} is malformed (not an object)")
    lacking = [field for field in MANIFEST_FIELDS if field not in manifest]
    if lacking:
        raise _rebuild(f"the native library was built by another fastnn version (its manifest lacks "
                       f"{', '.join(lacking)})")
    wrong = [field for field, kind in MANIFEST_FIELDS.items() if not isinstance(manifest[field], kind)]
    if not wrong and Path(manifest["library"]).name != manifest["library"]:  # a file of the directory
        wrong = ["library"]
    if wrong:
        raise _rebuild(f"the native library's manifest {path} is malformed ({', '.join(wrong)})")
    return manifest


def check_cpu(built_for: dict) -> None:
    """Raise Unusable unless this CPU runs code built for ``built_for`` (cpu() where it was
    built) and the kernels here use the same vector width."""
    here = cpu()
    machine, flags, vector_bytes = (built_for.get(key) for key in ("machine", "flags", "vector_bytes"))
    if not (isinstance(machine, str) and isinstance(flags, list) and all(isinstance(f, str) for f in flags)
            and isinstance(vector_bytes, int)):
        raise _rebuild("the native library's manifest is malformed (cpu)")
    if machine != here["machine"]:
        raise _rebuild(f"the native library was built for {machine}, this machine is {here['machine']}")
    lacking = sorted(set(flags) - set(here["flags"]))
    if lacking:
        raise _rebuild(f"the native library was built for a CPU with features this CPU lacks ({', '.join(lacking)})")
    if vector_bytes != here["vector_bytes"]:
        raise _rebuild(f"the native library was built for {vector_bytes}-byte vectors, the kernels here use "
                       f"{here['vector_bytes']}-byte ones")


def open_checked(path: Path, size: int, sha256: str) -> ctypes.CDLL:
    """The library at ``path``, loaded only if it is a regular file of the ``size`` and
    ``sha256`` its build recorded; raises Unusable otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except FileNotFoundError:
        raise _rebuild(f"the native library {path} is missing") from None
    except OSError as error:
        raise _rebuild(f"the native library {path} is unreadable ({error.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _rebuild(f"the native library {path} is not a regular file")
        if info.st_size != size:
            raise _rebuild(f"the native library {path} changed since it was built (size/SHA-256 mismatch: "
                           f"{info.st_size:,} bytes, not {size:,})")
        if _sha256(fd) != sha256:
            raise _rebuild(f"the native library {path} changed since it was built (size/SHA-256 mismatch: "
                           "its SHA-256 differs)")
        # The file just checked, by its descriptor: not whatever the name points to by now.
        by_descriptor = Path(f"/proc/self/fd/{fd}")
        return ctypes.CDLL(str(by_descriptor if by_descriptor.exists() else path))
    except OSError as error:
        raise _rebuild(f"the native library {path} cannot be loaded ({error})") from None
    finally:
        os.close(fd)


def _builds(library: ctypes.CDLL, kernels: dict) -> dict[str, dict[tuple, tuple]]:
    builds: dict[str, dict[tuple, tuple]] = {}
    for name, entries in kernels.items():
        for entry in entries:
            if not entry["symbol"].startswith(f"fastnn_{name}_"):  # the build's own functions only
                raise ValueError(entry["symbol"])
            function = getattr(library, entry["symbol"])
            function.argtypes, function.restype = [ctypes.c_char_p], None
            key = tuple(key_of(t) for t in entry["types"])
            builds.setdefault(name, {})[key] = (function, slot_layout(entry["types"]))
    return builds


def missing() -> str | None:
    """Why this process runs the entry kernels on the JIT though the user did not ask for it
    (FASTNN_NATIVE=0); None when the native library serves them."""
    if _library() or os.environ.get("FASTNN_NATIVE", "1") == "0":
        return None
    return _unusable_because or "the native library is not in use"


def status() -> str:
    """A line saying whether this process runs the entry kernels natively, and why not."""
    if os.environ.get("FASTNN_NATIVE", "1") == "0":
        return "JIT only: FASTNN_NATIVE=0"
    reason = missing()
    if reason is not None:
        return f"JIT only: {reason}"
    return "native: " + ", ".join(f"{name} ({len(builds)} type sets)" for name, builds in _library().items())
