"""Model files from strangers and saves that go wrong: refused with a clear message, never run,
and the previous file always intact."""

import errno
import json
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


@pytest.mark.parametrize("name, message", [
    ("truncated.npz", "truncated or corrupt"),
    ("empty.npz", "not an .npz archive"),
    ("not_a_zip.npz", "not an .npz archive"),
    ("tampered.npz", "fails its checksum"),
    ("future_version.npz", "format version 99"),
    ("other_format.npz", "is not a fastnn model"),
    ("pickled.npz", "pickled object; refused"),
    ("wrong_shape.npz", "describes no valid network"),
])
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
    meta["training"]["position"] = position
    np.savez(path, **arrays, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(ModelFileError, match="position|describes no valid network"):
        MLP.load(path)
