"""Tables end to end (issue 25): `fastnn train/evaluate/predict/info/plot` on CSV, TSV, Parquet and
.npz tables made from scikit-learn's bundled data sets, and fastnn.data.tables.TableEncoding from
Python.

`fastnn` runs as a subprocess with a timeout, as in tests/test_outputs_safe.py. Most runs train a
few epochs: the table defaults (200 epochs of Adam) are the point only of the comparison with
scikit-learn.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from fastnn import MLP
from fastnn.cli.tables import model_encoding, model_targets
from fastnn.cli.trainer import data_checksum
from fastnn.data.tables import TableEncoding, default_target, inferred_task, read_table, stratified_split
from fastnn.errors import DataError, ModelFileError

pd = pytest.importorskip("pandas")
sk = pytest.importorskip("sklearn.datasets")

SPECIES = ["setosa", "versicolor", "virginica"]
FEW = ["--epochs", "5", "--quiet"]


def fastnn(*args, cwd=None, timeout=120):
    """`fastnn ARGS` in a subprocess; stderr without the JIT's "note:" line."""
    result = subprocess.run([sys.executable, "-m", "fastnn.cli", *map(str, args)], capture_output=True,
                            text=True, timeout=timeout, cwd=cwd)
    result.stderr = "".join(line for line in result.stderr.splitlines(keepends=True) if not line.startswith("note: "))
    return result


def ok(*args, **kwargs) -> str:
    """stdout of a `fastnn ARGS` run that must succeed."""
    result = fastnn(*args, **kwargs)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(*args, message: str) -> None:
    """A `fastnn ARGS` run that must fail with exactly one line, ``fastnn: error: MESSAGE``."""
    result = fastnn(*args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == f"fastnn: error: {message}\n"


def weights(path) -> np.ndarray:
    return MLP.load(path).get_params()


def iris_frame():
    """Iris with its species as text, in a column named species, last."""
    bunch = sk.load_iris(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "species"})
    frame["species"] = np.asarray(SPECIES)[frame["species"]]
    return frame


def iris_with_text():
    """Iris with the sepal length replaced by a text column of three sizes (first), the species second."""
    frame = iris_frame()
    frame["size"] = pd.cut(frame["sepal length (cm)"], 3, labels=["small", "medium", "large"]).astype(str)
    return frame[["size", "species", "petal length (cm)", "petal width (cm)", "sepal width (cm)"]]


def labelled(loader):
    """A bundled classification set with its class names as text in a column named target, last."""
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    frame["target"] = np.asarray(bunch.target_names)[frame.pop("target")].astype(str)
    return frame


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tables")


@pytest.fixture(scope="module")
def iris_csv(folder) -> Path:
    path = folder / "iris.csv"
    iris_frame().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def text_model(folder) -> dict:
    """A model trained on iris_with_text (one-hot sizes): its file and table."""
    csv = folder / "iris_text.csv"
    iris_with_text().to_csv(csv, index=False)
    model = folder / "iris_text.npz"
    out = ok("train", "--data", csv, "--target", "species", "--epochs", "30", "--quiet", "--out", model)
    assert "training 6-100-3 on 150 examples: 30 epochs, batch 200, lr 0.001, seed 0" in out
    return {"csv": csv, "model": model}


# -- classes by name, the target anywhere ------------------------------------------------------------

def test_text_classes_with_the_target_first_middle_or_last(folder):
    frame = iris_frame()
    features = [c for c in frame.columns if c != "species"]
    names = {"first": "Kind of iris", "middle": "species", "last": "espèce"}
    layouts = {"first": ["species", *features], "middle": [*features[:2], "species", *features[2:]],
               "last": [*features, "species"]}
    models = {}
    for where, columns in layouts.items():
        csv = folder / f"{where}.csv"
        frame[columns].rename(columns={"species": names[where]}).to_csv(csv, index=False)
        models[where] = folder / f"{where}.npz"
        out = ok("train", "--data", csv, "--target", names[where], *FEW, "--out", models[where])
        assert out.startswith("training 4-100-3 on 150 examples: 5 epochs, batch 200, lr 0.001, seed 0\n")
        model = MLP.load(models[where])
        assert model.classes == SPECIES and model.output == "softmax"
        assert model_encoding(model).columns == features
    # The features keep their order wherever the target is: the same network.
    assert np.array_equal(weights(models["first"]), weights(models["middle"]))
    assert np.array_equal(weights(models["first"]), weights(models["last"]))
    report = ok("evaluate", models["middle"], "--data", folder / "middle.csv")
    for species in SPECIES:
        assert re.search(rf"^\s*{species}\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+50$", report, re.MULTILINE), report
    assert "confusion matrix (rows: true class, columns: predicted class)" in report
    info = ok("info", models["first"])
    assert "table target: Kind of iris (classification, 3 classes: setosa, versicolor, virginica)" in info


