"""Hostile data, configs and sizes (issue 24): one clear line, never a traceback, a hang or a
runaway allocation.

The command-line cases run `fastnn` in a subprocess, as a person would, with a hard timeout (a
hang fails the test instead of stalling it) and, where memory is the danger, an address-space
cap (RLIMIT_AS): the checks must refuse before allocating, not after the machine is full.
Command-line option values that are refused are usage errors (status 2, "fastnn train: error:
argument ..."), like every bad option value; everything else exits 1 with "fastnn: error: ...".
"""

from __future__ import annotations

import gzip
import json
import math
import os
import resource
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastnn import MLP, DataError, FastnnError
from fastnn.cli import config, metrics_log
from fastnn.cli import main as cli_main
from fastnn.data import checks, datasets
from fastnn.sweeps import SweepError, load_config

GiB = 1 << 30
HEADER = "label," + ",".join(f"pixel{i}" for i in range(784)) + "\n"
# Runs the command line with a limit lowered first, so that a test reaches it in a second.
PATCHED_MAIN = ("import sys, fastnn.data.datasets as d; {patch}; "
                "from fastnn.cli.main import main; sys.exit(main(sys.argv[1:]))")


def fastnn(*args, memory: int | None = None, timeout: float = 60, patch: str | None = None,
           env: dict | None = None) -> subprocess.CompletedProcess:
    """`fastnn ARGS` in a subprocess; ``memory``: an RLIMIT_AS cap in bytes; ``patch``: Python
    run before main() (to lower a limit)."""
    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    command = ([sys.executable, "-c", PATCHED_MAIN.format(patch=patch)] if patch
               else [sys.executable, "-m", "fastnn.cli"])
    result = subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                            preexec_fn=cap_memory if memory else None, env={**os.environ, **(env or {})})
    # Without the native library, train notes that it compiles (tests/test_native.py checks it).
    result.stderr = "".join(line for line in result.stderr.splitlines(keepends=True)
                            if not line.startswith("note: "))
    return result


def assert_one_error_line(result: subprocess.CompletedProcess, *words: str, status: int = 1) -> str:
    """Exit ``status``, and stderr exactly one line: "fastnn: error: ..." holding ``words``
    (status 2, a usage error: "fastnn <command>: error: argument ...")."""
    assert result.returncode == status, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    prefix = "fastnn: error: " if status == 1 else "fastnn train: error: argument "
    assert lines[0].startswith(prefix), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """An untrained 784-10-10 classifier: evaluate and predict read their data after it."""
    path = tmp_path_factory.mktemp("model") / "m.npz"
    MLP([784, 10, 10]).save(path)
    return path


@pytest.fixture
def data_env(shared_data) -> dict:
    return {"FASTNN_DATA": str(shared_data)}


# -- only regular files are read ---------------------------------------------------------------------

def mnist_folder_with(folder: Path, shared_data: Path, name: str) -> Path:
    """An MNIST folder whose file ``name`` is missing, for the test to put something else there;
    the other three are links to the real files."""
    folder.mkdir(parents=True)
    for other in datasets.MNIST_FILES:
        if other != name:
            (folder / f"{other}.gz").symlink_to(shared_data / "mnist" / f"{other}.gz")
    return folder / name


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
@pytest.mark.parametrize("where", ["csv", "mnist folder"])
def test_a_fifo_as_data_is_refused_without_opening_it(command, where, tmp_path, model_file, shared_data):
    """A writer waits at the FIFO with a few bytes: fastnn used to open it for the 2-byte gzip
    probe (reading all of them into its buffer) and close it, the writer exited, and fastnn
    opened the FIFO again and waited forever for another writer."""
    if where == "csv":
        fifo = data = tmp_path / "data.csv"
    else:
        data = tmp_path / "mnist"
        fifo = mnist_folder_with(data, shared_data, "train-images-idx3-ubyte" if command == "train"
                                 else "t10k-images-idx3-ubyte")
    os.mkfifo(fifo)
    content = b"label,pixel0\n5,0\n"
    writer = subprocess.Popen([sys.executable, "-c", f"open({str(fifo)!r}, 'wb').write({content!r})"],
                              stderr=subprocess.DEVNULL)
    try:
        args = ["train", "--data", data] if command == "train" else [command, model_file, "--data", data]
        result = fastnn(*args, timeout=20)
        never_let_in = writer.poll() is None  # still waiting for a reader to open the FIFO
    finally:
        writer.kill()
        writer.wait()
    assert_one_error_line(result, f"{fifo} is not a regular file (it is a FIFO)")
    assert never_let_in


