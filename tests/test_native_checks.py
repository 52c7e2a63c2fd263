"""The checks that keep a damaged native library and a corrupt Numba cache from crashing fastnn.

The native library is checked against its manifest (size, SHA-256, CPU, sources) before it is
loaded: each damaged copy here must leave the process on the JIT, with the true reason in
status(). Each runs in a subprocess on a copy of the library in tmp_path (the real one is never
touched), so that a library loaded anyway (SIGBUS, SIGTRAP) fails the test instead of killing
pytest. A corrupt file in Numba's cache must count as a miss: the kernel compiles again.
"""

import hashlib
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastnn.native import loader as native

REQUIRED = os.environ.get("FASTNN_REQUIRE_NATIVE") == "1"  # .ci/run builds the library first
REBUILD = ": rebuild it with: fastnn build"

# Loads the library from the folder argv[1] names and says which runs; with argv[2] "call", shuffles
# 50 positions by the entry kernel shuffle_order, native or on the JIT, else says which it would
# run on; then whether Numba was imported.
SHUFFLE = """
import sys
from pathlib import Path
import numpy as np
from fastnn.native import loader
loader.DIRECTORY = Path(sys.argv[1])
print(loader.status())
if sys.argv[2] == "call":
    order = np.zeros(50, np.int64)
    loader.kernel("shuffle_order")(order, np.uint64(7))
    print(" ".join(map(str, order)))
else:
    print("native" if loader.kernel("shuffle_order").builds else "JIT")
print("numba imported" if "numba" in sys.modules else "no numba")
"""


def run_python(code: str, *args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def expected_order() -> str:
    order = np.zeros(50, np.int64)
    native.kernel("shuffle_order")(order, np.uint64(7))
    return " ".join(map(str, order))


@pytest.fixture
def library_copy(tmp_path) -> Path:
    """A folder holding a copy of the built native library and its manifest."""
    if not native._library():
        if REQUIRED:
            pytest.fail(f"the native library is required here: {native.status()}")
        pytest.skip(f"no usable native library here ({native.status()})")
    manifest = native.read_manifest(native.DIRECTORY)
    folder = tmp_path / "native"
    folder.mkdir()
    shutil.copy2(native.DIRECTORY / native.MANIFEST, folder / native.MANIFEST)
    shutil.copy2(native.DIRECTORY / manifest["library"], folder / manifest["library"])
    return folder


def library_file(folder: Path) -> Path:
    return folder / json.loads((folder / native.MANIFEST).read_text())["library"]


def edit_manifest(folder: Path, **changes) -> None:
    manifest = json.loads((folder / native.MANIFEST).read_text())
    manifest.update(changes)
    for key in [key for key, value in changes.items() if value is None]:
        del manifest[key]
    (folder / native.MANIFEST).write_text(json.dumps(manifest))


def symbol_offset(path: Path, name: str) -> int:
    """The file offset of the code of the exported function ``name`` of the ELF64 shared library at ``path``."""
    data = path.read_bytes()
    (section_at,), (entry_size, count) = struct.unpack_from("<Q", data, 0x28), struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, section_at + i * entry_size) for i in range(count)]
    for _, kind, _, _, offset, size, link, _, _, symbol_size in sections:
        if kind == 11:  # SHT_DYNSYM, names in the section it links to
            names_at = sections[link][4]
            for at in range(offset, offset + size, symbol_size):
                name_at, _, _, index, value, _ = struct.unpack_from("<IBBHQQ", data, at)
                if data[names_at + name_at:data.index(b"\0", names_at + name_at)] == name.encode():
                    return value - sections[index][3] + sections[index][4]  # address - sh_addr + sh_offset
    raise LookupError(name)


def truncate_to(size):
    def damage(folder):
        with open(library_file(folder), "r+b") as file:
            file.truncate(size)
    return damage


def overwrite(offset_of, data: bytes):
    def damage(folder):
        path = library_file(folder)
        with open(path, "r+b") as file:
            file.seek(offset_of(path))
            file.write(data)
    return damage