@pytest.mark.parametrize("name", ["label", "y"])
def test_the_target_is_found_by_its_usual_names(name, folder):
    csv = folder / f"named_{name}.csv"
    iris_frame().rename(columns={"species": name}).to_csv(csv, index=False)
    assert "training 4-100-3 on 150 examples" in ok("train", "--data", csv, "--epochs", "1", "--quiet")


def test_the_usual_target_names_in_order():
    frame = iris_frame()
    for name in ("y", "label", "target", "class", "Label", "Target", "Class"):
        assert default_target(frame.rename(columns={"species": name})) == name
    both = frame.assign(label=0, y=1)
    assert default_target(both) == "y"


def test_without_a_known_target_name_the_columns_are_listed(folder):
    csv = folder / "unnamed.csv"
    iris_frame().rename(columns={"species": "Species"}).to_csv(csv, index=False)
    fails("train", "--data", csv, "--epochs", "1", message="name the target column with --target (the columns are "
          "sepal length (cm), sepal width (cm), petal length (cm), petal width (cm), Species)")


def test_the_task_is_inferred_from_the_target():
    assert inferred_task(pd.Series(["a", "b", "a"], name="t")) == "classification"
    assert inferred_task(pd.Series([True, False], name="t")) == "classification"
    assert inferred_task(pd.Series(np.arange(60) % 30, name="t")) == "classification"  # 30 distinct integers
    assert inferred_task(pd.Series(np.arange(31), name="t")) == "regression"  # 31
    assert inferred_task(pd.Series([1.0, 2.5, 1.0], name="t")) == "regression"
    with pytest.raises(DataError, match=r"^column 't' has a missing value at row 2 \(1 missing in all\)"):
        inferred_task(pd.Series([1.0, np.nan, 2.0], name="t"))


# -- regression ------------------------------------------------------------------------------------

def test_regression_reports_r2_rmse_and_mae_of_its_predictions(folder):
    diabetes = sk.load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    csv, model, predictions = folder / "diabetes.csv", folder / "diabetes.npz", folder / "diabetes_predictions.csv"
    diabetes.to_csv(csv, index=False)
    out = ok("train", "--data", csv, "--target", "progression", "--epochs", "20", "--quiet", "--out", model)
    assert "training 10-100-1 on 442 examples" in out
    assert MLP.load(model).output == "linear"
    ok("predict", model, "--data", csv, "--out", predictions)
    written = pd.read_csv(predictions)
    assert list(written.columns) == ["row", "progression"]
    assert written["row"].tolist() == list(range(1, 443))
    predicted, truth = written["progression"].to_numpy(), diabetes["progression"].to_numpy()
    # In the target's own units, not the standardised ones the network learns.
    assert 50 < predicted.mean() < 250 and predicted.std() > 10
    report = json.loads(ok("evaluate", model, "--data", csv, "--json"))
    error = predicted - truth
    expected = {"r2": 1 - (error ** 2).sum() / ((truth - truth.mean()) ** 2).sum(),
                "rmse": np.sqrt((error ** 2).mean()), "mae": np.abs(error).mean()}
    for key, value in expected.items():
        assert report[key] == pytest.approx(value, rel=1e-6), key
    assert report["examples"] == 442 and report["target"] == "progression"
    assert 0 < report["r2"] < 1
    text = ok("evaluate", model, "--data", csv)
    assert f"R²: {report['r2']:.4f}" in text and f"RMSE: {report['rmse']:.6g}" in text
    info = ok("info", model)
    assert "table target: progression (regression)\nnumeric columns: 10, scaled: standard" in info
    plot = ok("plot", model, "--data", csv, "--out-dir", folder / "diabetes_plots")
    assert plot == f"wrote {folder / 'diabetes_plots' / 'curves.png'} (20 epochs)\n"
    assert sorted(p.name for p in (folder / "diabetes_plots").iterdir()) == ["curves.png"]


