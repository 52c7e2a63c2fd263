"""Model files crafted by someone who knows the format (its checksum is public): each is refused
with a ModelFileError naming what is wrong, and `fastnn info`, `evaluate` and `predict` with one
line on stderr and exit status 1, never a traceback, a hang, or memory beyond a small multiple
of the file's size. The corpus is tests/data/bad_models (write_bad_models in test_model_files.py)."""

import contextlib
import io
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn.io
from fastnn import MLP, ModelFileError
from fastnn.cli.main import main
from test_model_files import BAD, DAMAGED, model_members, write_zip

ADDRESS_SPACE = 1536 << 20  # bytes a subprocess may map: loading any file here needs a tenth of it
TIMEOUT = 120
COMMANDS = ("info", "evaluate", "predict")

# What MLP.load (and each command) says about each crafted file of the corpus.
HOSTILE = {
    # the archive: members that are not what np.savez writes, sizes that the file cannot hold
    "deflated.npz": "its member params.npy is compressed",
    "deflate_bomb.npz": "its member params.npy is compressed",
    "duplicate_meta.npz": "holds two members named meta.npy",
    "foreign_member.npz": "holds an unexpected member '../../.bashrc'",
    "too_many_members.npz": "holds 72 members; a fastnn model holds at most 64",
    "huge_directory.npz": "declares a zip directory of 100,000,000 bytes",
    "huge_zip64_directory.npz": "declares a zip directory of 1,000,000,000,000 bytes",
    "size_lie.npz": "its member params.npy declares 2,147,483,648 bytes, more than the file's",
    "encrypted.npz": "its member params.npy is encrypted",
    "bad_crc.npz": "truncated or corrupt",
    # the .npy members: headers read and checked before any data
    "huge_shape.npz": "its member params.npy declares a (100000000000000000...0000000000000000000,) array of float32",
    "negative_shape.npz": "its member params.npy has an invalid shape (-5,)",
    "short_data.npz": "declares a (23,) array of float32 (92 bytes) but holds 64 bytes",
    "long_header.npz": "has a .npy header of 60,000 bytes (at most 1,024)",
    "unicode_params.npz": "holds '<U9' values; fastnn stores plain numbers",
    "complex_params.npz": "holds 'complex64' values; fastnn stores plain numbers",
    "not_npy.npz": "its member params.npy is not a .npy array",
    "float_meta.npz": "has corrupt metadata (not UTF-8 bytes)",
    # the metadata's JSON
    "deep_meta.npz": "has metadata nested more than 32 levels deep",
    "huge_number_meta.npz": "has corrupt metadata",
    "invalid_utf8_meta.npz": "has corrupt metadata",
    "meta_is_a_list.npz": "is not a fastnn model",
    "future_version_true.npz": "has format version True",
    # the network it describes: the parameter count computed before anything is allocated
    "huge_units.npz": "a 784-100000-10 network has 79,500,010 parameters; the file holds 7,960",
    "million_units.npz": "a 4-1000000-2 network has 7,000,002 parameters; the file holds 23",
    "giant_sizes.npz": "sizes must be 2 to 1001 integers from 1 to 2**63, got [9223372036854775808,",
    "bool_sizes.npz": "sizes must be 2 to 1001 integers from 1 to 2**63, got [True, 3, 2]",
    "many_layers.npz": "sizes must be 2 to 1001 integers",
    "list_activation.npz": "activation must be a string, got ['relu']",
    "unknown_setting.npz": "unknown network settings ['evil']",
    "float64_params.npz": "parameters of dtype float64 in a 'float32' network",
    "nan_params.npz": "parameters must be finite",
    "params_2d.npz": "it holds no flat parameter array (params)",
    "no_params.npz": "it holds no flat parameter array (params)",
    # the generator's state, the training state and the optimizer
    "rng_huge.npz": "invalid generator state (rng): state must be a non-negative integer below 2**128, got 2e+200",
    "rng_negative.npz": "invalid generator state (rng): inc must be a non-negative integer below 2**128, got -1",
    "rng_other_generator.npz": "the generator 'MT19937' is not PCG64",
    "position_huge_rng.npz": "invalid generator state of the position inside an epoch: state must be",
    "epochs_infinite.npz": "epochs_trained must be a whole number from 0 to 2**53, got inf",
    "training_not_object.npz": "training must be an object, got [1, 2]",
    "extra_not_object.npz": "extra must be an object, got 'rm -rf'",
    "step_infinite.npz": "the optimizer's step must be a whole number from 0 to 2**53, got inf",
    "unknown_optimizer.npz": "unknown optimizer '__import__'",
    "string_lr.npz": "invalid optimizer setting lr='0.1'",
    "huge_betas.npz": "invalid optimizer setting betas=[0.9, 0.9",
    "missing_moments.npz": "the optimizer's state optimizer_v is missing or not 23 float32 values",
}