def test_a_device_and_folders_where_files_are_expected(tmp_path, model_file, shared_data):
    zero = tmp_path / "zero.csv"
    zero.symlink_to("/dev/zero")  # endless, if anything read it
    assert_one_error_line(fastnn("predict", model_file, "--data", zero, timeout=20),
                          f"CSV file {zero} is not a regular file (it is a character device)")
    assert_one_error_line(fastnn("train", "--data", "/dev/zero", timeout=20),
                          "Data path /dev/zero is not a regular file (it is a character device)")

    folder_csv = tmp_path / "folder.csv"
    folder_csv.mkdir()
    assert_one_error_line(fastnn("train", "--data", folder_csv, timeout=20),
                          f"CSV file {folder_csv} is a folder, not a regular file")
    images = mnist_folder_with(tmp_path / "mnist", shared_data, "t10k-images-idx3-ubyte")
    images.mkdir()
    assert_one_error_line(fastnn("evaluate", model_file, "--data", tmp_path / "mnist", timeout=20),
                          f"IDX file {images} is a folder, not a regular file")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_error_line(fastnn("evaluate", model_file, "--data", empty, timeout=20),
                          f"The MNIST IDX files were not found in {empty}")


def test_fifos_as_config_and_metrics_log(tmp_path):
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    assert_one_error_line(fastnn("train", "--config", fifo, timeout=20),
                          f"config file {fifo} is not a regular file (it is a FIFO)")
    log = tmp_path / "log.jsonl"
    os.mkfifo(log)
    assert_one_error_line(fastnn("plot", "--metrics", log, timeout=20),
                          f"metrics log {log} is not a regular file (it is a FIFO)")
    with pytest.raises(SweepError, match="sweep config .* is not a regular file"):
        load_config(fifo)


# -- sizes: checked arithmetically before anything is allocated ----------------------------------------

def test_huge_layers_on_the_command_line_and_in_a_config(tmp_path, data_env):
    line = assert_one_error_line(fastnn("train", "--layers", "784,1000000,10", memory=2 * GiB, env=data_env),
                                 "--layers: layers 784-1000000-10 would have 795,000,010 parameters",
                                 "ulimit -v (RLIMIT_AS)", status=2)
    assert "GiB" in line
    toml = tmp_path / "big.toml"
    toml.write_text("layers = [784, 1000000, 10]\n")
    assert_one_error_line(fastnn("train", "--config", toml, memory=2 * GiB, env=data_env),
                          f"config file {toml}: layers 784-1000000-10 would have 795,000,010 parameters")


def test_layers_beyond_any_integer_type(tmp_path, data_env):
    huge = str(2**63)
    assert_one_error_line(fastnn("train", "--layers", f"784,{huge},10", env=data_env),
                          f"layers 784-{huge}-10 would have", "MAX_PARAMETERS", status=2)
    toml = tmp_path / "huge.toml"
    toml.write_text(f"layers = [784, {huge}, 10]\n")
    assert_one_error_line(fastnn("train", "--config", toml, env=data_env), "MAX_PARAMETERS")