def test_a_split_regression_prints_the_test_scores_evaluate_gives(folder):
    diabetes = sk.load_diabetes(as_frame=True, scaled=False).frame
    csv, model, held_out = folder / "diabetes_split.csv", folder / "diabetes_split.npz", folder / "diabetes_test.csv"
    diabetes.to_csv(csv, index=False)
    out = ok("train", "--data", csv, "--target", "target", "--test-split", "0.2", "--epochs", "10", "--quiet",
             "--out", model)
    _, test_rows = stratified_split(None, len(diabetes), 0.2, 0)
    diabetes.iloc[test_rows].to_csv(held_out, index=False)
    report = json.loads(ok("evaluate", model, "--data", held_out, "--json"))
    assert report["examples"] == len(test_rows) == 88
    assert f"test R² {report['r2']:.4f}, RMSE {report['rmse']:.6g}, MAE {report['mae']:.6g}\n" in out


# -- text feature columns ---------------------------------------------------------------------------

def test_text_columns_are_one_hot_encoded_and_info_shows_them(text_model):
    info = ok("info", text_model["model"])
    assert ("table target: species (classification, 3 classes: setosa, versicolor, virginica)\n"
            "numeric columns: 3, scaled: standard\n"
            "one-hot column size: large, medium, small\n") in info
    assert "network: 6-100-3" in info
    encoding = model_encoding(MLP.load(text_model["model"]))
    X = encoding.inputs(iris_with_text())
    sizes = iris_with_text()["size"].to_numpy()
    expected = np.stack([sizes == k for k in ["large", "medium", "small"]], axis=1).astype(np.float32)
    assert np.array_equal(X[:, :3], expected)  # 0/1, not scaled
    assert np.allclose(X[:, 3:].mean(axis=0), 0, atol=1e-6) and np.allclose(X[:, 3:].std(axis=0), 1, atol=1e-5)


def test_a_category_unseen_in_training_is_all_zeros_not_an_error(text_model, folder):
    frame = iris_with_text()
    frame.loc[[0, 60], "size"] = "gigantic"
    csv, predictions = folder / "unseen.csv", folder / "unseen_predictions.csv"
    frame.to_csv(csv, index=False)
    ok("predict", text_model["model"], "--data", csv, "--out", predictions)
    model = MLP.load(text_model["model"])
    X = model_encoding(model).inputs(frame)
    assert not X[[0, 60], :3].any() and (X[np.r_[1:60, 61:150], :3].sum(axis=1) == 1).all()
    expected = np.asarray(SPECIES)[model.predict_proba(X).argmax(axis=1)]
    assert pd.read_csv(predictions)["species"].tolist() == expected.tolist()
    assert json.loads(ok("evaluate", text_model["model"], "--data", csv, "--json"))["examples"] == 150


def test_evaluate_names_a_missing_feature_or_target_column(text_model, folder):
    frame = iris_with_text()
    no_size, no_species = folder / "no_size.csv", folder / "no_species.csv"
    frame.drop(columns="size").to_csv(no_size, index=False)
    frame.drop(columns="species").to_csv(no_species, index=False)
    fails("evaluate", text_model["model"], "--data", no_size,
          message="the table lacks the column size that the model was trained on")
    fails("predict", text_model["model"], "--data", no_size,
          message="the table lacks the column size that the model was trained on")
    fails("evaluate", text_model["model"], "--data", no_species, message="the table has no target column 'species'")
    # predict needs no target
    assert ok("predict", text_model["model"], "--data", no_species).startswith("row,species\n1,setosa\n")


def test_a_class_the_model_does_not_know_is_named_by_its_row(text_model, folder):
    frame = iris_with_text()
    frame.loc[7, "species"] = "rosa"
    csv = folder / "rosa.csv"
    frame.to_csv(csv, index=False)
    fails("evaluate", text_model["model"], "--data", csv, message="column 'species' has the class 'rosa' at row 8, "
          "which is not one of the model's classes (setosa, versicolor, virginica)")


