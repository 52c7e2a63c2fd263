"""The `fastnn` command, run as a person would: a subprocess, its output and its exit status."""

import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import MLP


def fastnn(*args, env=None):
    result = subprocess.run([sys.executable, "-m", "fastnn.cli", *args], capture_output=True, text=True,
                            timeout=600, env={**os.environ, **(env or {})})
    # Without the native library, train first notes why it compiles (tests/test_native.py checks
    # that note): the tests here are about the rest, which must be the same either way.
    result.stderr = "".join(line for line in result.stderr.splitlines(keepends=True) if not line.startswith("note: "))
    return result


@pytest.fixture
def small_csv(tmp_path, mnist):
    """2,000 MNIST digits in the Kaggle layout."""
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    rows = np.column_stack([mnist.train_labels[:2000], mnist.train_images[:2000]])
    path = tmp_path / "train.csv"
    np.savetxt(path, rows, fmt="%d", delimiter=",", header=header, comments="")
    return path


def test_train_on_mnist_prints_epochs_and_test_accuracy(shared_data, tmp_path):
    result = fastnn("train", "--epochs", "2", "--out", str(tmp_path / "m.npz"),
                    env={"FASTNN_DATA": str(shared_data)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("training 784-10-10 on 60,000 examples")
    assert lines[1].startswith("epoch 1: loss") and lines[2].startswith("epoch 2: loss")
    assert lines[3] == f"saved {tmp_path / 'm.npz'}"  # before the evaluation, which cannot lose it
    accuracy = float(lines[4].removeprefix("test accuracy: "))
    assert accuracy > 0.85
    model = MLP.load(tmp_path / "m.npz")
    assert model.sizes == (784, 10, 10)


def test_train_on_csv(small_csv):
    result = fastnn("train", "--data", str(small_csv), "--layers", "784,32,10", "--epochs", "3")
    assert result.returncode == 0, result.stderr
    assert "training 784-32-10 on 2,000 examples" in result.stdout
    loss = [float(line.split("loss ")[1].split(",")[0]) for line in result.stdout.splitlines()
            if line.startswith("epoch")]
    assert len(loss) == 3 and loss[2] < loss[0]


def test_tutorial_flag_reports_dev_accuracy(small_csv):
    result = fastnn("train", "--tutorial", "--data", str(small_csv))
    assert result.returncode == 0, result.stderr
    assert "full-batch gradient descent on 1,000 examples, 1,000 for dev" in result.stdout
    assert result.stdout.count("iteration ") == 50
    assert float(result.stdout.split("dev accuracy: ")[1]) > 0.5


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "/no/such/file.csv"], "/no/such/file.csv"),
    (["train", "--layers", "784,0,10"], "layers"),
    (["train", "--epochs", "-2"], "epochs"),
    (["train", "--lr", "nan"], "lr"),
])
def test_bad_input_is_one_line_and_non_zero_exit(args, message, shared_data):
    result = fastnn(*args, env={"FASTNN_DATA": str(shared_data)})
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_wrong_width_for_the_data(small_csv):
    result = fastnn("train", "--data", str(small_csv), "--layers", "100,10,10")
    assert result.returncode == 1
    assert result.stderr.strip() == "fastnn: error: X has 784 features per example, the network expects 100"


# -- the whole command line: train, evaluate, predict, plot, info ------------------------------------

import hashlib
import json
import signal
import time

import matplotlib.image

from fastnn.cli import config as cli_config


