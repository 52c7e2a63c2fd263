"""fastnn.sklearn.MLPClassifier side by side with scikit-learn's MLPClassifier on MNIST.

Same layers, solver, batch size, learning rate, L2 penalty and epochs (tol=0 and a large
n_iter_no_change so that both run every epoch); both see the pixels as X / 255 (fastnn reads
the uint8 pixels with pixels=True, which is the same numbers). Prints test accuracy and fit time
of each and the fit-time ratio. A benchmark, not a test:

    FASTNN_DATA=../shared/data python bench/sklearn_compare.py [--epochs 5] [--hidden 100] \
        [--solver adam|sgd] [--batch-size 200] [--lr 0.001] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--hidden", type=int, nargs="+", default=[100])
    parser.add_argument("--solver", default="adam", choices=["adam", "sgd"])
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--lr", type=float, default=None, help="default: 0.001 (adam), 0.1 (sgd)")
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="fastnn threads (default: all cores)")
    args = parser.parse_args()

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SkMLP

    from fastnn.data.datasets import load_mnist
    from fastnn.sklearn import MLPClassifier

    mnist = load_mnist(os.path.join(os.environ["FASTNN_DATA"], "mnist") if os.environ.get("FASTNN_DATA") else None,
                       download=False)
    X, y, X_test, y_test = mnist.train_images, mnist.train_labels, mnist.test_images, mnist.test_labels
    lr = args.lr if args.lr is not None else (0.001 if args.solver == "adam" else 0.1)
    common = dict(hidden_layer_sizes=tuple(args.hidden), solver=args.solver, batch_size=args.batch_size,
                  learning_rate_init=lr, alpha=args.alpha, max_iter=args.epochs, tol=0.0,
                  n_iter_no_change=10**6, random_state=args.seed)
    print(f"MNIST 60,000/10,000, 784-{'-'.join(map(str, args.hidden))}-10 relu, {args.solver} lr {lr:g}, "
          f"batch {args.batch_size}, alpha {args.alpha:g}, {args.epochs} epochs")

    warm = MLPClassifier(**{**common, "max_iter": 1}, pixels=True, threads=args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm.fit(X[:500], y[:500])  # load the compiled kernels from Numba's cache (or compile them) first

    rows = []
    X_float = X / 255.0
    X_test_float = X_test / 255.0
    for name, make, train, test in [
            ("scikit-learn", lambda: SkMLP(**common), X_float, X_test_float),
            ("fastnn.sklearn", lambda: MLPClassifier(**common, pixels=True, threads=args.threads), X, X_test)]:
        clf = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            started = time.perf_counter()
            clf.fit(train, y)
            seconds = time.perf_counter() - started
        accuracy = float(np.mean(clf.predict(test) == y_test))
        rows.append((name, accuracy, seconds, clf.loss_curve_[-1]))
        print(f"{name:>15}: test accuracy {accuracy:.4f}, fit {seconds:7.2f} s, final loss {clf.loss_curve_[-1]:.4f}",
              flush=True)
    (_, acc_sk, t_sk, _), (_, acc_fn, t_fn, _) = rows
    print(f"accuracy difference (fastnn - scikit-learn): {100 * (acc_fn - acc_sk):+.2f} points; "
          f"fit time ratio scikit-learn / fastnn: {t_sk / t_fn:.1f}x")


if __name__ == "__main__":
    main()
