"""Build the native library of the entry kernels that loader.py loads:

    fastnn build        (or: python -m fastnn.native.build)

1. Train and evaluate small networks on Numba's JIT for each model dtype and each kind of input
   (uint8 pixels, real values): each entry kernel is then compiled for the argument types that
   fastnn passes it.
2. Wrap each of those signatures in a C function of one argument, an array of int64 slots that
   hold the arrays' data pointers and shapes and the scalars (a Numba cfunc that rebuilds the
   arrays with carray and calls the kernel). One argument: ctypes converts each argument it
   passes in about half a microsecond, and these kernels take up to 120.
3. Keep only that function visible and let LLVM drop what it no longer reaches: the kernels use
   NumPy's error model, so no path is left that calls into Python or Numba's runtime.
4. Emit position-independent code for this CPU, link it with the C compiler (cc, or $CC) into
   one shared library, and write the manifest last: a reader never sees half a build. It
   records the library file's size and SHA-256 and the CPU it was built for, which the loader
   checks before it loads the file.

It takes about as long as compiling the kernels once (one to five minutes here); it also fills Numba's
cache. Without a C compiler it fails, and fastnn goes on running on the JIT.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import llvmlite.binding as ll
import numpy as np
from llvmlite import ir
from numba import carray, cfunc, types
from numba.extending import intrinsic

from ..errors import FastnnError
from ..kernels import args
from ..kernels.tuning import INLINING_THRESHOLD
from .loader import DIRECTORY, ENTRY_POINTS, MANIFEST, _library, cpu, file_record, fingerprint

# What the library may take from the process: the C library and libm.
ALLOWED_EXTERNAL = {"exp", "expf", "log", "logf", "log1p", "log1pf", "tanh", "tanhf", "erf", "erff", "sqrt", "sqrtf", "pow",
                    "powf", "memset", "memcpy",
                    "memmove", "sched_yield", "usleep", "clock_gettime"}


class Unsupported(Exception):
    """A signature the C wrapper cannot express (its arrays are not C-contiguous and writeable)."""


def use_a_cache_of_these_sources() -> None:
    """Compile into a Numba cache keyed by every kernel source. Numba keys its own on the file of
    the function it caches, not on the files that function inlines (layers.py, optim.py, ...):
    after an edit of those, a build would otherwise link stale machine code. Effective only
    before the kernels' modules are imported, as in ``fastnn build``; NUMBA_CACHE_DIR wins."""
    import numba

    if not os.environ.get("NUMBA_CACHE_DIR") and not any(m.startswith("fastnn.kernels.train") for m in sys.modules):
        caches = DIRECTORY / "numba-cache"
        for old in caches.glob("*"):  # other sources' caches serve no build again
            if old.name != fingerprint()[:16]:
                shutil.rmtree(old, ignore_errors=True)
        numba.config.CACHE_DIR = str(caches / fingerprint()[:16])


def compile_entry_kernels() -> None:
    """Run fit and evaluate on the JIT once per model dtype and kind of input, so that every
    entry kernel gets compiled for the argument types fastnn really passes."""
    from ..data.datasets import read_csv
    from ..many import fit_many
    from ..model import MLP

    use_a_cache_of_these_sources()
    rng = np.random.default_rng(0)
    pixels = (rng.integers(1, 256, (64, 24)) * (rng.random((64, 24)) < 0.3)).astype(np.uint8)
    y = np.arange(64) % 3
    saved = os.environ.get("FASTNN_NATIVE")
    os.environ["FASTNN_NATIVE"] = "0"  # an older library must not take these calls
    _library.cache_clear()
    try:
        for dtype in (np.float32, np.float64):
            for X in (pixels, pixels.astype(dtype) / 255):
                # pixels=None: uint8 stays bytes (the kernels' pixel table), real inputs stay real
                model = MLP([24, 40, 3], dtype=dtype.__name__, pixels=None)
                model.fit(X, y, epochs=1, batch_size=16, threads=1)
                model.evaluate(X, y)
                fit_many([MLP([24, 40, 3], dtype=dtype.__name__, seed=s, pixels=None) for s in range(2)], X, y,
                         threads=1)
        with tempfile.TemporaryDirectory() as folder:  # the digits CSV reader's parser
            csv = Path(folder) / "digits.csv"
            csv.write_text("label,pixel0,pixel1\n1,0,255\n")
            read_csv(csv)
    finally:
        os.environ.pop("FASTNN_NATIVE") if saved is None else os.environ.update(FASTNN_NATIVE=saved)
        _library.cache_clear()