@pytest.fixture(scope="module")
def data_files(tmp_path_factory, mnist):
    """train.csv: 2,000 labelled digits (Kaggle train layout); test.csv: 100 unlabelled ones (Kaggle
    test layout)."""
    folder = tmp_path_factory.mktemp("data")
    pixels = ",".join(f"pixel{i}" for i in range(784))
    train = folder / "train.csv"
    np.savetxt(train, np.column_stack([mnist.train_labels[:2000], mnist.train_images[:2000]]), fmt="%d",
               delimiter=",", header="label," + pixels, comments="")
    test = folder / "test.csv"
    np.savetxt(test, mnist.test_images[:100], fmt="%d", delimiter=",", header=pixels, comments="")
    return {"train": train, "test": test, "X": mnist.train_images[:2000], "y": mnist.train_labels[:2000],
            "X_test": mnist.test_images[:100]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_files):
    """One run of `fastnn train` from a TOML config, overridden on the command line, with a
    validation split, a JSON-lines metrics log and the progress bar forced on."""
    folder = tmp_path_factory.mktemp("trained")
    (folder / "run.toml").write_text('layers = [784, 32, 10]\noptimizer = "adam"\nlr = 0.002\n'
                                     'schedule = "cosine"\nepochs = 5\nbatch_size = 32\n')
    result = fastnn("train", "--config", str(folder / "run.toml"), "--epochs", "3", "--data", str(data_files["train"]),
                    "--validation-split", "0.1", "--metrics", str(folder / "log.jsonl"),
                    "--out", str(folder / "m.npz"), "--progress")
    assert result.returncode == 0, result.stderr
    return {"result": result, "model": folder / "m.npz", "log": folder / "log.jsonl", "folder": folder}


def test_train_help_explains_every_option():
    result = fastnn("train", "--help")
    assert result.returncode == 0
    for option in cli_config.OPTIONS:
        assert f"--{option.name}" in result.stdout
    for extra in ("--config", "--resume", "--quiet", "--progress", "--tutorial"):
        assert extra in result.stdout


def test_train_from_config_with_overrides_progress_and_metrics_log(trained):
    out = trained["result"].stdout.splitlines()
    assert out[0] == ("training 784-32-10 on 1,800 examples (200 held out for validation): 3 epochs, batch 32, "
                      "lr 0.002, seed 0")
    assert [line.split(":")[0] for line in out[1:4]] == ["epoch 1", "epoch 2", "epoch 3"]
    assert "val loss" in out[1] and "val accuracy" in out[1]
    assert out[4] == f"saved {trained['model']}"
    assert "ex/s" in trained["result"].stderr and "epoch 3/3" in trained["result"].stderr  # the tqdm bar
    rows = [json.loads(line) for line in trained["log"].read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert set(r) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds",
                          "examples_per_second"}
        assert 0 < r["accuracy"] <= 1 and 0 < r["val_accuracy"] <= 1 and r["examples_per_second"] > 0
    assert rows[2]["loss"] < rows[0]["loss"]
    assert rows[0]["lr"] > rows[2]["lr"]  # cosine over 3 epochs
    model = MLP.load(trained["model"])
    assert model.sizes == (784, 32, 10) and model.epochs_trained == 3
    assert model.metadata["config"]["optimizer"] == "adam" and model.metadata["config"]["epochs"] == 3


