"""No finished training is lost to an output problem, and --resume writes only where its own
command line says (issue 24, findings 6, 7 and 9).

`fastnn train` runs as a subprocess, with a timeout, on 300 MNIST digits and a 784-8-10 network.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from fastnn import MLP
from fastnn.cli import config as options
from fastnn.cli.trainer import data_checksum
from fastnn.data.datasets import read_csv

TRAIN = ["--layers", "784,8,10", "--epochs", "2", "--batch-size", "32", "--quiet"]


def fastnn(*args, cwd=None, timeout=120):
    """`fastnn ARGS` in a subprocess; stderr without the JIT's "note:" line (see tests/test_cli.py)."""
    result = subprocess.run([sys.executable, "-m", "fastnn.cli", *map(str, args)], capture_output=True,
                            text=True, timeout=timeout, cwd=cwd)
    result.stderr = "".join(line for line in result.stderr.splitlines(keepends=True) if not line.startswith("note: "))
    return result


def hidden_files(folder: Path) -> list[str]:
    """Lock and temporary files a run may have left behind."""
    return sorted(p.name for p in folder.rglob(".*"))


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory, mnist):
    """300 labelled MNIST digits in the Kaggle layout."""
    path = tmp_path_factory.mktemp("data") / "train.csv"
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    np.savetxt(path, np.column_stack([mnist.train_labels[:300], mnist.train_images[:300]]), fmt="%d",
               delimiter=",", header=header, comments="")
    return path