# Paths that are no model file at all, made by the special_paths fixture.
NOT_FILES = {
    "a_folder.npz": "is a directory, not a model file",
    "a_fifo.npz": "is not a regular file (a FIFO, device or socket)",
    "dev_zero_link.npz": "is not a regular file (a FIFO, device or socket)",
    "missing.npz": "does not exist",
}
EXPECTED = {**DAMAGED, **HOSTILE, **NOT_FILES}

LIMITED = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE}, {ADDRESS_SPACE}))\n"

# Loads every path given, then runs each command on it through main(), in one process: what each
# raised or printed, one JSON line per path, then how far the peak memory grew.
DRIVER = LIMITED + """
import contextlib, io, json, resource, sys
from fastnn import MLP
from fastnn.cli.main import main

def command(*args):
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(list(args))
    except BaseException as e:  # the real command would print a traceback
        return {"status": None, "escaped": f"{type(e).__name__}: {e}", "stderr": err.getvalue()}
    return {"status": status, "stderr": err.getvalue()}

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path in sys.argv[1:]:
    try:
        MLP.load(path)
        load = ["loaded", ""]
    except BaseException as e:
        load = [type(e).__name__, str(e)]
    results = {name: command(name, path) for name in ("info", "evaluate", "predict")}
    print(json.dumps({"path": path, "load": load, **results}), flush=True)
print(json.dumps({"peak_growth_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}), flush=True)
"""

# `python -m fastnn.cli ARGS...` under the address-space limit.
CLI = LIMITED + "import runpy, sys\nsys.argv[0] = 'fastnn'\nrunpy.run_module('fastnn.cli', run_name='__main__')\n"


