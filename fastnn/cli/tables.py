"""The command line's data: digit images (MNIST IDX folders, Kaggle-layout CSVs) or a table of
the user's own (CSV, TSV, Parquet, .npz), and for a table the encoding learnt on its training
rows (fastnn.data.tables), which the model file keeps for evaluate and predict."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError, FastnnError, ModelFileError

if TYPE_CHECKING:
    from ..data.tables import TableEncoding

IMAGE_SUFFIXES = (".csv", ".csv.gz")  # a CSV is digits when its header is Kaggle's, else a table


@dataclass
class TrainingData:
    """Training and test arrays as the network reads them, and a table's encoding (None for
    digit images, which are 0..255 pixels)."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    encoding: "TableEncoding | None" = None


def is_table(path, target: str | None = None) -> bool:
    """Whether --data names a table: with --target, or a table file that is not a Kaggle digits CSV."""
    from ..data.checks import regular_file
    from ..data.tables import is_table as table_suffix

    if path is None or Path(path).is_dir():
        if target is not None:
            raise FastnnError("--target needs --data naming a table file (CSV, TSV, Parquet or .npz)")
        return False
    if target is not None:
        return True
    if str(path).lower().endswith(IMAGE_SUFFIXES):
        regular_file(path, "CSV file")  # before peeking: a FIFO would block
        return not _kaggle_header(Path(path))
    return table_suffix(path)


def _kaggle_header(p: Path) -> bool:
    """Whether the file's first line is label,pixel0,... or pixel0,... (the digits layout); a
    file whose first line cannot be read, or is longer than the digits reader takes, goes to
    the digits reader for its message."""
    from ..data.datasets import MAX_CSV_HEADER_BYTES

    try:
        with open(p, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(p, "rb") if compressed else open(p, "rb")) as f:
            line = f.readline(MAX_CSV_HEADER_BYTES + 1)
    except (OSError, EOFError, ValueError):
        return True
    if len(line) > MAX_CSV_HEADER_BYTES:
        return True
    line = line.decode("utf-8", "replace").strip()
    names = line.split(",")
    pixels = names[1:] if names[:1] == ["label"] else names
    return bool(pixels) and pixels == [f"pixel{i}" for i in range(len(pixels))]


def load_training_data(config: dict, encoding=None, dtype=np.float32) -> TrainingData:
    """The run's data: MNIST by default; an IDX folder or a digits CSV; or a table, split
    (--test-split, stratified) and encoded by ``encoding``, else by one learnt on its
    training rows."""
    from ..data import datasets

    path = config["data"]
    if encoding is None and not is_table(path, config.get("target")):
        if path is None:
            mnist = datasets.load_mnist()
            return TrainingData(mnist.train_images, mnist.train_labels, mnist.test_images, mnist.test_labels)
        return TrainingData(*datasets.load_dataset(path))
    return _table_data(config, encoding, dtype)


def _table_data(config: dict, encoding, dtype) -> TrainingData:
    from ..data.tables import (TableEncoding, default_target, inferred_task, read_table, refuse_missing,
                               stratified_split)

    frame = read_table(config["data"])
    target = encoding.target if encoding is not None else config.get("target") or default_target(frame)
    if target not in frame.columns:
        raise DataError(f"the table {config['data']} has no column {target!r}")
    refuse_missing(frame[target], target)  # before the split sorts the classes (a NaN is none)
    task = encoding.task if encoding is not None else config.get("task") or inferred_task(frame[target])
    rows, test_rows = np.arange(len(frame)), None
    if config.get("test-split"):
        strata = frame[target].astype(str).to_numpy() if task == "classification" else None
        rows, test_rows = stratified_split(strata, len(frame), config["test-split"], config["seed"])
    train = frame.iloc[rows]
    if encoding is None:
        encoding = TableEncoding.learn(train, target, task=task, scale=config.get("scale") or "standard")
    test = frame.iloc[test_rows] if test_rows is not None else None
    return TrainingData(encoding.inputs(train, dtype), model_targets(encoding, train),
                        None if test is None else encoding.inputs(test, dtype),
                        None if test is None else model_targets(encoding, test), encoding)


def model_targets(encoding, frame) -> np.ndarray:
    """What the model trains on: class names (the model keeps them as its classes) or the
    standardised values."""
    targets = encoding.targets(frame)
    return targets if encoding.task == "regression" else np.asarray(encoding.classes)[targets]


def network_settings(config: dict, encoding) -> dict:
    """MLP's layer sizes, output, classes and pixels for the data: a table's widths around
    --hidden (or --layers, checked against the table), digits as 0..255 pixels."""
    if encoding is None:
        return {"sizes": config["layers"], "pixels": True}
    sizes = [encoding.n_inputs, *config["hidden"], encoding.n_outputs]
    if config.get("layers") is not None:
        given = list(config["layers"])
        if (given[0], given[-1]) != (sizes[0], sizes[-1]):
            raise FastnnError(f"--layers {','.join(map(str, given))} does not fit the table: it has "
                              f"{sizes[0]} inputs (after one-hot encoding) and {sizes[-1]} outputs")
        sizes = given
    if encoding.task == "regression":
        return {"sizes": sizes, "output": "linear", "pixels": False}
    return {"sizes": sizes, "output": "softmax", "pixels": False, "classes": encoding.classes}


def model_encoding(model):
    """The table encoding a model file keeps, or None (a digits model); ModelFileError when it
    is damaged or does not fit the network (its widths, output or class names differ)."""
    from ..data.tables import TableEncoding

    stored = model.metadata.get("table")
    if stored is None:
        return None
    encoding = TableEncoding.from_dict(stored)
    output = "linear" if encoding.task == "regression" else "softmax"
    if (model.sizes[0], model.sizes[-1], model.output) != (encoding.n_inputs, encoding.n_outputs, output):
        gives = f"{len(encoding.classes)} classes" if encoding.task == "classification" else "regression"
        raise ModelFileError(f"the model file's table encoding ({encoding.n_inputs} inputs, {gives}) does not fit "
                             f"its {'-'.join(map(str, model.sizes))} network with a {model.output} output")
    if output == "softmax" and list(model.classes or []) != encoding.classes:
        raise ModelFileError("the model file's table encoding and its network name different classes")
    return encoding