def test_plot_draws_the_curves_and_the_confusion_matrix_of_a_table(text_model, folder):
    out_dir = folder / "plots"
    out = ok("plot", text_model["model"], "--data", text_model["csv"], "--out-dir", out_dir)
    assert out == f"wrote {out_dir / 'curves.png'} (30 epochs)\nwrote {out_dir / 'confusion.png'}\n"
    assert sorted(p.name for p in out_dir.iterdir()) == ["confusion.png", "curves.png"]  # no images of rows
    for name in ("confusion.png", "curves.png"):
        assert (out_dir / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


# -- cells that cannot be used -----------------------------------------------------------------------

MISSING = "has a missing value at row {} (1 missing in all); fill or drop them first"


def _damaged(kind: str, row: int):
    """iris_with_text with one bad cell at ``row`` (from 0), and the message naming it (row + 1 to fill in)."""
    frame = iris_with_text()
    if kind == "empty numeric cell":
        frame.loc[row, "petal width (cm)"] = np.nan
        return frame, f"column 'petal width (cm)' {MISSING}"
    if kind == "empty text cell":
        frame.loc[row, "size"] = None
        return frame, f"column 'size' {MISSING}"
    if kind == "empty target":
        frame.loc[row, "species"] = None
        return frame, f"column 'species' {MISSING}"
    frame["petal width (cm)"] = frame["petal width (cm)"].astype(object)
    frame.loc[row, "petal width (cm)"] = "n/a?"
    return frame, "column 'petal width (cm)' has a non-numeric value 'n/a?' at row {}"


KINDS = ["empty numeric cell", "empty text cell", "empty target", "text in a numeric column"]
# A row the split of 0.5 (seed 0) trains on, and one it holds out (checked below).
TRAINING_ROW, TEST_ROW = (int(rows[30]) for rows in stratified_split(np.repeat(SPECIES, 50), 150, 0.5, 0))


@pytest.mark.parametrize(("kind", "split"), [*((kind, None) for kind in KINDS),
                                            *((kind, split) for kind in ("empty text cell", "text in a numeric column")
                                              for split in ("training row", "test row"))])
def test_a_bad_cell_is_refused_naming_its_column_and_row(kind, split, folder):
    row = TEST_ROW if split == "test row" else TRAINING_ROW
    frame, message = _damaged(kind, row)
    csv = folder / "damaged.csv"
    frame.to_csv(csv, index=False)
    extra = [] if split is None else ["--test-split", "0.5"]
    fails("train", "--data", csv, "--target", "species", *extra, "--epochs", "1",
          message=message.format(row + 1))  # the table's own row, wherever the split put it


def test_split_rows_are_as_the_tests_of_bad_cells_assume():
    train, test = stratified_split(iris_frame()["species"].to_numpy(str), 150, 0.5, 0)
    assert TRAINING_ROW in train and TEST_ROW in test
    assert TRAINING_ROW + 1 != train.tolist().index(TRAINING_ROW) + 1  # a split's own row number would differ
    assert TEST_ROW + 1 != test.tolist().index(TEST_ROW) + 1


@pytest.mark.parametrize("kind", ["empty numeric cell", "text in a numeric column"])
def test_evaluate_and_predict_refuse_a_bad_cell_the_same_way(kind, text_model, folder):
    frame, message = _damaged(kind, 41)
    csv = folder / "damaged_for_evaluate.csv"
    frame.to_csv(csv, index=False)
    fails("evaluate", text_model["model"], "--data", csv, message=message.format(42))
    fails("predict", text_model["model"], "--data", csv, message=message.format(42))


# -- formats ---------------------------------------------------------------------------------------

def test_every_format_gives_the_same_model(folder):
    frame = iris_frame()
    files = {"iris.csv": "species", "iris.csv.gz": "species", "iris.tsv": "species", "iris.parquet": "species",
             "iris_arrays.npz": "y"}
    frame.to_csv(folder / "iris.csv", index=False)
    frame.to_csv(folder / "iris.csv.gz", index=False)
    frame.to_csv(folder / "iris.tsv", sep="\t", index=False)
    frame.set_axis(np.arange(1000, 1150)).to_parquet(folder / "iris.parquet")  # a stored index is dropped
    np.savez(folder / "iris_arrays.npz", X=frame.drop(columns="species").to_numpy(), y=frame["species"].to_numpy(str))
    models = {}
    for name, target in files.items():
        models[name] = folder / f"{name}.model.npz"
        ok("train", "--data", folder / name, "--target", target, "--batch-size", "32", *FEW, "--out", models[name])
    first = MLP.load(models["iris.csv"])
    for name, path in models.items():
        model = MLP.load(path)
        assert np.array_equal(model.get_params(), first.get_params()), name
        assert model.metadata["data"]["sha256"] == first.metadata["data"]["sha256"], name
        assert model.classes == SPECIES
    assert model_encoding(MLP.load(models["iris_arrays.npz"])).columns == ["x0", "x1", "x2", "x3"]
    assert (read_table(folder / "iris.parquet").index == np.arange(150)).all()


def test_a_gzipped_csv_in_the_digits_layout_is_still_a_table_with_target(folder):
    bunch = sk.load_digits(as_frame=True)
    frame = bunch.frame.rename(columns={f"pixel_{r}_{c}": f"pixel{8 * r + c}" for r in range(8) for c in range(8)})
    frame = frame[["target", *[f"pixel{i}" for i in range(64)]]].rename(columns={"target": "label"})
    csv = folder / "digits8.csv.gz"
    frame.iloc[:300].to_csv(csv, index=False)
    out = ok("train", "--data", csv, "--target", "label", "--epochs", "1", "--quiet", "--scale", "pixels")
    assert "training 64-100-10 on 300 examples" in out


# -- the test split --------------------------------------------------------------------------------

def test_the_test_split_is_stratified_seeded_and_reported_as_evaluate_does(iris_csv, folder):
    frame = iris_frame()
    species = frame["species"].to_numpy()
    model = folder / "split.npz"
    out = ok("train", "--data", iris_csv, "--target", "species", "--test-split", "0.2", "--seed", "3",
             "--epochs", "20", "--quiet", "--out", model)
    assert "training 4-100-3 on 120 examples: 20 epochs" in out
    train, test = stratified_split(species, 150, 0.2, 3)
    assert [np.count_nonzero(species[test] == s) for s in SPECIES] == [10, 10, 10]
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(150))
    again = stratified_split(species, 150, 0.2, 3)
    assert np.array_equal(again[1], test)
    assert not np.array_equal(stratified_split(species, 150, 0.2, 4)[1], test)
    # The run trained on exactly those rows...
    loaded = MLP.load(model)
    encoding = model_encoding(loaded)
    rows = frame.iloc[train]
    assert loaded.metadata["data"]["sha256"] == data_checksum(encoding.inputs(rows), model_targets(encoding, rows))
    # ...and its test accuracy is evaluate's on the others.
    held_out = folder / "held_out.csv"
    frame.iloc[test].to_csv(held_out, index=False)
    report = json.loads(ok("evaluate", model, "--data", held_out, "--json"))
    assert report["examples"] == 30
    assert out.endswith(f"test accuracy: {report['accuracy']:.4f}\n")
    # Another seed, another split.
    other = folder / "split_seed4.npz"
    ok("train", "--data", iris_csv, "--target", "species", "--test-split", "0.2", "--seed", "4", "--epochs", "1",
       "--quiet", "--out", other)
    other = MLP.load(other)
    encoding4, rows4 = model_encoding(other), frame.iloc[stratified_split(species, 150, 0.2, 4)[0]]
    assert other.metadata["data"]["sha256"] == data_checksum(encoding4.inputs(rows4), model_targets(encoding4, rows4))
    assert other.metadata["data"]["sha256"] != loaded.metadata["data"]["sha256"]