def test_mlp_sizes_are_integers_and_bounded(monkeypatch):
    with pytest.raises(ValueError, match=r"positive integers, got \(784, True, 10\)"):
        MLP([784, True, 10])
    with pytest.raises(ValueError, match="positive integers"):
        MLP([784, np.bool_(True), 10])
    assert MLP([np.int64(3), np.uint16(4), 2]).sizes == (3, 4, 2)
    with pytest.raises(ValueError, match=f"would have {(784 + 1) * 2**63 + (2**63 + 1) * 10:,} parameters, "
                                         f"more than fastnn's limit of {checks.MAX_PARAMETERS:,}"):
        MLP([784, 2**63, 10])
    with pytest.raises(ValueError, match="<a 10,001-bit number>"):  # too long for str(): still one message
        MLP([784, 2**10000, 10])
    # A network under MAX_PARAMETERS that does not fit: refused before its buffer is allocated.
    monkeypatch.setattr(checks, "memory_available", lambda: (10 << 20, "that the test leaves"))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"784-4000-10 would have 3,180,010 parameters, which take about "
                                             r"60\.0 MiB to build .* more than the 10\.0 MiB that the test leaves"):
            MLP([784, 4000, 10])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert MLP([784, 10, 10]).sizes == (784, 10, 10)


