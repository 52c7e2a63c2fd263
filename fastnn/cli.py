"""The `fastnn` command: train the tutorial's network (and any other MLP) from the terminal."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from .errors import FastnnError


def parse_layers(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"layers must be comma-separated integers, got {text!r}")
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"layers needs at least two positive sizes, got {text!r}")
    return sizes


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line like every other error of the command."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fastnn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train", help="train a network and report its accuracy",
        description="Train an MLP with minibatch SGD. With no option: the tutorial's 784-10-10 "
                    "network on MNIST (found through --data, $FASTNN_DATA or the cache).")
    train.add_argument("--data", type=Path,
                       help="an MNIST IDX folder or a Kaggle-layout CSV (label,pixel0..pixel783)")
    train.add_argument("--layers", type=parse_layers, default=[784, 10, 10],
                       help="layer sizes, input to output (default: 784,10,10)")
    train.add_argument("--activation", default="relu",
                       choices=["relu", "leaky_relu", "tanh", "sigmoid", "identity"])
    train.add_argument("--init", default=None, choices=["uniform", "he", "glorot"],
                       help="weight initialisation (default: uniform, the tutorial's, for a hidden "
                            "width up to 32; he above)")
    train.add_argument("--epochs", type=int, default=5, help="passes over the training set (default: 5)")
    train.add_argument("--batch-size", type=int, default=64, help="examples per SGD step (default: 64)")
    train.add_argument("--lr", type=float, default=0.1, help="learning rate (default: 0.1)")
    train.add_argument("--seed", type=int, default=0, help="seed of the weights and the shuffles")
    train.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    train.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    train.add_argument("--out", type=Path, help="save the trained model to this file (.npz)")
    train.add_argument("--tutorial", action="store_true",
                       help="reproduce the tutorial exactly: full-batch gradient descent, alpha 0.10, "
                            "500 iterations, on the Kaggle CSV with its first 1,000 shuffled rows "
                            "as the dev set")
    train.set_defaults(run=run_train)
    return parser


def default_init(sizes: list[int]) -> str:
    return "uniform" if max(sizes[1:-1], default=0) <= 32 else "he"


def run_train(args: argparse.Namespace) -> None:
    from .model import MLP

    if args.tutorial:
        return run_tutorial(args)
    X, y, X_test, y_test = load_training_data(args.data)
    model = MLP(args.layers, activation=args.activation, init=args.init or default_init(args.layers),
                seed=args.seed, dtype=args.dtype)
    print(f"training {'-'.join(map(str, args.layers))} on {len(y):,} examples: "
          f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr:g}, seed {args.seed}")

    def report(epoch, history):
        print(f"epoch {epoch + 1}: loss {history.loss[-1]:.4f}, accuracy {history.accuracy[-1]:.4f} "
              f"({history.seconds[-1]:.3f} s)", flush=True)

    model.fit(X, y, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, threads=args.threads,
              on_epoch=report)
    if X_test is not None:
        print(f"test accuracy: {model.evaluate(X_test, y_test)['accuracy']:.4f}")
    if args.out:
        model.save(args.out, training={"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr})
        print(f"saved {args.out}")


def load_training_data(path: Path | None):
    """(X, y, X_test, y_test): MNIST by default; from --data, an IDX folder or a CSV."""
    from . import datasets

    if path is None:
        mnist = datasets.load_mnist()
        return mnist.train_images, mnist.train_labels, mnist.test_images, mnist.test_labels
    return datasets.load_dataset(path)


def tutorial_csv(path: Path | None) -> Path:
    if path is not None:
        return path
    root = os.environ.get("FASTNN_DATA")
    if not root:
        raise FastnnError("--tutorial needs the Kaggle train.csv: pass --data PATH or set FASTNN_DATA "
                          "to a folder with digit-recognizer/train.csv.gz")
    return Path(root) / "digit-recognizer" / "train.csv.gz"


def run_tutorial(args: argparse.Namespace) -> None:
    """The tutorial, step for step: 784-10-10, full batch, alpha 0.10, 500 iterations."""
    from .datasets import read_csv
    from .model import MLP

    X, y = read_csv(tutorial_csv(args.data))
    if y is None:
        raise FastnnError("the tutorial's CSV needs a label column")
    order = np.random.default_rng(args.seed).permutation(len(y))
    dev, train = order[:1000], order[1000:]
    model = MLP([784, 10, 10], seed=args.seed, dtype=args.dtype)
    print(f"full-batch gradient descent on {len(train):,} examples, {len(dev):,} for dev")

    def report(iteration, history):
        if iteration % 10 == 0:
            print(f"iteration {iteration}: accuracy {history.accuracy[-1]:.4f}", flush=True)

    model.fit(X[train], y[train], epochs=500, batch_size=len(train), lr=0.1, shuffle=False,
              threads=args.threads, on_epoch=report)
    print(f"training accuracy: {model.evaluate(X[train], y[train])['accuracy']:.4f}")
    print(f"dev accuracy: {model.evaluate(X[dev], y[dev])['accuracy']:.4f}")
    if args.out:
        model.save(args.out, training={"tutorial": True, "iterations": 500, "lr": 0.1})
        print(f"saved {args.out}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: errors are one line on stderr and a non-zero exit status, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (FastnnError, ValueError) as e:
        print(f"fastnn: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fastnn: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