@intrinsic
def _pointer(typingctx, address, dtype):
    """The int64 ``address`` as a pointer to values of the Numba type ``dtype``."""
    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(sig.return_type))

    return types.CPointer(dtype.dtype)(address, dtype), codegen


@intrinsic
def _float(typingctx, bits):
    """The float64 whose bits are the int64 ``bits``."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(bits), codegen


# How the wrapper reads a scalar from its int64 slot (native.SLOT_FORMATS packs it).
_SCALAR_FROM_SLOT = {"int64": "{}", "uint64": "np.uint64({})", "float64": "as_float({})",
                     "float32": "np.float32(as_float({}))", "bool": "({} != 0)"}


def c_wrapper(kernel, signature) -> tuple:
    """(a cfunc ``void f(const int64 *slots)`` that calls ``kernel`` with the arguments unpacked
    from the slots as native.Kernel packs them, the leaf type names of its arguments as
    native.key_of reads them)."""
    leaf_types, n_slots = [], 0

    def rebuild(t) -> str:
        nonlocal n_slots
        if isinstance(t, types.BaseNamedTuple):  # args.Net, Data, Buffers, Opt
            return t.instance_class.__name__ + "(" + "".join(rebuild(e) + ", " for e in t.types) + ")"
        if isinstance(t, types.BaseTuple):
            return "(" + "".join(rebuild(e) + ", " for e in t.types) + ")"
        at = n_slots
        if isinstance(t, types.Array):
            if t.layout != "C" or not t.mutable or not t.aligned:
                raise Unsupported(str(t))
            leaf_types.append(f"{t.dtype}[{t.ndim}]")
            n_slots += 1 + t.ndim
            shape = "".join(f"s[{at + 1 + d}], " for d in range(t.ndim))
            return f"carray(pointer(s[{at}], np.{t.dtype}), ({shape}))"
        if str(t) not in _SCALAR_FROM_SLOT:
            raise Unsupported(str(t))
        leaf_types.append(str(t))
        n_slots += 1
        return _SCALAR_FROM_SLOT[str(t)].format(f"s[{at}]")

    call = ", ".join(rebuild(t) for t in signature)
    namespace = {"kernel": kernel, "carray": carray, "np": np, "pointer": _pointer, "as_float": _float,
                 **{cls.__name__: cls for cls in (args.Net, args.Data, args.Buffers, args.Opt, args.Hyper)}}
    exec(f"def entry(slots):\n    s = carray(slots, ({n_slots},), np.int64)\n    kernel({call})\n", namespace)
    return cfunc(types.void(types.voidptr))(namespace["entry"]), leaf_types


def object_code(wrapper, export_as: str, machine) -> bytes:
    """The wrapper's module as object code, with only ``export_as`` (the wrapper) visible."""
    module = ll.parse_assembly(wrapper.inspect_llvm())
    for function in module.functions:
        if not function.is_declaration:
            if function.name == wrapper.native_name:
                function.name = export_as
            else:
                function.linkage = "internal"
    for variable in module.global_variables:
        if not variable.is_declaration:
            variable.linkage = "internal"
    # IPSCCP sees that the kernel only ever returns "no error"; the wrapper's error path (into
    # Python's C API) then folds away, and global DCE removes what only it used.
    passes = ll.create_new_module_pass_manager()
    passes.add_ipsccp_pass()
    passes.add_simplify_cfg_pass()
    passes.add_global_dead_code_eliminate_pass()
    passes.add_strip_dead_prototype_pass()
    passes.run(module, ll.create_pass_builder(machine, ll.create_pipeline_tuning_options(speed_level=0)))
    # Then LLVM's O3 over the whole module: Numba optimised each function on its own, but with
    # every function internal, the layers' helpers (most called from one place) are inlined into
    # their loops and lose their unused arguments (an array is seven machine words). The same
    # float operations in the same order: tests/test_native.py checks the results bit for bit.
    tuning = ll.create_pipeline_tuning_options(speed_level=3)
    tuning.inlining_threshold = INLINING_THRESHOLD
    optimizer = ll.create_pass_builder(machine, tuning)
    optimizer.getModulePassManager().run(module, optimizer)
    external = {f.name for f in module.functions if f.is_declaration and not f.name.startswith("llvm.")}
    external |= {v.name for v in module.global_variables if v.is_declaration}
    if external - ALLOWED_EXTERNAL:
        raise Unsupported(f"{export_as} still needs {sorted(external - ALLOWED_EXTERNAL)}")
    return machine.emit_object(module)


