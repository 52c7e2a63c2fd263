"""fastnn's table defaults against scikit-learn's, on scikit-learn's bundled data sets.

    python -m bench.tables [--seeds 0,1,2] [--test-split 0.25]

Each data set is written as a CSV and trained by `fastnn train --data FILE --target COLUMN
--test-split F` (run in this process, so that start-up is not counted; nothing else is set). The
same training and test rows go to scikit-learn's defaults: StandardScaler (and a one-hot
encoder for text columns) with MLPClassifier or MLPRegressor, random_state=seed. Prints the
test accuracy (R² for regression) of both, averaged over the seeds (a test set of 45 rows moves
by 0.022 an example), and their training seconds, medians over the seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def datasets() -> dict:
    """name -> (frame, target column, task): the bundled sets, and iris with a text column."""
    import pandas as pd
    from sklearn import datasets as sk

    sets = {}
    for name, loader in [("iris", sk.load_iris), ("wine", sk.load_wine), ("breast_cancer", sk.load_breast_cancer),
                         ("digits", sk.load_digits)]:
        bunch = loader(as_frame=True)
        frame = bunch.frame.copy()
        frame["target"] = np.asarray(bunch.target_names)[frame.pop("target")].astype(str)
        sets[name] = (frame, "target", "classification")
    frame = sk.load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    frame["size"] = pd.cut(frame["sepal length (cm)"], 3, labels=["small", "medium", "large"]).astype(str)
    frame = frame.drop(columns="sepal length (cm)")
    sets["iris_with_text"] = (frame, "species", "classification")
    diabetes = sk.load_diabetes(as_frame=True, scaled=False).frame
    sets["diabetes"] = (diabetes, "target", "regression")
    return sets


def fastnn_run(csv: Path, target: str, split: float, seed: int) -> tuple[float, float]:
    """(test score, seconds) of `fastnn train` with the table defaults."""
    from fastnn.cli.main import main

    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        status = main(["train", "--data", str(csv), "--target", target, "--test-split", str(split),
                       "--seed", str(seed), "--quiet"])
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"fastnn train failed on {csv}")
    text = out.getvalue()
    found = re.search(r"test accuracy: ([\d.]+)", text) or re.search(r"test R² (-?[\d.]+)", text)
    return float(found.group(1)), seconds


def sklearn_run(frame, target: str, task: str, split: float, seed: int) -> tuple[float, float]:
    """(test score, seconds) of scikit-learn's defaults on the rows fastnn held out."""
    from sklearn.compose import make_column_transformer
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from fastnn.data.tables import stratified_split

    y = frame[target].to_numpy()
    strata = y.astype(str) if task == "classification" else None
    train, test = stratified_split(strata, len(frame), split, seed)
    X = frame.drop(columns=target)
    text = [c for c in X.columns if X[c].dtype == object or str(X[c].dtype) in ("string", "str")]
    numeric = [c for c in X.columns if c not in text]
    prepare = make_column_transformer((StandardScaler(), numeric), (OneHotEncoder(handle_unknown="ignore"), text))
    estimator = MLPClassifier(random_state=seed) if task == "classification" else MLPRegressor(random_state=seed)
    model = make_pipeline(prepare, estimator)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter: part of the defaults
        model.fit(X.iloc[train], y[train])
    seconds = time.perf_counter() - started
    return float(model.score(X.iloc[test], y[test])), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--test-split", type=float, default=0.25)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{'data set':<16} {'rows':>5} {'metric':>8}  {'fastnn':>7} {'sklearn':>7} {'diff':>7}  "
          f"{'fastnn s':>8} {'sklearn s':>9} {'speed-up':>8}")
    with tempfile.TemporaryDirectory() as folder:
        for name, (frame, target, task) in datasets().items():
            csv = Path(folder) / f"{name}.csv"
            frame.to_csv(csv, index=False)
            ours = [fastnn_run(csv, target, args.test_split, s) for s in seeds]
            theirs = [sklearn_run(frame, target, task, args.test_split, s) for s in seeds]
            (score, _), (_, seconds) = np.mean(ours, axis=0), np.median(ours, axis=0)
            (peer_score, _), (_, peer_seconds) = np.mean(theirs, axis=0), np.median(theirs, axis=0)
            metric = "accuracy" if task == "classification" else "R²"
            print(f"{name:<16} {len(frame):>5} {metric:>8}  {score:>7.4f} {peer_score:>7.4f} {score - peer_score:>+7.4f}  "
                  f"{seconds:>8.3f} {peer_seconds:>9.3f} {peer_seconds / seconds:>7.1f}x")


if __name__ == "__main__":
    main()