def test_evaluate_table_and_json(trained, data_files):
    model = MLP.load(trained["model"])
    expected = model.evaluate(data_files["X"], data_files["y"])
    table = fastnn("evaluate", str(trained["model"]), "--data", str(data_files["train"]))
    assert table.returncode == 0, table.stderr
    assert f"accuracy: {expected['accuracy']:.4f}" in table.stdout
    assert f"loss: {expected['loss']:.4f}" in table.stdout
    assert "precision" in table.stdout and "recall" in table.stdout and "f1" in table.stdout
    assert "confusion matrix" in table.stdout
    result = fastnn("evaluate", str(trained["model"]), "--data", str(data_files["train"]), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["examples"] == 2000 and report["accuracy"] == pytest.approx(expected["accuracy"])
    cm = np.array(report["confusion_matrix"])
    predicted = model.predict(data_files["X"])
    assert cm.shape == (10, 10) and cm.sum() == 2000 and np.trace(cm) == (predicted == data_files["y"]).sum()
    for c in report["classes"]:
        tp, fp, fn = cm[c["class"], c["class"]], cm[:, c["class"]].sum(), cm[c["class"]].sum()
        assert c["precision"] == pytest.approx(tp / fp) and c["recall"] == pytest.approx(tp / fn)
        assert c["f1"] == pytest.approx(2 * c["precision"] * c["recall"] / (c["precision"] + c["recall"]))
        assert c["support"] == fn


def test_evaluate_on_the_mnist_folder_uses_its_test_set(trained, shared_data):
    result = fastnn("evaluate", str(trained["model"]), "--data", str(shared_data), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["examples"] == 10_000


def test_predict_writes_a_kaggle_submission(trained, data_files):
    result = fastnn("predict", str(trained["model"]), "--data", str(data_files["test"]))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "ImageId,Label" and len(lines) == 101
    expected = MLP.load(trained["model"]).predict(data_files["X_test"])
    assert lines[1:] == [f"{i},{p}" for i, p in enumerate(expected, start=1)]


def test_predict_show_draws_digits_in_the_terminal_and_as_png(trained, data_files, tmp_path):
    model = MLP.load(trained["model"])
    out = tmp_path / "submission.csv"
    result = fastnn("predict", str(trained["model"]), "--data", str(data_files["train"]), "--out", str(out),
                    "--show", "2", "--start", "5")
    assert result.returncode == 0, result.stderr
    predicted = model.predict(data_files["X"])
    assert out.read_text().splitlines() == ["ImageId,Label"] + [f"{i},{p}" for i, p in enumerate(predicted, 1)]
    lines = result.stdout.splitlines()
    assert lines[0] == "wrote 2,000 predictions to " + str(out)
    assert lines[1].startswith(f"example 5 (ImageId 6): predicted {predicted[5]} (")
    assert f"label {data_files['y'][5]}" in lines[1]
    assert lines[30].startswith(f"example 6 (ImageId 7): predicted {predicted[6]} (")
    drawing = lines[2:30]  # 28 rows of pixels, the stroke drawn with dark characters
    assert sum("@" in line for line in drawing) > 5 and max(len(line) for line in drawing) <= 56
    pictures = tmp_path / "shown"
    result = fastnn("predict", str(trained["model"]), "--data", str(data_files["test"]), "--show", "3",
                    "--png", str(pictures))
    assert result.returncode == 0, result.stderr
    assert "no label" in result.stdout
    for image_id in (1, 2, 3):
        image = matplotlib.image.imread(pictures / f"example_{image_id}.png")
        assert image.shape[:2] == (300, 300) and image.std() > 0.05


def test_plot_writes_real_pngs_of_the_expected_size(trained, data_files, tmp_path):
    result = fastnn("plot", str(trained["model"]), "--data", str(data_files["train"]), "--metrics",
                    str(trained["log"]), "--out-dir", str(tmp_path / "pictures"))
    assert result.returncode == 0, result.stderr
    for name, (height, width) in {"curves": (400, 1000), "confusion": (600, 600),
                                  "misclassified": (800, 800)}.items():
        path = tmp_path / "pictures" / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(path)
        assert image.shape == (height, width, 4), name
        assert image[..., :3].std() > 0.05, f"{name}.png is blank"
    assert "misclassified of 2,000" in result.stdout
    # the curves alone, from the log, at another resolution
    result = fastnn("plot", "--metrics", str(trained["log"]), "--out-dir", str(tmp_path / "p2"), "--dpi", "50")
    assert result.returncode == 0, result.stderr
    assert matplotlib.image.imread(tmp_path / "p2" / "curves.png").shape == (200, 500, 4)


def test_info_describes_the_model_file(trained, data_files):
    result = fastnn("info", str(trained["model"]))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "network: 784-32-10, relu hidden, softmax output, float32" in text
    assert f"parameters: {784 * 32 + 32 + 32 * 10 + 10:,}" in text
    assert "written by fastnn 0.1.0" in text and "trained 3 epochs; optimizer Adam" in text
    assert "optimizer=adam" in text and "epochs=3" in text and "schedule=cosine" in text
    digest = hashlib.sha256()
    for a in (data_files["X"], data_files["y"]):
        digest.update(f"{a.dtype.str}|{a.shape}|".encode())
        digest.update(a.tobytes())
    assert f"sha256 {digest.hexdigest()}" in text
    meta = json.loads(fastnn("info", str(trained["model"]), "--json").stdout)
    assert meta["fastnn"] == "0.1.0" and meta["model"]["sizes"] == [784, 32, 10]
    assert meta["extra"]["data"]["sha256"] == digest.hexdigest() and meta["parameters"] == 25_450


def test_import_fastnn_loads_neither_matplotlib_nor_tqdm():
    code = "import sys, fastnn, fastnn.cli; print(sorted({'matplotlib', 'tqdm'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


# -- checkpoints: Ctrl-C / SIGTERM, --resume, --checkpoint-every, kills during a save ---------------

# Long enough (8 epochs of 500 batches) that a signal sent after epoch 1 lands mid-training; dropout,
# a validation split and the plateau schedule (whose state the checkpoint carries) all take part.
RUN = ["--layers", "784,64,10", "--epochs", "8", "--batch-size", "4", "--optimizer", "adam", "--dropout", "0.1",
       "--validation-split", "0.1", "--schedule", "plateau", "--lr-patience", "0", "--gamma", "0.5", "--seed", "3"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_files):
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = fastnn("train", "--data", str(data_files["train"]), *RUN, "--out", str(folder / "ref.npz"),
                    "--checkpoint-every", "4", "--metrics", str(folder / "log.csv"), "--quiet", "--progress")
    assert result.returncode == 0, result.stderr
    return {"result": result, "folder": folder, "params": MLP.load(folder / "ref.npz").get_params(),
            "log": (folder / "log.csv").read_text().splitlines()}


def test_quiet_has_no_bar_but_keeps_the_epoch_lines(uninterrupted):
    assert uninterrupted["result"].stderr == ""
    lines = uninterrupted["result"].stdout.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("epoch")] == [f"epoch {i}" for i in range(1, 9)]
    assert uninterrupted["log"][0] == "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds,examples_per_second"
    assert [row.split(",")[0] for row in uninterrupted["log"][1:]] == [str(i) for i in range(1, 9)]
    lrs = [float(row.split(",")[5]) for row in uninterrupted["log"][1:]]
    assert min(lrs) < max(lrs), "the plateau schedule never lowered the lr: the test would not cover its state"


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_and_resume_is_bit_identical(signum, status, uninterrupted, data_files, tmp_path):
    checkpoint, log = tmp_path / "run.ckpt.npz", tmp_path / "log.csv"
    process = subprocess.Popen([sys.executable, "-m", "fastnn.cli", "train", "--data", str(data_files["train"]),
                                *RUN, "--out", str(tmp_path / "run.npz"), "--checkpoint", str(checkpoint),
                                "--metrics", str(log)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if line.startswith("epoch 1:"):
                process.send_signal(signum)
                break
        out, err = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == status, err
    # the command continues into the same files: run.npz beside run.ckpt.npz needs no --out, the log does
    command = f"fastnn train --resume {checkpoint} --metrics {log}"
    assert err.strip().splitlines()[-1] == f"interrupted: checkpoint saved to {checkpoint}; resume with: {command}"
    assert "Traceback" not in err
    assert not (tmp_path / "run.npz").exists()
    stopped = MLP.load(checkpoint)
    assert 1 <= stopped.epochs_trained < 8

    resumed = fastnn(*command.split()[1:])
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith(f"resuming 784-64-10 on 1,800 examples (200 held out for validation) from "
                                     f"{checkpoint}: epoch {stopped.epochs_trained + 1} of 8")
    assert np.array_equal(MLP.load(tmp_path / "run.npz").get_params(), uninterrupted["params"])
    rows = log.read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == [str(i) for i in range(1, 9)]
    # epochs trained whole after the resumed one: the same loss, validation loss and lr, to the last digit
    after = stopped.epochs_trained + 2
    strip = lambda row: row.split(",")[:6]
    assert [strip(r) for r in rows[after:]] == [strip(r) for r in uninterrupted["log"][after:]]


def test_resume_from_a_periodic_checkpoint(uninterrupted, tmp_path):
    checkpoint = uninterrupted["folder"] / "ref.ckpt.npz"  # --checkpoint-every 4, beside --out
    assert MLP.load(checkpoint).epochs_trained == 4
    info = fastnn("info", str(checkpoint))
    assert "trained 4 epochs" in info.stdout
    result = fastnn("train", "--resume", str(checkpoint), "--out", str(tmp_path / "m.npz"),
                    "--metrics", str(tmp_path / "log.csv"))
    assert result.returncode == 0, result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()[1:5]] == ["epoch 5", "epoch 6", "epoch 7",
                                                                                "epoch 8"]
    assert np.array_equal(MLP.load(tmp_path / "m.npz").get_params(), uninterrupted["params"])


def test_kill_9_during_training_then_resume_from_the_last_checkpoint(uninterrupted, data_files, tmp_path):
    """No handler runs on SIGKILL: the periodic checkpoint on disk is all that is left, whole, and
    resuming from it ends bit-identical to the uninterrupted run."""
    checkpoint = tmp_path / "run.ckpt.npz"
    process = subprocess.Popen([sys.executable, "-m", "fastnn.cli", "train", "--data", str(data_files["train"]),
                                *RUN, "--out", str(tmp_path / "run.npz"), "--checkpoint", str(checkpoint),
                                "--checkpoint-every", "1", "--quiet"], stdout=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if line.startswith("epoch 2:"):
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=300)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    assert not (tmp_path / "run.npz").exists()
    assert MLP.load(checkpoint).epochs_trained in (1, 2)  # the one written last, whole
    result = fastnn("train", "--resume", str(checkpoint), "--out", str(tmp_path / "run.npz"))
    assert result.returncode == 0, result.stderr
    assert np.array_equal(MLP.load(tmp_path / "run.npz").get_params(), uninterrupted["params"])


SAVER = """
import sys
import numpy as np
from fastnn import MLP

path, first = sys.argv[1], int(sys.argv[2])
model = MLP([784, 2048, 2048, 10], dtype="float64")
n = model.get_params().size
for version in range(first, first + 1000):
    model.set_params(np.full(n, float(version)))
    model.save(path, version=version)
    print(version, flush=True)
"""


def test_a_kill_during_a_save_leaves_the_previous_model_intact(tmp_path):
    path = tmp_path / "big.npz"
    rng = np.random.default_rng(0)
    first, seen = 0, set()
    for _ in range(5):
        saver = subprocess.Popen([sys.executable, "-c", SAVER, str(path), str(first)], stdout=subprocess.PIPE,
                                 text=True)
        try:
            last = int(saver.stdout.readline())  # one complete save, then kill at a random moment
            time.sleep(rng.uniform(0, 0.6))
        finally:
            saver.kill()
            saver.wait()
        model = MLP.load(path)  # checks the file's SHA-256: a torn write would fail here
        version = model.metadata["version"]
        assert last <= version <= last + 1000
        assert np.all(model.get_params() == version)
        seen.add(version)
        first = version + 1
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith("big")] == ["big.npz"]
        for stray in tmp_path.glob(".big.npz.*.tmp"):  # a kill -9 cannot clean up after itself
            stray.unlink()
    assert len(seen) == 5


# -- bad input: one line on stderr, a non-zero status --------------------------------------------------

@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, trained):
    folder = tmp_path_factory.mktemp("bad")
    (folder / "truncated.npz").write_bytes(trained["model"].read_bytes()[:5000])
    (folder / "text.npz").write_text("not a model\n")
    MLP([100, 10, 10]).save(folder / "narrow.npz")
    (folder / "unknown.toml").write_text("layers = [784, 32, 10]\nepochz = 3\n")
    (folder / "typo.toml").write_text("epochs = 'ten'\n")
    (folder / "broken.toml").write_text("layers = [784\n")
    (folder / "log.csv").write_text("a,b\n1,2\n")
    MLP([784, 10, 10]).save(folder / "untrained.npz")
    return folder


