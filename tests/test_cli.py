"""The `fastnn` command, run as a person would: a subprocess, its output and its exit status."""

import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import MLP


def fastnn(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fastnn.cli", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


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
    accuracy = float(lines[3].removeprefix("test accuracy: "))
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