def build(directory: Path = DIRECTORY) -> dict:
    """Compile, wrap and link the entry kernels into ``directory``; returns the manifest."""
    compile_entry_kernels()
    target = ll.Target.from_triple(ll.get_process_triple())
    machine = target.create_target_machine(cpu=ll.get_host_cpu_name(), features=ll.get_host_cpu_features().flatten(),
                                           opt=3, reloc="pic", codemodel="default")
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"fingerprint": fingerprint(), "cpu": cpu(), "kernels": {}}
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        objects = []
        for name, module in ENTRY_POINTS.items():
            kernel = getattr(__import__(f"fastnn.kernels.{module}", fromlist=[name]), name)
            for signature in kernel.signatures:
                if any(isinstance(t, types.Literal) for t in signature):
                    continue  # compiled for a call from another kernel (a literal argument), not from Python
                symbol = f"fastnn_{name}_{len(manifest['kernels'].get(name, []))}"
                try:
                    wrapper, leaf_types = c_wrapper(kernel, signature)
                    code = object_code(wrapper, symbol, machine)
                except Unsupported as reason:
                    print(f"  {symbol}: left to the JIT ({reason})", file=sys.stderr)
                    continue
                objects.append(Path(scratch) / f"{symbol}.o")
                objects[-1].write_bytes(code)
                manifest["kernels"].setdefault(name, []).append({"symbol": symbol, "types": leaf_types})
        # A new file name each build: a process that has the old library loaded keeps it intact.
        manifest["library"] = f"kernels-{manifest['fingerprint'][:12]}-{time.time_ns()}.so"
        compiler = os.environ.get("CC", "cc")
        try:
            linked = subprocess.run([compiler, "-shared", "-o", str(directory / manifest["library"]),
                                     *map(str, objects), "-lm"], capture_output=True, text=True)
        except FileNotFoundError:
            raise FastnnError(f"no C compiler ({compiler}) to link the native library: install one or name it "
                              "in CC; until then fastnn runs on Numba's JIT") from None
        if linked.returncode != 0:
            raise FastnnError(f"linking the native library with {compiler} failed: {linked.stderr}")
        write_manifest(directory, manifest)
    # Older libraries go; a build that finished meanwhile may have replaced the manifest, so
    # the one to keep is whichever it names now.
    current = json.loads((directory / MANIFEST).read_text())["library"]
    for old in directory.glob("kernels-*.so"):
        if old.name != current:
            old.unlink(missing_ok=True)
    return manifest


def write_manifest(directory: Path, manifest: dict) -> dict:
    """Record in ``manifest`` the size and SHA-256 of the library file it names in
    ``directory``, and write it there as the library's manifest, in one step (a reader sees the
    old manifest or the new one); returns it."""
    manifest.update(file_record(directory / manifest["library"]))
    unfinished = directory / f".{MANIFEST}.{os.getpid()}"
    unfinished.write_text(json.dumps(manifest, indent=1))
    os.replace(unfinished, directory / MANIFEST)
    return manifest


def main() -> None:
    started = time.perf_counter()
    manifest = build()
    built = ", ".join(f"{name} x{len(entries)}" for name, entries in manifest["kernels"].items())
    print(f"built {DIRECTORY / manifest['library']} ({built}) in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