def test_memory_available_follows_rlimit_as():
    code = ("import resource; from fastnn.data.checks import memory_available; "
            "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); print(*memory_available(), sep='|')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    available, bound = out.stdout.strip().split("|")
    used = (2 << 30) < float(available) < (3 << 30)  # the cap, less what the interpreter already maps
    assert used and bound == "that ulimit -v (RLIMIT_AS) leaves this process"


# -- compressed data: declared sizes against the file, decompressed sizes bounded -----------------

def idx_gzip_bomb(path: Path, shape: tuple[int, ...]) -> Path:
    """A gzip IDX file of ``shape`` zeros, about 1/1000 of their size: members of 1 MiB of
    zeros, compressed once and repeated (a gzip file may hold several)."""
    total = math.prod(shape)
    members, rest = divmod(total, 1 << 20)
    zeros = gzip.compress(bytes(1 << 20), compresslevel=9, mtime=0)
    header = bytes([0, 0, 8, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape)
    with open(path, "wb") as f:
        f.write(gzip.compress(header + bytes(rest), mtime=0))
        for _ in range(members):
            f.write(zeros)
    return path


@pytest.fixture
def idx_bomb(tmp_path, shared_data) -> Path:
    """An MNIST folder whose training images are a 2 MB gzip file of 2.1 GB of zeros (under
    MAX_GZIP_IDX_BYTES, and a ratio gzip can reach)."""
    images = mnist_folder_with(tmp_path / "mnist", shared_data, "train-images-idx3-ubyte")
    idx_gzip_bomb(images.with_name(images.name + ".gz"), (2_700_000, 28, 28))
    return tmp_path / "mnist"


def test_an_idx_gzip_bomb_is_refused_before_reading(idx_bomb):
    result = fastnn("train", "--data", idx_bomb, memory=2 * GiB, timeout=30)
    assert_one_error_line(result, "not enough memory for IDX file", "shape (2700000, 28, 28), 2,116,800,000 bytes",
                          "ulimit -v (RLIMIT_AS)")


def test_running_out_of_memory_inside_an_idx_file_is_one_line(idx_bomb):
    """Without the arithmetic check, the growing buffer meets the cap: still a clear line."""
    result = fastnn("train", "--data", idx_bomb, memory=1 * GiB, timeout=60,
                    patch="d.check_memory = lambda *args, **kwargs: None")
    assert_one_error_line(result, "not enough memory to read the 2,116,800,000 bytes its header declares",
                          "memory ran out after")


def test_an_idx_header_that_claims_more_than_gzip_can_hold(tmp_path):
    path = tmp_path / "x.idx.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", 10**8) + bytes(1000)))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"more than a gzip file of \d+ bytes can hold \(at most 1032 times"):
            datasets.read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def csv_gzip_bomb(path: Path, rows: int) -> Path:
    """A gzip Kaggle CSV of ``rows`` valid rows, about 1/1000 of their size (one member of
    1,000 rows, compressed once and repeated)."""
    row = ",".join(str(v % 10) for v in range(785)) + "\n"
    block = gzip.compress((row * 1000).encode(), compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        f.write(gzip.compress(HEADER.encode(), mtime=0))
        for _ in range(rows // 1000):
            f.write(block)
    return path


def test_a_csv_gzip_bomb_stops_at_the_cell_limit(tmp_path):
    path = csv_gzip_bomb(tmp_path / "bomb.csv.gz", 100_000)  # 157 MB of text in 480 KB
    assert path.stat().st_size < 500_000
    assert datasets.MAX_GZIP_CSV_CELLS == 2**31
    datasets.read_csv(small_csv(tmp_path / "warm.csv", 1))  # pandas imported, outside the count
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"decompresses to more than 1,273 rows, over the limit of 1,000,000 "
                                            r"cells \(rows x columns\) for a compressed CSV file"):
            datasets.read_csv(path, max_cells=10**6)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20  # the first rows and their array: not the 157 MB of the file
    at_limit = csv_gzip_bomb(tmp_path / "2000.csv.gz", 2000)
    X, y = datasets.read_csv(at_limit, max_cells=785 * 2000, chunksize=500)  # exactly the limit: read
    assert X.shape == (2000, 784) and y.tolist() == [0] * 2000 and X[0, :3].tolist() == [1, 2, 3]


def test_a_csv_gzip_bomb_on_the_command_line(tmp_path):
    path = csv_gzip_bomb(tmp_path / "bomb.csv.gz", 100_000)
    result = fastnn("train", "--data", path, memory=2 * GiB, patch="d.MAX_GZIP_CSV_CELLS = 10**7")
    assert_one_error_line(result, f"CSV file {path} decompresses to more than 12,738 rows",
                          "fastnn.data.datasets.MAX_GZIP_CSV_CELLS")


def small_csv(path: Path, rows: int) -> Path:
    path.write_text("label,pixel0,pixel1\n" + "".join(f"{i % 10},{i % 256},7\n" for i in range(rows)))
    return path


def test_csv_growth_is_checked_against_memory(tmp_path, monkeypatch):
    path = small_csv(tmp_path / "d.csv", 10)
    monkeypatch.setattr(checks, "memory_available", lambda: (5, "that the test leaves"))
    with pytest.raises(DataError, match=f"not enough memory for CSV file {path} beyond its first 2 rows: "
                                        "it needs 6 bytes, more than the 5 bytes that the test leaves"):
        datasets.read_csv(path, chunksize=2)


def test_running_out_of_memory_in_a_csv_names_the_rows_read(tmp_path, monkeypatch):
    path = small_csv(tmp_path / "d.csv", 10)

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(datasets, "check_memory", no_memory)  # as if growing the array failed
    with pytest.raises(DataError, match=f"CSV file {path}: not enough memory to load it \\(2 rows so far\\)"):
        datasets.read_csv(path, chunksize=2)


def test_a_csv_header_over_1_mib_is_refused_not_cut(tmp_path):
    path = tmp_path / "wide.csv"
    header = "label," + ",".join(f"pixel{i}" for i in range(100_000))
    assert len(header) > datasets.MAX_CSV_HEADER_BYTES
    path.write_text(header + "\n" + "1," + ",".join("0" * 100_000) + "\n")
    assert_one_error_line(fastnn("train", "--data", path, timeout=30),
                          f"CSV file {path} has a header line longer than 1,048,576 bytes")
    # Up to the limit, the header is read whole.
    fits = "label," + ",".join(f"pixel{i}" for i in range(90_000))
    assert len(fits) < datasets.MAX_CSV_HEADER_BYTES
    path.write_text(fits + "\n" + "1," + ",".join(["3"] * 90_000) + "\n")
    X, y = datasets.read_csv(path)
    assert X.shape == (1, 90_000) and int(X.sum()) == 270_000


def test_a_csv_row_far_longer_than_its_header_allows(tmp_path):
    """One line of padding (100 MB in 100 KB of gzip) is refused, not buffered by pandas."""
    path = tmp_path / "long.csv.gz"
    path.write_bytes(gzip.compress(b"label,pixel0\n1,2\n3," + b"0" * (100 << 20) + b"4\n", mtime=0))
    with pytest.raises(DataError, match=r"has a line longer than 96 bytes \(line 3\); a row may take at most "
                                        r"16 bytes per column"):
        datasets.read_csv(path)
    padded = small_csv(tmp_path / "padded.csv", 3)  # padding within the bound is still read
    padded.write_text(padded.read_text().replace(",7\n", ",  0000000000000007  \n"))
    assert datasets.read_csv(padded)[0][:, 1].tolist() == [7, 7, 7]


# -- configs and logs: size and nesting bounded ----------------------------------------------------

def test_a_deep_toml_config(tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text("layers = " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert_one_error_line(fastnn("train", "--config", deep, timeout=30),
                          f"config file {deep} nests arrays or tables more than 32 levels deep")
    for text in ("layers = " + "[" * 500 + "]" * 500, "a = " + "{b = " * 40 + "1" + "}" * 40):
        deep.write_text(text + "\n")  # deep, yet within Python's recursion: tomllib reads it
        with pytest.raises(FastnnError, match="more than 32 levels deep"):
            config.read_toml(deep)
    deep.write_text("[train]\nlayers = " + "[" * 40 + "]" * 40 + "\n")
    with pytest.raises(SweepError, match=f"sweep config {deep} nests arrays or tables more than 32 levels deep"):
        load_config(deep)


def test_a_toml_config_over_1_mib(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20) + "\nepochs = 2\n")
    with pytest.raises(FastnnError, match="is larger than 1,048,576 bytes, the limit for a TOML file"):
        config.read_toml(big)
    big.write_text("epochs = 2\n" + "# padding\n" * 1000)
    assert config.read_toml(big) == {"epochs": 2}


@pytest.mark.parametrize("text, message", [
    ("epochs = 1" + "0" * 5000, "is not valid TOML: Exceeds the limit (4300 digits)"),
    ("lr = 1" + "0" * 400, "lr must be a finite number, got 1000000000"),
    ("layers = [784, true, 10]", "layers must be a list of integers, got [784, True, 10]"),
    ("out = '" + "x" * 100_000 + "'", None),
    ("activation = '" + "x" * 100_000 + "'", "activation must be one of relu"),
    ("x" * 100_000 + " = 1", "unknown key 'xxxxxxxxxxxx"),
])
def test_toml_values_give_short_clear_errors(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    if message is None:
        assert config.read_toml(path)["out"] == "x" * 100_000
        return
    with pytest.raises(FastnnError) as error:
        config.read_toml(path)
    assert message in str(error.value)
    assert len(str(error.value)) < 400  # a huge value is shown shortened


def test_a_deep_metrics_line_for_plot(tmp_path):
    log = tmp_path / "deep.jsonl"
    log.write_text('{"epoch": 1, "loss": 0.5}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    assert_one_error_line(fastnn("plot", "--metrics", log, timeout=30),
                          f"metrics log {log} is not a fastnn metrics log: line 2 is longer than 65,536 bytes")
    log.write_text('{"epoch": 1, "loss": 0.5}\n\n' + "[" * 20_000 + "]" * 20_000 + "\n")
    with pytest.raises(DataError, match="line 3 nests arrays or objects too deeply"):
        metrics_log.read(log)
    log.write_text('{"epoch": 1, "loss": 0.5}\n[1, 2]\n')
    with pytest.raises(DataError, match="line 2 is not a JSON object"):
        metrics_log.read(log)
    long_csv = tmp_path / "long.csv"
    long_csv.write_text(",".join(metrics_log.FIELDS) + "\n" + '"' + ("x" * 60_000 + "\n") * 3 + '"\n')
    with pytest.raises(DataError, match="not a fastnn metrics log: field larger than field limit"):
        metrics_log.read(long_csv)


# -- the safety net in main() --------------------------------------------------------------------------

@pytest.mark.parametrize("error, line", [
    (MemoryError("Unable to allocate 3.00 GiB for an array"), "not enough memory (Unable to allocate 3.00 GiB "
                                                              "for an array)"),
    (MemoryError(), "not enough memory"),
    (OverflowError("Python int too large to convert to C long"), "a number is out of range (Python int too large "
                                                                 "to convert to C long)"),
    (RecursionError("maximum recursion depth exceeded"), "the input is nested too deeply to read (maximum "
                                                         "recursion depth exceeded)"),
])
def test_main_turns_resource_errors_into_one_line(error, line, monkeypatch, capsys):
    def run_info(args):
        raise error

    monkeypatch.setattr(cli_main, "run_info", run_info)
    assert cli_main.main(["info", "m.npz"]) == 1
    assert capsys.readouterr().err == f"fastnn: error: {line}\n"


def test_main_does_not_hide_programming_errors(monkeypatch):
    def run_info(args):
        raise TypeError("a bug")

    monkeypatch.setattr(cli_main, "run_info", run_info)
    with pytest.raises(TypeError, match="a bug"):
        cli_main.main(["info", "m.npz"])


# -- fuzzing TOML configs ----------------------------------------------------------------------------

def toml_key(key: str) -> str:
    return json.dumps(key)  # a basic string: JSON's escapes are TOML's (a lone surrogate is not: an error)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


KEYS = st.one_of(st.sampled_from([o.name for o in config.OPTIONS] + [o.name.replace("-", "_") for o in config.OPTIONS]),
                 st.text(max_size=12))
SCALARS = st.one_of(st.booleans(), st.integers(), st.integers(-2**70, 2**70), st.integers(10**307, 10**310),
                    st.floats(), st.text(max_size=20),
                    st.sampled_from(["relu", "adam", "sgd", "cosine", "float64", "a.csv", "log.jsonl", ""]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=20)
LAYERS = st.lists(st.one_of(st.integers(-2, 3000), st.integers(2**40, 2**70), st.booleans()), max_size=5)


def config_outcome(path: Path):
    """read_toml, resolve and check, as `fastnn train --config` runs them: a config, or the
    error a user sees as one line."""
    try:
        return config.resolve({}, config.read_toml(path))
    except (config.OptionError, FastnnError) as error:
        assert str(error)
        return error


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.dictionaries(KEYS, VALUES, max_size=6), layers=st.none() | LAYERS)
def test_fuzzed_toml_configs_give_a_config_or_a_clear_error(tmp_path, table, layers):
    if layers is not None:
        table = {**table, "layers": layers}
    text = "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in table.items())
    path = tmp_path / "fuzz.toml"
    path.write_text(text)  # ASCII: json.dumps escapes the rest
    outcome = config_outcome(path)
    if isinstance(outcome, dict):
        assert set(outcome) == set(config.BY_NAME)
        assert all(isinstance(s, int) and s >= 1 for s in outcome["layers"])
        assert checks.parameter_count(tuple(outcome["layers"])) <= checks.MAX_PARAMETERS


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=60) | st.text(alphabet="[]{}=,.\"'#\n ablyers0123456789-_", max_size=200))
def test_fuzzed_toml_text_gives_a_config_or_a_clear_error(tmp_path, data):
    path = tmp_path / "fuzz.toml"
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    config_outcome(path)