# -- predict -----------------------------------------------------------------------------------------

def test_predict_writes_class_names_in_the_tables_row_order(text_model, folder):
    frame = iris_with_text().sample(frac=1, random_state=1).reset_index(drop=True)
    csv, predictions = folder / "shuffled.csv", folder / "shuffled_predictions.csv"
    frame.to_csv(csv, index=False)
    result = fastnn("predict", text_model["model"], "--data", csv, "--out", predictions)
    assert result.returncode == 0 and result.stderr == f"wrote 150 predictions to {predictions}\n"
    model = MLP.load(text_model["model"])
    proba = model.predict_proba(model_encoding(model).inputs(frame))
    written = pd.read_csv(predictions)
    assert written["row"].tolist() == list(range(1, 151))
    assert written["species"].tolist() == np.asarray(SPECIES)[proba.argmax(axis=1)].tolist()
    assert (written["species"] == frame["species"]).mean() > 0.8  # it learnt something, row by row
    shown = ok("predict", text_model["model"], "--data", csv, "--out", predictions, "--show", "2", "--start", "3")
    assert shown == (f"row 4: predicted {written['species'][3]!r}, true {frame['species'][3]!r}\n"
                     f"row 5: predicted {written['species'][4]!r}, true {frame['species'][4]!r}\n")