def replace_library_with(make):
    def damage(folder):
        path = library_file(folder)
        path.unlink()
        make(path)
    return damage


def another_library(path: Path) -> None:
    import numpy.random.bit_generator as compiled  # any other shared library

    shutil.copyfile(compiled.__file__, path)


def manifest_text(text: str):
    return lambda folder: (folder / native.MANIFEST).write_text(text)


def manifest_cpu(**changes):
    def damage(folder):
        cpu = json.loads((folder / native.MANIFEST).read_text())["cpu"]
        edit_manifest(folder, cpu={**cpu, **{key: value(cpu[key]) for key, value in changes.items()}})
    return damage


CHANGED = "the native library {library} changed since it was built (size/SHA-256 mismatch: "
DAMAGES = {
    "truncated to 4,096 bytes": (truncate_to(4096), CHANGED + "4,096 bytes, not {size:,})"),
    "truncated to 1,000 bytes": (truncate_to(1000), CHANGED + "1,000 bytes, not {size:,})"),
    "truncated to 65,536 bytes": (truncate_to(65536), CHANGED + "65,536 bytes, not {size:,})"),
    "truncated to 300,000 bytes": (truncate_to(300_000), CHANGED + "300,000 bytes, not {size:,})"),
    "empty": (truncate_to(0), CHANGED + "0 bytes, not {size:,})"),
    "200 random bytes in its code": (overwrite(lambda path: symbol_offset(path, "fastnn_train_worker_0") + 64,
                                               np.random.default_rng(0).bytes(200)), CHANGED + "its SHA-256 differs)"),
    "0xCC at the start of a function": (overwrite(lambda path: symbol_offset(path, "fastnn_shuffle_order_0"), b"\xcc"),
                                        CHANGED + "its SHA-256 differs)"),
    "deleted": (lambda folder: library_file(folder).unlink(), "the native library {library} is missing"),
    "another library copied over it": (replace_library_with(another_library),
                                       CHANGED + "{other:,} bytes, not {size:,})"),
    "a FIFO in its place": (replace_library_with(os.mkfifo), "the native library {library} is not a regular file"),
    "a broken manifest": (manifest_text('{"fingerprint": "c1'),
                          "the native library's manifest {folder}/manifest.json is unreadable (not JSON)"),
    "a manifest nested past the parser's depth": (manifest_text("[" * 100_000),
                                                  ("the native library's manifest {folder}/manifest.json is unreadable "
                                                   "(not JSON)")),
    "a manifest from before the checks": (lambda folder: edit_manifest(folder, cpu=None, size=None, sha256=None),
                                          ("the native library was built by another fastnn version (its manifest "
                                           "lacks cpu, size, sha256)")),
    "a manifest naming a file outside its folder": (lambda folder: edit_manifest(folder, library="../kernels.so"),
                                                    ("the native library's manifest {folder}/manifest.json is "
                                                     "malformed (library)")),
    "built from other kernel sources": (lambda folder: edit_manifest(folder, fingerprint="0" * 64),
                                        "the native library was built from other kernel sources"),
    "built for a CPU feature this CPU lacks": (manifest_cpu(flags=lambda flags: flags + ["fastnn_imaginary"]),
                                               ("the native library was built for a CPU with features this CPU "
                                                "lacks (fastnn_imaginary)")),
    "built for another vector width": (manifest_cpu(vector_bytes=lambda width: 96 - width),
                                       ("the native library was built for {other_width}-byte vectors, the kernels "
                                        "here use {width}-byte ones")),
    "built for another machine": (manifest_cpu(machine=lambda machine: "pdp11"),
                                  "the native library was built for pdp11, this machine is {machine}"),
}


def test_an_intact_copy_of_the_library_serves_the_kernels_without_numba(library_copy):
    done = run_python(SHUFFLE, library_copy, "call")
    assert done.returncode == 0, done.stderr
    status, order, numba = done.stdout.splitlines()
    assert status == native.status() and status.startswith("native: train_worker (")
    assert order == expected_order()
    assert numba == "no numba"


