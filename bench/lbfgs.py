"""solver='lbfgs': fastnn.sklearn against scikit-learn's own MLPs on scikit-learn's bundled data sets.

iris, wine, breast_cancer and digits (MLPClassifier, test accuracy) and diabetes (MLPRegressor,
test R^2): the same 75/25 split (stratified for classes), StandardScaler fitted on the training
part (for diabetes also on the target, which R^2 does not see), the same hidden sizes, alpha,
max_iter, tol and random_state for both. Each cell is the median over ``--seeds`` random states
(the split stays fixed): test score, fit seconds, iterations. fastnn runs at dtype='auto'
(float64 for lbfgs, as scikit-learn on float64 data) and at dtype='float32'. fastnn keeps SciPy's
BLAS to one thread while L-BFGS-B runs (fastnn/lbfgs.py); scikit-learn runs as installed, and
again under threadpoolctl's limit of one BLAS thread, the fairer comparison on a busy machine.
A benchmark, not a test:

    python bench/lbfgs.py [--hidden 100] [--max-iter 200] [--alpha 0.0001] [--seeds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

DATA_SETS = ["iris", "wine", "breast_cancer", "digits", "diabetes"]


def load(name: str):
    """(X_train, X_test, y_train, y_test, is_classification), scaled on the training part."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    classify = name != "diabetes"
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                        stratify=y if classify else None)
    scaler = StandardScaler().fit(X_train)
    if not classify:  # R^2 is the same in either unit; the networks learn better on a scaled target
        mean, std = y_train.mean(), y_train.std()
        y_train, y_test = (y_train - mean) / std, (y_test - mean) / std
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test, classify


def run(make, X_train, X_test, y_train, y_test, blas_threads=None) -> tuple[float, float, int]:
    """(test score, fit seconds, iterations) of one fit."""
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    estimator = make()
    with warnings.catch_warnings(), threadpool_limits(limits=blas_threads, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        estimator.fit(X_train, y_train)
        seconds = time.perf_counter() - started
    return estimator.score(X_test, y_test), seconds, estimator.n_iter_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, nargs="+", default=[100])
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data", nargs="+", default=DATA_SETS, choices=DATA_SETS)
    args = parser.parse_args()

    from sklearn import neural_network

    import fastnn.sklearn

    common = dict(hidden_layer_sizes=tuple(args.hidden), solver="lbfgs", alpha=args.alpha, max_iter=args.max_iter,
                  tol=args.tol)
    contenders = [("scikit-learn", neural_network, {}, None), ("sklearn 1 BLAS", neural_network, {}, 1),
                  ("fastnn", fastnn.sklearn, {}, None), ("fastnn float32", fastnn.sklearn, {"dtype": "float32"}, None)]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"solver='lbfgs', hidden {tuple(args.hidden)}, alpha {args.alpha:g}, max_iter {args.max_iter}, "
          f"tol {args.tol:g}; medians of {args.seeds} random states; accuracy (R^2 for diabetes)")
    header = f"{'data set':<14} {'train x features':>16}  {'contender':<15} {'score':>7} {'fit s':>8} {'iters':>6} " \
             f"{'vs sklearn':>10}"
    print(header)
    print("-" * len(header))
    for name in args.data:
        X_train, X_test, y_train, y_test, classify = load(name)
        kind = "MLPClassifier" if classify else "MLPRegressor"
        # Load the compiled kernels (Numba's cache) before anything is timed.
        for _, module, extra, _ in contenders:
            run(lambda: getattr(module, kind)(**{**common, "max_iter": 2}, **extra), X_train, X_test, y_train, y_test)
        baseline = None
        for label, module, extra, blas_threads in contenders:
            results = [run(lambda: getattr(module, kind)(**common, **extra, random_state=seed),
                           X_train, X_test, y_train, y_test, blas_threads) for seed in range(args.seeds)]
            score, seconds, iters = (statistics.median(column) for column in zip(*results))
            baseline = baseline or seconds
            shape = f"{X_train.shape[0]} x {X_train.shape[1]}"
            print(f"{name:<14} {shape:>16}  {label:<15} {score:7.4f} {seconds:8.3f} {iters:6.0f} "
                  f"{baseline / seconds:9.1f}x", flush=True)


if __name__ == "__main__":
    main()