# -- the defaults against scikit-learn's ------------------------------------------------------------------

@pytest.mark.parametrize("loader", [sk.load_iris, sk.load_breast_cancer], ids=["iris", "breast_cancer"])
def test_the_table_defaults_match_scikit_learns_mlp(loader, folder):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = labelled(loader)
    csv = folder / f"{loader.__name__}.csv"
    frame.to_csv(csv, index=False)
    out = ok("train", "--data", csv, "--target", "target", "--test-split", "0.25", "--quiet")
    train, test = stratified_split(frame["target"].to_numpy(str), len(frame), 0.25, 0)
    n_inputs = frame.shape[1] - 1
    assert out.startswith(f"training {n_inputs}-100-{frame['target'].nunique()} on {len(train)} examples: 200 epochs, "
                          "batch 200, lr 0.001, seed 0\n")
    ours = float(re.search(r"^test accuracy: ([\d.]+)$", out, re.MULTILINE).group(1))
    X, y = frame.drop(columns="target"), frame["target"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 200 epochs without converging: part of the defaults
        theirs = make_pipeline(StandardScaler(), MLPClassifier(random_state=0)).fit(X.iloc[train], y[train])
    peer = theirs.score(X.iloc[test], y[test])
    assert ours > 0.9 and abs(ours - peer) <= 0.03, (ours, peer)


# -- resume, early stopping --------------------------------------------------------------------------

def test_a_resumed_table_run_ends_with_the_uninterrupted_runs_weights(iris_csv, folder):
    common = ["--target", "species", "--test-split", "0.2", "--batch-size", "32", "--early-stopping", "0", "--quiet"]
    first = folder / "resume3.npz"
    ok("train", "--data", iris_csv, *common, "--epochs", "3", "--checkpoint-every", "1", "--out", first)
    checkpoint = folder / "resume3.ckpt.npz"
    assert MLP.load(checkpoint).epochs_trained == 2  # the last checkpoint before the end
    resumed = folder / "resumed5.npz"
    out = ok("train", "--resume", checkpoint, "--epochs", "5", "--out", resumed, "--quiet")
    assert out.startswith(f"resuming 4-100-3 on 120 examples from {checkpoint}: epoch 3 of 5\n")
    whole = folder / "whole5.npz"
    ok("train", "--data", iris_csv, *common, "--epochs", "5", "--out", whole)
    assert np.array_equal(weights(resumed), weights(whole))
    assert MLP.load(resumed).metadata["table"] == MLP.load(whole).metadata["table"]


def test_early_stopping_is_a_tables_default_and_0_turns_it_off(iris_csv):
    stalled = ["--data", iris_csv, "--target", "species", "--lr", "1e-7", "--epochs", "15", "--quiet"]
    assert "stopped early after epoch 11; kept the weights of epoch 1\n" in ok("train", *stalled)
    out = ok("train", *stalled, "--early-stopping", "0")
    assert "epoch 15: loss" in out and "stopped early" not in out


# -- the network's shape -----------------------------------------------------------------------------

def test_layers_that_do_not_fit_the_table_are_one_line_and_hidden_builds_the_network(text_model, folder):
    csv = text_model["csv"]
    fails("train", "--data", csv, "--target", "species", "--layers", "4,8,3", "--epochs", "1",
          message="--layers 4,8,3 does not fit the table: it has 6 inputs (after one-hot encoding) and 3 outputs")
    fails("train", "--data", csv, "--target", "species", "--layers", "6,8,2", "--epochs", "1",
          message="--layers 6,8,2 does not fit the table: it has 6 inputs (after one-hot encoding) and 3 outputs")
    assert "training 6-8-3 on 150" in ok("train", "--data", csv, "--target", "species", "--layers", "6,8,3",
                                         "--epochs", "1", "--quiet")
    model = folder / "hidden.npz"
    assert "training 6-16-8-3 on 150" in ok("train", "--data", csv, "--target", "species", "--hidden", "16,8",
                                            "--epochs", "1", "--quiet", "--out", model)
    info = ok("info", model)
    assert "network: 6-16-8-3, relu hidden, softmax output, float32, init glorot" in info
    assert "  layer 1: W 6x16, b 16\n  layer 2: W 16x8, b 8\n  layer 3: W 8x3, b 3\n" in info


# -- the digits CSV stays digits -----------------------------------------------------------------------

def test_a_kaggle_digits_csv_without_target_trains_as_pixels(mnist, folder):
    csv = folder / "train.csv"
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    np.savetxt(csv, np.column_stack([mnist.train_labels[:200], mnist.train_images[:200]]), fmt="%d", delimiter=",",
               header=header, comments="")
    model = folder / "digits.npz"
    out = ok("train", "--data", csv, "--epochs", "1", "--quiet", "--out", model)
    assert out.startswith("training 784-10-10 on 200 examples: 1 epoch, batch 64, lr 0.1, seed 0\n")
    loaded = MLP.load(model)
    assert loaded.pixels is True and "table" not in loaded.metadata
    assert "inputs 0..255 pixels" in ok("info", model)


# -- a model file's encoding ---------------------------------------------------------------------------

def test_an_encoding_that_does_not_fit_its_network_is_a_damaged_file(text_model, folder):
    model = MLP.load(text_model["model"])
    table = model.metadata["table"]
    wider = copy.deepcopy(table)
    wider["categories"]["size"].append("huge")
    wider["offset"].insert(3, 0.0)
    wider["factor"].insert(3, 1.0)
    renamed = {**copy.deepcopy(table), "classes": ["virginica", "setosa", "versicolor"]}
    cases = {"wider": (wider, "the model file's table encoding (7 inputs, 3 classes) does not fit its 6-100-3 "
                              "network with a softmax output"),
             "renamed": (renamed, "the model file's table encoding and its network name different classes"),
             "regression": ({**copy.deepcopy(table), "task": "regression", "classes": []},
                            "the model file's table encoding (6 inputs, regression) does not fit its 6-100-3 "
                            "network with a softmax output")}
    for name, (encoding, message) in cases.items():
        path = folder / f"misfit_{name}.npz"
        model.save(path, **{**model.metadata, "table": encoding})
        with pytest.raises(ModelFileError, match=f"^{re.escape(message)}$"):
            model_encoding(MLP.load(path))
        fails("predict", path, "--data", text_model["csv"], message=message)
    fails("evaluate", path, "--data", text_model["csv"], message=message)
    assert f"\ntable: {message}\n" in ok("info", path)


# -- TableEncoding from Python -------------------------------------------------------------------------

@pytest.mark.parametrize("scale", ["standard", "minmax", "pixels", "none"])
def test_table_encoding_learns_applies_and_round_trips(scale):
    frame = iris_with_text()
    train, test = stratified_split(frame["species"].to_numpy(), 150, 0.3, 0)
    encoding = TableEncoding.learn(frame.iloc[train], "species", scale=scale)
    assert (encoding.task, encoding.classes, encoding.n_inputs, encoding.n_outputs) == \
        ("classification", SPECIES, 6, 3)
    assert encoding.categories == {"size": ["large", "medium", "small"]}
    X = encoding.inputs(frame.iloc[train], np.float64)
    numbers = frame.iloc[train][["petal length (cm)", "petal width (cm)", "sepal width (cm)"]].to_numpy()
    expected = {"standard": (numbers - numbers.mean(axis=0)) / numbers.std(axis=0),
                "minmax": (numbers - numbers.min(axis=0)) / np.ptp(numbers, axis=0),
                "pixels": numbers / 255, "none": numbers}[scale]
    assert np.allclose(X[:, 3:], expected, rtol=0, atol=1e-12)
    assert set(np.unique(X[:, :3])) == {0.0, 1.0}
    y = encoding.targets(frame.iloc[test])
    assert y.dtype == np.int32 and np.array_equal(np.asarray(SPECIES)[y], frame["species"].to_numpy()[test])
    stored = json.loads(json.dumps(encoding.to_dict()))
    again = TableEncoding.from_dict(stored)
    assert again == encoding
    assert np.array_equal(again.inputs(frame.iloc[test]), encoding.inputs(frame.iloc[test]))
    assert again.inputs(frame).dtype == np.float32


def test_table_encoding_of_a_regression_target_standardises_it():
    frame = sk.load_diabetes(as_frame=True, scaled=False).frame
    encoding = TableEncoding.learn(frame, "target")
    assert encoding.task == "regression" and encoding.classes == [] and encoding.n_outputs == 1
    y = encoding.targets(frame)
    assert y.shape == (442, 1) and abs(y.mean()) < 1e-12 and y.std() == pytest.approx(1, abs=1e-12)
    assert np.allclose(encoding.values(y), frame["target"].to_numpy(), rtol=1e-12)
    assert TableEncoding.from_dict(json.loads(json.dumps(encoding.to_dict()))) == encoding


def test_table_encoding_refuses_what_it_cannot_learn():
    frame = iris_frame()
    with pytest.raises(DataError, match=r"^there is no column 'kind' to predict \(the columns are sepal length"):
        TableEncoding.learn(frame, "kind")
    with pytest.raises(DataError, match=r"^the target 'species' has a single class \('setosa'\)"):
        TableEncoding.learn(frame.iloc[:50], "species")
    with pytest.raises(DataError, match="^the table has no feature columns beside the target 'species'"):
        TableEncoding.learn(frame[["species"]], "species")
    with pytest.raises(DataError, match="^the table has no rows"):
        TableEncoding.learn(frame.iloc[:0], "species")


def test_a_value_too_large_for_float32_is_named_by_its_row_in_the_table():
    frame = iris_frame()
    encoding = TableEncoding.learn(frame, "species", scale="none")
    frame.loc[120, "petal width (cm)"] = 1e39
    with pytest.raises(DataError, match=r"^column 'petal width \(cm\)' has a value too large for float32 at row 121$"):
        encoding.inputs(frame.iloc[100:])  # row 21 of the rows given, 121 of the table
    assert encoding.inputs(frame.iloc[100:], np.float64)[20, 3] == 1e39


def _good_dict() -> dict:
    return TableEncoding.learn(iris_with_text(), "species").to_dict()


def _changed(**changes) -> dict:
    d = _good_dict()
    d.update(changes)
    return d


def _without(key: str) -> dict:
    d = _good_dict()
    del d[key]
    return d


DAMAGED = {
    "a list": lambda: list(_good_dict().items()),
    "None": lambda: None,
    "a missing key": lambda: _without("scale"),
    "an unknown key": lambda: _changed(extra=1),
    "an unknown task": lambda: _changed(task="ranking"),
    "an unknown scale": lambda: _changed(scale="log"),
    "a target not text": lambda: _changed(target=3),
    "columns not a list": lambda: _changed(columns="size"),
    "a column not text": lambda: _changed(columns=["size", 1, "petal width (cm)", "sepal width (cm)"]),
    "categories of no column": lambda: _changed(categories={"colour": ["red"]}),
    "no categories": lambda: _changed(categories={"size": []}),
    "a category not text": lambda: _changed(categories={"size": ["large", 2, "small"]}),
    "too few offsets": lambda: _changed(offset=_good_dict()["offset"][:-1]),
    "factors not a list": lambda: _changed(factor="123456"),
    "a NaN factor": lambda: _changed(factor=[1.0] * 5 + [float("nan")]),
    "an infinite offset": lambda: _changed(offset=[float("inf")] + [0.0] * 5),
    "a bool factor": lambda: _changed(factor=[True] * 6),
    "a target factor of 0": lambda: _changed(target_factor=0.0),
    "a text target offset": lambda: _changed(target_offset="0"),
    "one class": lambda: _changed(classes=["setosa"]),
    "twice a class": lambda: _changed(classes=["setosa", "setosa", "virginica"]),
    "1 and 1.0": lambda: _changed(classes=[1, 1.0, 2]),
    "a class None": lambda: _changed(classes=["setosa", None, "virginica"]),
    "a NaN class": lambda: _changed(classes=["setosa", float("nan"), "virginica"]),
    "classes of a regression": lambda: _changed(task="regression"),
}


@pytest.mark.parametrize("name", list(DAMAGED))
def test_table_encoding_from_dict_refuses_a_damaged_dict(name):
    with pytest.raises(ModelFileError, match="^the model file's table encoding is damaged$"):
        TableEncoding.from_dict(DAMAGED[name]())


def test_the_damaged_dicts_differ_from_a_good_one_only_in_their_damage():
    assert TableEncoding.from_dict(_good_dict()) == TableEncoding.learn(iris_with_text(), "species")
    assert TableEncoding.from_dict(_changed(classes=[0, 1, 2])).classes == [0, 1, 2]
    assert TableEncoding.from_dict(_changed(task="regression", classes=[])).task == "regression"