@pytest.mark.parametrize("damage, reason", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_damaged_library_is_never_loaded_and_the_kernels_run_on_the_jit(library_copy, damage, reason):
    import numpy.random.bit_generator

    here = native.cpu()
    details = {"library": library_file(library_copy), "size": library_file(library_copy).stat().st_size,
               "folder": library_copy, "machine": here["machine"], "width": here["vector_bytes"],
               "other_width": 96 - here["vector_bytes"],
               "other": Path(numpy.random.bit_generator.__file__).stat().st_size}
    damage(library_copy)
    done = run_python(SHUFFLE, library_copy, "ask")
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr}"  # -7: SIGBUS, -5: SIGTRAP
    # Checked without Numba; the JIT's own runs: test_fastnn_train_falls_back_..., and the ones below.
    assert done.stdout.splitlines() == ["JIT only: " + reason.format(**details) + REBUILD, "JIT", "no numba"]


@pytest.mark.parametrize("damage", ["truncated to 4,096 bytes", "0xCC at the start of a function"])
def test_a_damaged_library_leaves_the_kernel_to_the_jit_with_the_same_result(library_copy, damage):
    DAMAGES[damage][0](library_copy)
    done = run_python(SHUFFLE, library_copy, "call")
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr}"
    assert done.stdout.splitlines()[1:] == [expected_order(), "numba imported"]


def test_fastnn_train_falls_back_to_the_same_weights_and_says_why(library_copy, tmp_path):
    rng = np.random.default_rng(0)
    digits = (rng.integers(1, 256, (200, 784)) * (rng.random((200, 784)) < 0.2)).astype(np.uint8)
    data = tmp_path / "train.csv"
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    np.savetxt(data, np.column_stack([rng.integers(0, 10, 200), digits]), fmt="%d", delimiter=",", header=header,
               comments="")
    train = ("import sys\nfrom pathlib import Path\nfrom fastnn.native import loader\n"
             "loader.DIRECTORY = Path(sys.argv[1])\nfrom fastnn.cli.main import main\n"
             "sys.exit(main(['train', '--data', sys.argv[2], '--epochs', '1', '--quiet', '--out', sys.argv[3]]))\n")
    native_run = run_python(train, library_copy, data, tmp_path / "native.npz")
    assert native_run.returncode == 0, native_run.stderr
    assert "note:" not in native_run.stderr
    library = library_file(library_copy)
    size = library.stat().st_size
    truncate_to(4096)(library_copy)
    jit_run = run_python(train, library_copy, data, tmp_path / "jit.npz")
    assert jit_run.returncode == 0, f"exit status {jit_run.returncode}: {jit_run.stderr}"
    assert jit_run.stderr.startswith(f"note: the native library {library} changed since it was built (size/SHA-256 "
                                     f"mismatch: 4,096 bytes, not {size:,}){REBUILD}; until then the kernels compile")
    with np.load(tmp_path / "native.npz") as expected, np.load(tmp_path / "jit.npz") as got:
        np.testing.assert_array_equal(got["params"], expected["params"])


def test_write_manifest_records_the_size_and_sha256_the_loader_checks(library_copy):
    from fastnn.native.build import write_manifest

    manifest = json.loads((library_copy / native.MANIFEST).read_text())
    del manifest["size"], manifest["sha256"]
    written = write_manifest(library_copy, manifest)
    library = library_file(library_copy).read_bytes()
    assert (written["size"], written["sha256"]) == (len(library), hashlib.sha256(library).hexdigest())
    assert native.read_manifest(library_copy) == written
    assert sorted(path.name for path in library_copy.iterdir()) == sorted([native.MANIFEST, written["library"]])
    # An intact copy: safe to load here.
    assert {name: builds.keys() for name, builds in native.load(library_copy).items()} == {
        name: builds.keys() for name, builds in native._library().items()}


