"""The issue's three MNIST accuracy runs (long: not part of the tests).

    python bench/accuracy_runs.py                  # all three, full length (5-10 s an epoch on 2 cores: ~10 min)
    python bench/accuracy_runs.py --only adam-cosine --epochs 1   # a quick check that it learns

Targets (test set, 10,000 images, after training on the 60,000):
  adam-cosine    784-128-10, Adam + cosine, 10 epochs         accuracy >= 97.5%
  dropout        784-256-128-10, dropout, 20 epochs           accuracy >= 98.0%
  simard-800     784-800-10                                   test error <= 1.6%
Each run prints its exact options, the test accuracy, whether it meets its target (only when
run for its full number of epochs) and the seconds it took. Data: fastnn.data.datasets.load_mnist()
(set FASTNN_DATA, or pass --data).
"""

from __future__ import annotations

import argparse
import json
import time

import fastnn
from fastnn import schedules
from fastnn.data.datasets import load_mnist

# name -> (MLP options, fit options without the schedule, epochs, target accuracy)
RUNS = {
    "adam-cosine": (
        dict(sizes=[784, 128, 10], activation="relu", init="he", seed=0, dtype="float32", pixels=True),
        dict(batch_size=128, optimizer=fastnn.Adam(lr=1e-3)),
        10, 0.975),
    "dropout": (
        dict(sizes=[784, 256, 128, 10], activation="relu", init="he", dropout=0.2, seed=0, dtype="float32",
             pixels=True),
        dict(batch_size=128, optimizer=fastnn.Adam(lr=1e-3)),
        20, 0.980),
    "simard-800": (
        dict(sizes=[784, 800, 10], activation="relu", init="he", dropout=0.2, seed=0, dtype="float32",
             pixels=True),
        dict(batch_size=128, optimizer=fastnn.Adam(lr=1e-3)),
        30, 0.984),
}


def run(name: str, mnist, epochs: int | None = None, threads: int | None = None) -> dict:
    model_options, fit_options, full_epochs, target = RUNS[name]
    epochs = epochs or full_epochs
    # Cosine annealing over the run, smooth within epochs: lr -> 0 at the last step.
    schedule = schedules.Cosine(t_max=epochs, per_step=True)
    print(f"== {name}: MLP({model_options})")
    print(f"   fit(epochs={epochs}, schedule={schedule}, shuffle=True, threads={threads}, "
          + ", ".join(f"{k}={v!r}" for k, v in fit_options.items()) + ")", flush=True)
    model = fastnn.MLP(**model_options)
    started = time.perf_counter()
    history = model.fit(mnist.train_images, mnist.train_labels, epochs=epochs, schedule=schedule, threads=threads,
                        on_epoch=lambda e, h: print(f"   epoch {e}: loss {h.loss[-1]:.4f} "
                                                    f"train accuracy {h.accuracy[-1]:.4f} "
                                                    f"({h.seconds[-1]:.1f} s)", flush=True),
                        **fit_options)
    seconds = time.perf_counter() - started
    metrics = model.evaluate(mnist.test_images, mnist.test_labels)
    result = {"run": name, "epochs": epochs, "test_accuracy": metrics["accuracy"],
              "test_error": 1 - metrics["accuracy"], "test_loss": metrics["loss"], "seconds": round(seconds, 1),
              "target_accuracy": target,
              "meets_target": (metrics["accuracy"] >= target) if epochs == full_epochs else None,
              "final_train_loss": history.loss[-1]}
    print(f"   test accuracy {metrics['accuracy']:.4f} (error {100 * (1 - metrics['accuracy']):.2f}%), "
          f"target {target:.3f}, {seconds:.0f} s", flush=True)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=list(RUNS), action="append", help="run only these (repeatable)")
    parser.add_argument("--epochs", type=int, help="override the number of epochs (a quick check)")
    parser.add_argument("--threads", type=int, help="Numba threads (default: all)")
    parser.add_argument("--data", help="MNIST folder (default: fastnn's usual places, $FASTNN_DATA)")
    args = parser.parse_args(argv)
    mnist = load_mnist(args.data)
    results = [run(name, mnist, args.epochs, args.threads) for name in (args.only or RUNS)]
    print(json.dumps(results, indent=1))
    return 0 if all(r["meets_target"] is not False for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