@pytest.mark.parametrize("args, message, status", [
    (["train", "--config", "{bad}/unknown.toml"], "unknown key 'epochz'", 1),
    (["train", "--config", "{bad}/typo.toml"], "epochs must be an integer", 1),
    (["train", "--config", "{bad}/broken.toml"], "is not valid TOML", 1),
    (["train", "--config", "{bad}/missing.toml"], "config file {bad}/missing.toml does not exist", 1),
    (["train", "--batch-size", "0"], "batch-size must be an integer >= 1", 2),
    (["train", "--optimizer", "lbfgs"], "optimizer must be one of", 2),
    (["train", "--metrics", "log.txt"], "must end in .csv or .jsonl", 2),
    (["train", "--optimizer", "adam", "--momentum", "0.9"], "the adam optimizer has none", 1),
    (["train", "--resume", "{bad}/truncated.npz"], "truncated or corrupt", 1),
    (["train", "--resume", "{bad}/untrained.npz"], "not a checkpoint written by fastnn train", 1),
    (["train", "--resume", "{model}", "--lr", "0.5"], "--lr cannot change when resuming", 1),
    (["evaluate", "{bad}/missing.npz"], "model file {bad}/missing.npz does not exist", 1),
    (["evaluate", "{bad}/truncated.npz", "--data", "{test}"], "truncated or corrupt", 1),
    (["evaluate", "{model}", "--data", "{test}"], "has no label column", 1),
    (["predict", "{bad}/narrow.npz", "--data", "{test}"], "has 784 features per example, the network expects 100", 1),
    (["evaluate", "{model}", "--data", "{bad}/nothing.csv"], "{bad}/nothing.csv does not exist", 1),
    (["predict", "{model}", "--data", "{test}", "--show", "0"], "expected an integer >= 1", 2),
    (["predict", "{model}", "--data", "{test}", "--out", "{bad}/no/such/folder/p.csv"], "could not write", 1),
    (["plot"], "nothing to plot", 1),
    (["plot", "--metrics", "{bad}/log.csv"], "is not a fastnn metrics log", 1),
    (["info", "{bad}/text.npz"], "text.npz", 1),
    (["info"], "the following arguments are required: MODEL", 2),
    (["frobnicate"], "invalid choice: 'frobnicate'", 2),
])
def test_each_command_rejects_bad_input_in_one_line(args, message, status, bad_files, trained, data_files):
    names = {"bad": bad_files, "model": trained["model"], "test": data_files["test"]}
    result = fastnn(*[a.format(**names) for a in args])
    assert result.returncode == status, result.stderr
    assert message.format(**names) in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("fastnn")


def test_divergence_exits_non_zero_and_saves_the_last_good_weights(small_csv, tmp_path):
    out = tmp_path / "m.npz"
    result = fastnn("train", "--data", str(small_csv), "--layers", "784,32,10", "--epochs", "3",
                    "--lr", "1e9", "--init", "he", "--out", str(out))
    assert result.returncode == 1
    assert "NaN or infinite" in result.stderr and f"saved them to {out}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert np.isfinite(MLP.load(out).get_params()).all()