@pytest.fixture(scope="module")
def special_paths(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("not_files")
    (folder / "a_folder.npz").mkdir()
    os.mkfifo(folder / "a_fifo.npz")  # opened naively, a read would wait forever for a writer
    (folder / "dev_zero_link.npz").symlink_to("/dev/zero")  # endless zeros
    return folder


def path_of(name: str, special_paths: Path) -> Path:
    return special_paths / name if name in NOT_FILES else BAD / name


@pytest.fixture(scope="module")
def driven(special_paths) -> dict:
    """What loading each file, and each command on it, did: one subprocess for them all."""
    paths = [str(path_of(name, special_paths)) for name in EXPECTED]
    result = subprocess.run([sys.executable, "-c", DRIVER, *paths], capture_output=True, text=True, timeout=TIMEOUT)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0 and len(lines) == len(paths) + 1, (result.returncode, result.stderr[-2000:])
    by_name = {Path(line["path"]).name: line for line in lines[:-1]}
    return {"files": by_name, **lines[-1]}


def test_every_corpus_file_has_its_expected_message():
    assert sorted(p.name for p in BAD.glob("*.npz")) == sorted({**DAMAGED, **HOSTILE})


@pytest.mark.parametrize("name", EXPECTED)
def test_load_raises_model_file_error_saying_what_is_wrong(name, driven, special_paths):
    kind, message = driven["files"][name]["load"]
    assert kind == "ModelFileError" and EXPECTED[name] in message, message
    assert f"model file {path_of(name, special_paths)}" in message  # names the file


@pytest.mark.parametrize("name", EXPECTED)
@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_reports_it_in_one_line_with_status_1(name, command, driven):
    result = driven["files"][name][command]
    assert "escaped" not in result, result
    assert result["status"] == 1
    assert result["stderr"].startswith("fastnn: error: model file ") and result["stderr"].count("\n") == 1
    assert EXPECTED[name] in result["stderr"], result["stderr"]


def test_refusing_them_all_takes_no_memory_of_the_size_they_claim(driven):
    """As reported, the 784-100000-10 file alone reached 967 MB, the deflate bomb 5.5 GB."""
    assert driven["peak_growth_kib"] < 64 * 1024


def run_commands(commands: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """`fastnn ARGS` for each, run at once, each under the address-space limit and the timeout."""
    processes = [subprocess.Popen([sys.executable, "-c", CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for args in commands]
    try:
        outputs = [p.communicate(timeout=TIMEOUT) for p in processes]
        return [subprocess.CompletedProcess(p.args, p.returncode, *output) for p, output in zip(processes, outputs)]
    finally:
        for p in processes:
            p.kill()
            p.wait()


# One file of each family, through the real command line (the driver above runs them all through main).
@pytest.mark.parametrize("name", ["huge_units.npz", "deflate_bomb.npz", "huge_shape.npz", "duplicate_meta.npz",
                                  "deep_meta.npz", "rng_huge.npz", "step_infinite.npz", "a_fifo.npz",
                                  "dev_zero_link.npz", "a_folder.npz"])
def test_the_fastnn_command_refuses_one_file_of_each_family(name, special_paths):
    path = str(path_of(name, special_paths))
    for command, result in zip(COMMANDS, run_commands([[command, path] for command in COMMANDS])):
        assert result.returncode == 1, (command, result.stderr)
        assert result.stderr.startswith("fastnn: error: ") and result.stderr.count("\n") == 1, result.stderr
        assert EXPECTED[name] in result.stderr and path in result.stderr, (command, result.stderr)


# -- files that load, with free-form metadata of odd types: `fastnn info` shows them, never fails ----------

ODD_EXTRA = {
    "version_object": ({"fastnn": {"version": [1, 2]}}, {}),
    "config_string": ({}, {"config": "rm -rf /\n\x1b[2J"}),
    "config_values": ({}, {"config": {"layers": [[784, 10], "x"], "lr": "fast", "note": "a" * 10_000,
                                      "huge": 10**4000, "lines": "one\ntwo", "nothing": None, "off": False}}),
    "config_list": ({}, {"config": [1, 2, 3]}),
    "training_list": ({}, {"training": ["lr", 0.1]}),
    "data_list": ({}, {"data": ["a", "b"]}),
    "data_string_count": ({}, {"data": {"path": {"nested": True}, "examples": "many", "sha256": 12}}),
    "data_huge_count": ({}, {"data": {"path": "x" * 5000, "examples": 10**400}}),
    "history_string": ({}, {"history": "all good"}),
    "history_strings": ({}, {"history": ["epoch 1", "epoch 2"]}),
    "history_odd_values": ({}, {"history": [{"loss": "low", "accuracy": [1], "val_accuracy": {"a": 1}}]}),
    "history_huge_loss": ({}, {"history": [{"loss": 10**400, "accuracy": float("nan")}]}),
    "many_settings": ({}, {"config": {f"key{i}": i for i in range(10_000)}}),
}


def write_odd_model(path: Path, top: dict, extra: dict) -> None:
    model = MLP([4, 3, 2], seed=0)
    model.save(path)
    arrays, meta = fastnn.io.load_arrays(path)
    write_zip(path, model_members(arrays, {**meta, **top, "extra": extra}))


def run_main(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", ODD_EXTRA)
def test_info_shows_metadata_of_any_type_in_short_lines(name, tmp_path):
    path = tmp_path / f"{name}.npz"
    write_odd_model(path, *ODD_EXTRA[name])
    status, out, err = run_main("info", str(path))
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[1].startswith("network: 4-3-2, relu hidden") and lines[-1].startswith("checksum (sha256")
    assert all(len(line) < 4000 and line.isprintable() for line in lines), max(lines, key=len)[:200]
    status, out, err = run_main("info", "--json", str(path))
    assert (status, err) == (0, "")
    assert json.dumps(json.loads(out)["extra"]) == json.dumps(ODD_EXTRA[name][1])  # NaN too


def test_info_formats_what_it_can_and_shows_the_rest(tmp_path):
    path = tmp_path / "odd.npz"
    write_odd_model(path, {"fastnn": ["0.1"]}, {"data": {"path": "digits.csv", "examples": "many", "sha256": "ab12"},
                                                "config": {"layers": [784, 10], "lr": 0.5, "note": "a\nb"},
                                                "history": [{"loss": 0.25, "accuracy": "high"}]})
    status, out, err = run_main("info", str(path))
    assert status == 0, err
    assert "written by fastnn ['0.1']" in out
    assert "data: digits.csv ('many' examples), sha256 ab12" in out  # was: "Cannot specify ',' with 's'."
    assert "training config: layers=784,10, lr=0.5, note='a\\nb'" in out
    assert "history: 1 epochs; last: loss 0.2500, accuracy 'high'" in out


def test_info_reads_the_file_once(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    MLP([4, 3, 2]).save(path)
    reads = []
    load_arrays = fastnn.io.load_arrays
    monkeypatch.setattr(fastnn.io, "load_arrays", lambda p: reads.append(p) or load_arrays(p))
    assert run_main("info", str(path))[0] == 0 and reads == [path]


def test_the_odd_metadata_prints_through_the_real_command(tmp_path):
    path = tmp_path / "odd.npz"
    write_odd_model(path, *ODD_EXTRA["data_string_count"])
    [result] = run_commands([["info", str(path)]])
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "examples" in result.stdout


# -- limits that a committed file would be too big to reach --------------------------------------------------

def test_metadata_longer_than_the_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "long_meta.npz"
    model = MLP([4, 3, 2])
    model.save(path)
    arrays, meta = fastnn.io.load_arrays(path)
    meta["extra"] = {"padding": "x" * fastnn.io.MAX_META_BYTES}
    write_zip(path, model_members(arrays, meta))
    with pytest.raises(ModelFileError, match=r"has [\d,]+ bytes of metadata \(at most 8,388,608\)"):
        MLP.load(path)


@pytest.mark.parametrize("text, depth", [(b'{"a": [1, {"b": "[[{{\\"]]"}]}', 3), (b"[]", 1), (b'"[[["', 0), (b"7", 0),
                                         (b'[["\\\\"], ["\\\\\\"["]]', 2)])
def test_json_depth_counts_brackets_outside_strings(text, depth):
    assert fastnn.io.json_depth(text) == depth
    assert json.loads(text) is not None


# -- fuzz: random JSON in place of each field the loader reads, nested at random ----------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[dict, dict]:
    """(arrays, meta) of a valid checkpoint with every field the loader reads: an Adam state, a
    position inside an epoch, and the training config, data and history `fastnn info` shows."""
    path = tmp_path_factory.mktemp("fuzz") / "base.npz"
    MLP([4, 3, 2], seed=0).save(path)
    arrays, meta = fastnn.io.load_arrays(path)
    params = arrays["params"]
    arrays = {"params": params, "optimizer_m": np.zeros_like(params), "optimizer_v": np.ones_like(params)}
    meta["training"] = {"epochs_trained": 2, "position": {"rng": meta["rng"], "batches_done": 1, "n_batches": 4},
                        "optimizer": {"class": "Adam", "step": 9, "settings": {
                            "lr": 0.001, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8}}}
    meta["extra"] = {"config": {"layers": [4, 3, 2], "lr": 0.001}, "data": {"path": "d.csv", "examples": 10,
                                                                          "sha256": "ab"},
                     "history": [{"epoch": 1, "loss": 0.5, "accuracy": 0.75}]}
    return arrays, meta


FIELDS = [("model",), ("model", "sizes"), ("model", "sizes", 1), ("model", "activation"), ("model", "output"),
          ("model", "dropout"), ("model", "init"), ("model", "seed"), ("model", "dtype"), ("rng",),
          ("rng", "bit_generator"), ("rng", "state"), ("rng", "state", "state"), ("rng", "has_uint32"),
          ("rng", "uinteger"), ("training",), ("training", "epochs_trained"), ("training", "position"),
          ("training", "position", "batches_done"), ("training", "position", "n_batches"),
          ("training", "position", "rng"), ("training", "optimizer"), ("training", "optimizer", "class"),
          ("training", "optimizer", "step"), ("training", "optimizer", "settings"),
          ("training", "optimizer", "settings", "lr"), ("training", "optimizer", "settings", "betas"),
          ("training", "optimizer", "settings", "eps"), ("extra",), ("extra", "config"), ("extra", "config", "lr"),
          ("extra", "data"), ("extra", "data", "examples"), ("extra", "data", "path"), ("extra", "history"),
          ("extra", "history", 0), ("extra", "history", 0, "loss"), ("fastnn",), ("version",), ("format",)]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-2**200, 2**200) | st.floats() | st.text(max_size=10)
    | st.sampled_from(["relu", "softmax", "linear", "float32", "float64", "Adam", "SGD", "PCG64", "he"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12)


def nested(value, depth: int):
    for _ in range(depth):
        value = [value] if depth % 2 else {"k": value}
    return value


def holds(parent, key) -> bool:
    return isinstance(parent, dict) and key in parent or \
        isinstance(parent, list) and isinstance(key, int) and key < len(parent)


def replaced(meta: dict, field: tuple, value) -> dict:
    meta = json.loads(json.dumps(meta))  # a deep copy
    parent = meta
    for key in field[:-1]:
        if not holds(parent, key):
            return meta  # an earlier change replaced what held it
        parent = parent[key]
    if isinstance(parent, dict) or holds(parent, field[-1]):
        parent[field[-1]] = value
    return meta


@pytest.fixture
def limited_address_space():
    """Cap this process's address space (1 GiB above its use) while hostile metadata loads here:
    an allocation that a check failed to prevent then fails the test rather than the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        in_use = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                      if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        yield
        return
    limit = in_use + (1 << 30) if hard == resource.RLIM_INFINITY else min(in_use + (1 << 30), hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(FIELDS), json_values, st.integers(0, 3) | st.integers(30, 60)),
                min_size=1, max_size=3))
def test_any_metadata_loads_or_raises_model_file_error(checkpoint, limited_address_space, tmp_path_factory, changes):
    arrays, meta = checkpoint
    for field, value, depth in changes:
        meta = replaced(meta, field, nested(value, depth))
    path = tmp_path_factory.getbasetemp() / "fuzzed.npz"
    write_zip(path, model_members(arrays, meta))
    try:
        model = MLP.load(path)
    except ModelFileError as e:
        assert str(path) in str(e)
        status, out, err = run_main("info", str(path))
        assert status == 1 and err.startswith("fastnn: error: model file") and err.count("\n") == 1, err
        return
    assert np.array_equal(model.get_params(), arrays["params"])
    status, out, err = run_main("info", str(path))
    assert (status, err) == (0, ""), err
    assert all(len(line) < 4000 for line in out.splitlines())