# Shuffles by the entry kernel shuffle_order, on the JIT, and says whether Numba's cache served it.
CACHED_SHUFFLE = """
import numpy as np
from fastnn.native import loader
order = np.zeros(50, np.int64)
shuffle = loader.kernel("shuffle_order")
shuffle(order, np.uint64(7))
stats = shuffle.jit().stats
print(" ".join(map(str, order)))
print(f"cache hits {sum(stats.cache_hits.values())}, misses {sum(stats.cache_misses.values())}")
"""


def shuffle_with_cache(cache: Path) -> list[str]:
    done = run_python(CACHED_SHUFFLE, env={"NUMBA_CACHE_DIR": str(cache), "FASTNN_NATIVE": "0"})
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.fixture(scope="module")
def filled_cache(tmp_path_factory) -> Path:
    """A Numba cache holding shuffle_order and the kernels it calls, and nothing else."""
    cache = tmp_path_factory.mktemp("numba-cache")
    assert shuffle_with_cache(cache) == [expected_order(), "cache hits 0, misses 1"]
    return cache


def test_an_intact_cache_serves_the_kernel(filled_cache, tmp_path):
    shutil.copytree(filled_cache, tmp_path / "cache")
    assert shuffle_with_cache(tmp_path / "cache") == [expected_order(), "cache hits 1, misses 0"]


def unpickles(path: Path) -> bool:
    """Whether ``path`` reads as Numba wrote it: an index is the version, then (stamp, overloads)."""
    with open(path, "rb") as file:
        try:
            if path.suffix == ".nbi":
                pickle.load(file)
                return bool(pickle.loads(file.read())[1])
            return pickle.load(file) is not None
        except Exception:
            return False


CORRUPTIONS = {"garbage": lambda data: np.random.default_rng(len(data)).bytes(300),
               "truncated": lambda data: data[:len(data) // 2],
               "empty": lambda data: b""}


@pytest.mark.parametrize("kind", ["nbi", "nbc"])
@pytest.mark.parametrize("corruption", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_a_corrupt_cache_file_is_compiled_again_and_replaced(filled_cache, tmp_path, kind, corruption):
    cache = tmp_path / "cache"
    shutil.copytree(filled_cache, cache)
    files = sorted(cache.rglob(f"*.{kind}"))
    assert [path.name.split("-")[0] for path in files if path.name.endswith("1.nbc") or kind == "nbi"] == [
        "order.draw_below", "order.shuffle_order", "order.stream_word"]
    for path in files:
        path.write_bytes(corruption(path.read_bytes()))
        assert not unpickles(path)
    assert shuffle_with_cache(cache) == [expected_order(), "cache hits 0, misses 1"]
    assert [path.name for path in files if not unpickles(path)] == []  # written anew by the compile


@pytest.mark.slow
def test_a_fit_compiles_again_over_a_corrupt_cache_of_its_kernel_with_the_same_weights(tmp_path):
    """train_worker, the largest kernel: tens of seconds to compile again."""
    fit = ("import sys, numpy as np, fastnn\n"
           "X = (np.arange(64 * 20).reshape(64, 20) % 7 == 0).astype(np.uint8) * 200\n"
           "model = fastnn.MLP([20, 10, 2], pixels=True)\n"
           "model.fit(X, np.arange(64) % 2, epochs=2, threads=1)\n"
           "print(model.get_params().tobytes().hex())\n")
    cache = tmp_path / "cache"
    shutil.copytree(os.environ["NUMBA_CACHE_DIR"], cache, ignore=shutil.ignore_patterns("jitter"))  # the stress tests'
    env = {"NUMBA_CACHE_DIR": str(cache), "FASTNN_NATIVE": "0"}
    before = run_python(fit, env=env)
    assert before.returncode == 0, before.stderr
    files = sorted(cache.rglob("train.train_worker-*.nb[ic]"))
    assert files
    for path in files:
        path.write_bytes(path.read_bytes()[:100])
    after = run_python(fit, env=env)
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout
    assert [path.name for path in cache.rglob("train.train_worker-*.nbi") if not unpickles(path)] == []