def write_idx(path: Path, a: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    path.write_bytes(header + a.astype(np.uint8).tobytes())


def idx_folder(folder: Path, images, labels, test_images, test_labels) -> Path:
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", images.reshape(-1, 28, 28))
    write_idx(folder / "train-labels-idx1-ubyte", labels)
    write_idx(folder / "t10k-images-idx3-ubyte", test_images.reshape(-1, 28, 28))
    write_idx(folder / "t10k-labels-idx1-ubyte", test_labels)
    return folder


# -- every output is checked before training ----------------------------------------------------

FILE_NAMES = {"--out": "m.npz", "--metrics": "log.csv", "--checkpoint": "c.npz"}


@pytest.mark.parametrize("option", list(FILE_NAMES))
@pytest.mark.parametrize("problem", ["under a file", "a folder", "read-only folder"])
def test_an_output_that_cannot_be_written_fails_before_training(option, problem, tiny_csv, tmp_path):
    name = FILE_NAMES[option]
    if problem == "under a file":
        (tmp_path / "file").write_text("a file, not a folder\n")
        target = tmp_path / "file" / "sub" / name
        message = (f"{option} {target} cannot be written: could not create the folder {target.parent}: "
                   f"{tmp_path / 'file'} is a file, not a folder")
    elif problem == "a folder":
        target = tmp_path / name
        target.mkdir()
        message = f"{option} {target} is a folder; give a file name"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into a read-only folder; the other cases cover root")
        folder = tmp_path / "read-only"
        folder.mkdir(mode=0o500)
        target = folder / name
        message = (f"{option} {target} cannot be written: its folder {folder} takes no new files "
                   f"(Permission denied)")
    result = fastnn("train", "--data", tiny_csv, *TRAIN, option, target)
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"fastnn: error: {message}\n"
    assert result.stdout == ""  # refused before the data was even read, let alone trained on
    assert not target.is_file()


def test_the_tutorials_out_is_checked_before_its_500_iterations(tiny_csv, tmp_path):
    (tmp_path / "file").write_text("a file, not a folder\n")
    target = tmp_path / "file" / "m.npz"
    result = fastnn("train", "--tutorial", "--data", tiny_csv, "--out", target)
    assert result.returncode == 1
    assert result.stderr == (f"fastnn: error: --out {target} cannot be written: could not create the folder "
                             f"{target.parent}: {target.parent} is a file, not a folder\n")
    assert result.stdout == ""


def test_missing_folders_are_created_and_no_lock_file_is_left(tiny_csv, tmp_path):
    out, log = tmp_path / "runs" / "a" / "m.npz", tmp_path / "logs" / "b" / "log.csv"
    result = fastnn("train", "--data", tiny_csv, *TRAIN, "--out", out, "--metrics", log, "--checkpoint-every", "1")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert MLP.load(out).epochs_trained == 2
    assert MLP.load(out.with_name("m.ckpt.npz")).epochs_trained == 1
    assert [line.split(",")[0] for line in log.read_text().splitlines()] == ["epoch", "1", "2"]
    assert hidden_files(tmp_path) == []


# -- a failed periodic checkpoint or metrics log is a warning ----------------------------------

FULL_DISK = textwrap.dedent("""
    import errno, sys
    from pathlib import Path
    import fastnn.io
    from fastnn.cli.main import main

    real = fastnn.io.atomic_write

    def full_for(suffix):
        def atomic_write(path, write):
            if Path(path).name.endswith(suffix):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(path, write)
        return atomic_write

    fastnn.io.atomic_write = full_for(sys.argv[1])
    sys.exit(main(sys.argv[2:]))
""")


def test_a_checkpoint_that_cannot_be_saved_is_one_warning_and_the_run_finishes(tiny_csv, tmp_path):
    out = tmp_path / "m.npz"
    result = subprocess.run([sys.executable, "-c", FULL_DISK, ".ckpt.npz", "train", "--data", str(tiny_csv), *TRAIN,
                             "--out", str(out), "--checkpoint-every", "1"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if not line.startswith("note: ")]
    assert warnings == [f"fastnn: warning: could not save the checkpoint of epoch 1 (could not save "
                        f"{tmp_path / 'm.ckpt.npz'}: No space left on device); training goes on"]
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[1:3]] == ["epoch 1", "epoch 2"] and lines[3:] == [f"saved {out}"]
    assert MLP.load(out).epochs_trained == 2
    assert not (tmp_path / "m.ckpt.npz").exists()


def test_a_metrics_log_that_cannot_be_written_warns_each_epoch_and_the_run_finishes(tiny_csv, tmp_path):
    out, log = tmp_path / "m.npz", tmp_path / "log.csv"
    result = subprocess.run([sys.executable, "-c", FULL_DISK, "log.csv", "train", "--data", str(tiny_csv), *TRAIN,
                             "--out", str(out), "--metrics", str(log)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if not line.startswith("note: ")]
    assert warnings == [f"fastnn: warning: could not write the metrics log {log}: No space left on device; "
                        "training goes on"] * 2
    model = MLP.load(out)
    assert model.epochs_trained == 2 and [row["epoch"] for row in model.metadata["history"]] == [1, 2]
    assert not log.exists()


# -- the model is saved before the final evaluation ---------------------------------------------

def test_an_empty_test_set_is_a_warning_after_the_model_is_saved(mnist, tmp_path):
    data = idx_folder(tmp_path / "mnist", mnist.train_images[:300], mnist.train_labels[:300],
                      mnist.test_images[:0], mnist.test_labels[:0])
    out = tmp_path / "m.npz"
    result = fastnn("train", "--data", data, *TRAIN, "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"fastnn: warning: no test accuracy: the test set of {data} has no examples\n"
    assert result.stdout.splitlines()[-1] == f"saved {out}"
    assert "test accuracy" not in result.stdout
    assert MLP.load(out).epochs_trained == 2


def test_a_test_set_the_network_cannot_score_fails_only_after_the_save(mnist, tmp_path):
    """Five classes to train on, a digit 9 in the test set: the error comes after the model is saved."""
    data = idx_folder(tmp_path / "mnist", mnist.train_images[:300], mnist.train_labels[:300] % 5,
                      mnist.test_images[:50], mnist.test_labels[:50])
    assert mnist.test_labels[:50].max() == 9
    out = tmp_path / "m.npz"
    result = fastnn("train", "--data", data, "--layers", "784,8,5", "--epochs", "1", "--quiet", "--out", out)
    assert result.returncode == 1
    assert result.stderr.startswith("fastnn: error: ") and len(result.stderr.splitlines()) == 1
    assert "9" in result.stderr
    assert result.stdout.splitlines()[-1] == f"saved {out}"
    assert MLP.load(out).epochs_trained == 1


# -- --resume writes only where its command line says, or beside the checkpoint ---------------------

def crafted_checkpoint(path: Path, data: Path, elsewhere: Path) -> None:
    """An untrained checkpoint of a 2-epoch run whose stored config names out, metrics and
    checkpoint files in ``elsewhere``, as a stranger's file might."""
    X, y = read_csv(data)
    config = options.absolute(options.resolve({
        "layers": [784, 8, 10], "epochs": 2, "batch-size": 32, "data": str(data), "checkpoint-every": 1,
        "out": str(elsewhere / "victim.npz"), "metrics": str(elsewhere / "log.csv"),
        "checkpoint": str(elsewhere / "ck.npz")}))
    path.parent.mkdir(exist_ok=True)
    MLP([784, 8, 10]).save(path, config=config, data={"path": str(data), "examples": len(y),
                                                      "sha256": data_checksum(X, y)}, history=[])


@pytest.fixture
def elsewhere(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "victim.npz").write_text("someone's precious file\n")
    return folder


def assert_untouched(elsewhere: Path) -> None:
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.npz"]
    assert (elsewhere / "victim.npz").read_text() == "someone's precious file\n"


def test_resume_alone_writes_beside_the_checkpoint_never_where_it_says(tiny_csv, tmp_path, elsewhere):
    checkpoint = tmp_path / "mine" / "run.ckpt.npz"
    crafted_checkpoint(checkpoint, tiny_csv, elsewhere)
    result = fastnn("train", "--resume", checkpoint, "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"saved {tmp_path / 'mine' / 'run.npz'}"
    assert_untouched(elsewhere)
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["run.ckpt.npz", "run.npz"]
    assert MLP.load(checkpoint).epochs_trained == 1  # --checkpoint-every 1, into the checkpoint resumed
    saved = MLP.load(tmp_path / "mine" / "run.npz")
    assert saved.epochs_trained == 2
    assert {k: saved.metadata["config"][k] for k in ("out", "metrics", "checkpoint")} == {
        "out": str(tmp_path / "mine" / "run.npz"), "metrics": None, "checkpoint": None}


@pytest.mark.parametrize("extra, message", [
    ({"data": "not an object"}, None),
    ({"history": [1, {"epoch": "x"}, {"epoch": 10**30, "loss": 1}]}, None),
    ({"config_changes": {"threads": -3}}, "holds an invalid config: threads"),
    ({"config_changes": {"blocks-per-epoch": "many"}}, "holds an invalid config: blocks-per-epoch"),
    ({"config_changes": {"no-such-option": 1}}, "holds an unknown option"),
    ({"config_changes": {"schedule": "plateau"}, "schedule_state": {"current": -1, "best": 2, "bad_epochs": 0}},
     "plateau schedule state is invalid"),
])
def test_a_crafted_checkpoints_stored_values_are_checked_on_resume(extra, message, tiny_csv, tmp_path):
    """Values a checkpoint stores beside its config reach the run only checked: a bad one is one
    line and exit 1, or (data, history: what the run only reports) left out."""
    X, y = read_csv(tiny_csv)
    config = options.absolute(options.resolve({"layers": [784, 8, 10], "epochs": 2, "batch-size": 32,
                                               "data": str(tiny_csv)}))
    config.update(extra.pop("config_changes", {}))
    saved = {"config": config, "data": {"path": str(tiny_csv), "examples": len(y), "sha256": data_checksum(X, y)},
             "history": [], **extra}
    checkpoint = tmp_path / "run.ckpt.npz"
    MLP([784, 8, 10]).save(checkpoint, **saved)
    result = fastnn("train", "--resume", checkpoint, "--quiet")
    if message is None:
        assert result.returncode == 0, result.stderr
        assert MLP.load(tmp_path / "run.npz").epochs_trained == 2
    else:
        assert result.returncode == 1
        assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr


def test_resume_of_a_file_not_named_ckpt_replaces_it_with_the_finished_model(tiny_csv, tmp_path, elsewhere):
    checkpoint = tmp_path / "mine" / "snapshot.npz"
    crafted_checkpoint(checkpoint, tiny_csv, elsewhere)
    result = fastnn("train", "--resume", checkpoint, "--quiet")
    assert result.returncode == 0, result.stderr
    assert_untouched(elsewhere)
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["snapshot.ckpt.npz", "snapshot.npz"]
    assert MLP.load(checkpoint).epochs_trained == 2
    assert MLP.load(tmp_path / "mine" / "snapshot.ckpt.npz").epochs_trained == 1


def test_resume_writes_where_its_command_line_says(tiny_csv, tmp_path, elsewhere):
    checkpoint = tmp_path / "mine" / "run.ckpt.npz"
    crafted_checkpoint(checkpoint, tiny_csv, elsewhere)
    before = checkpoint.read_bytes()
    out, log = tmp_path / "chosen" / "m.npz", tmp_path / "chosen" / "log.jsonl"
    result = fastnn("train", "--resume", checkpoint, "--out", out, "--metrics", log, "--quiet")
    assert result.returncode == 0, result.stderr
    assert_untouched(elsewhere)
    assert checkpoint.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["log.jsonl", "m.ckpt.npz", "m.npz"]
    assert MLP.load(out).epochs_trained == 2 and len(log.read_text().splitlines()) == 2


# -- two runs never write the same file at once -----------------------------------------------------

def test_a_second_run_with_the_same_out_fails_at_once(tiny_csv, tmp_path):
    out = tmp_path / "m.npz"
    first = subprocess.Popen([sys.executable, "-m", "fastnn.cli", "train", "--data", str(tiny_csv), *TRAIN,
                              "--epochs", "100000", "--out", str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        assert first.stdout.readline().startswith("training 784-8-10")  # it holds its files from before this
        started = time.monotonic()
        second = fastnn("train", "--data", tiny_csv, *TRAIN, "--out", out, timeout=60)
        assert second.returncode == 1
        assert second.stderr == (f"fastnn: error: --out {out} is in use by another fastnn train (process "
                                 f"{first.pid}), which holds {tmp_path / '.m.npz.lock'}: wait for it to end, or "
                                 "choose another --out\n")
        assert second.stdout == "" and time.monotonic() - started < 30
        third = fastnn("train", "--data", tiny_csv, *TRAIN, "--out", tmp_path / "other.npz", "--checkpoint",
                       tmp_path / "m.ckpt.npz", timeout=60)  # the first run's checkpoint
        assert third.returncode == 1 and third.stdout == ""
        assert third.stderr.startswith(f"fastnn: error: --checkpoint {tmp_path / 'm.ckpt.npz'} is in use by "
                                       f"another fastnn train (process {first.pid})")
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)  # no clean-up: its lock file stays, its lock dies with it
        first.wait(timeout=60)
    assert (tmp_path / ".m.npz.lock").exists()
    again = fastnn("train", "--data", tiny_csv, *TRAIN, "--out", out)
    assert again.returncode == 0, again.stderr
    assert MLP.load(out).epochs_trained == 2
    assert hidden_files(tmp_path) == []


# -- sweeps: a file where the results go is refused before any run -----------------------------------

def test_a_sweep_refuses_a_folder_where_best_npz_goes(tmp_path):
    from fastnn.sweeps import SweepError, sweep

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 2, 40)
    (tmp_path / "best.npz").mkdir()
    config = {"sweep": {"validation": 0.25}, "train": {"layers": [4, 3, 2], "epochs": 1}, "grid": {"lr": [0.1]}}
    with pytest.raises(SweepError, match=f"^{tmp_path / 'best.npz'} is a folder, where the sweep writes a file"):
        sweep(config, data=(X, y), out=tmp_path, progress=False)
    assert not (tmp_path / "results.csv").exists()


# -- the command printed on Ctrl-C continues into the same files -------------------------------------

@pytest.mark.parametrize("files, checkpoint, command", [
    ({"out": "/r/m.npz"}, "/r/m.ckpt.npz", "fastnn train --resume /r/m.ckpt.npz"),
    ({"out": "/r/m.npz", "metrics": "/r/log.csv", "checkpoint": "/c/x.npz"}, "/c/x.npz",
     "fastnn train --resume /c/x.npz --out /r/m.npz --metrics /r/log.csv --checkpoint /c/x.npz"),
    ({"out": "/r/m.npz", "checkpoint": "/r/other.ckpt.npz"}, "/r/other.ckpt.npz",
     "fastnn train --resume /r/other.ckpt.npz --out /r/m.npz --checkpoint /r/other.ckpt.npz"),
    ({}, "/w/fastnn-checkpoint.npz",
     "fastnn train --resume /w/fastnn-checkpoint.npz --checkpoint /w/fastnn-checkpoint.npz"),
    ({"out": "/r/a b.npz"}, "/r/a b.ckpt.npz", "fastnn train --resume '/r/a b.ckpt.npz'"),
])
def test_the_resume_command_names_the_files_resume_alone_would_not_write(files, checkpoint, command):
    import shlex

    from fastnn.cli.outputs import checkpoint_path
    from fastnn.cli.trainer import resume_command

    config = options.resolve(files)
    assert resume_command(config, checkpoint) == command
    words = shlex.split(command)[3:]
    given = {"resume-file": words[0], **{w.removeprefix("--"): v for w, v in zip(words[1::2], words[2::2])}}
    resumed = options.for_resume({**config, "out": "/x/o.npz", "metrics": "/x/l.csv", "checkpoint": "/x/c.npz"},
                                 {k: v for k, v in given.items() if k != "resume-file"}, given["resume-file"])
    assert checkpoint_path(resumed) == checkpoint
    assert resumed["metrics"] == config["metrics"]
    assert resumed["out"] == (config["out"] or options.resumed_model(checkpoint))
