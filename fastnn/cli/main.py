"""The `fastnn` command: train, evaluate, predict, plot and inspect MLPs from the terminal.

Errors are one line on stderr ("fastnn: error: ...") with exit status 1; usage errors exit 2;
a training run stopped by Ctrl-C or SIGTERM saves a checkpoint and exits 130 or 143.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from ..errors import DataError, FastnnError


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line like every other error of the command."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def int_at_least(minimum: int):
    """An argparse type: an integer >= minimum."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value
    return parse


positive_int, non_negative_int = int_at_least(1), int_at_least(0)


DATA_HELP = ("an MNIST IDX folder (its test set is used) or a Kaggle-layout CSV, .csv or .csv.gz "
             "(default: the MNIST test set from $FASTNN_DATA or the cache)")


def model_command(commands, name: str, summary: str, description: str, data_help: str) -> argparse.ArgumentParser:
    """A command that reads a model file (MODEL) and data (--data)."""
    command = commands.add_parser(name, help=summary, description=description)
    command.add_argument("model", type=Path, metavar="MODEL", help="a model file (.npz)")
    command.add_argument("--data", type=Path, metavar="PATH", help=data_help)
    return command


def build_parser() -> argparse.ArgumentParser:
    from . import config

    parser = Parser(prog="fastnn", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a network and report its accuracy",
        description="Train an MLP. With no option: the tutorial's 784-10-10 network on MNIST (found "
                    "through --data, $FASTNN_DATA or the cache), 5 epochs of SGD, batch 64, lr 0.1. "
                    "Every option can also be given in a TOML file (--config) under its long name; "
                    "options on the command line override the file. Ctrl-C or SIGTERM stops after the "
                    "current block of batches and saves a checkpoint that --resume continues exactly.")
    train.add_argument("--config", type=Path, metavar="FILE.toml",
                       help="read options from this TOML file, e.g. layers = [784, 128, 10], "
                            'optimizer = "adam", epochs = 10')
    train.add_argument("--resume", type=Path, metavar="CHECKPOINT",
                       help="continue the training run saved in this checkpoint (it holds every option but the "
                            "files written: --out defaults to NAME.npz beside NAME.ckpt.npz; --epochs, --out, "
                            "--metrics, --checkpoint..., --threads may be changed)")
    train.add_argument("--tutorial", action="store_true",
                       help="reproduce the tutorial exactly: full-batch gradient descent, alpha 0.10, "
                            "500 iterations, on the Kaggle CSV with its first 1,000 shuffled rows "
                            "as the dev set")
    display = train.add_argument_group("display")
    display.add_argument("-q", "--quiet", action="store_true", help="no progress bar (epoch lines only)")
    display.add_argument("--progress", action="store_true",
                         help="show the progress bar even when stderr is not a terminal")
    config.add_arguments(train)
    train.set_defaults(run=run_train)

    evaluate = model_command(
        commands, "evaluate", "accuracy, loss, per-class precision/recall/F1 and confusion matrix",
        "Evaluate a model on labelled data: accuracy, mean loss, precision, recall and F1 of each class, and "
        "the confusion matrix.", DATA_HELP)
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON (for scripts)")
    evaluate.set_defaults(run=run_evaluate)

    predict = model_command(
        commands, "predict", "predict classes; write a Kaggle submission CSV (ImageId,Label)",
        "Predict the class of each example of --data (labels, if any, are ignored except by --show). Without "
        "--out and --show, the CSV goes to stdout.",
        DATA_HELP.replace("a Kaggle-layout CSV", "a Kaggle-layout CSV with or without labels"))
    predict.add_argument("--out", type=Path, metavar="FILE.csv",
                         help="write the predictions here as ImageId,Label (ImageId counts from 1)")
    predict.add_argument("--show", type=positive_int, metavar="N",
                         help="show N examples: the prediction, its probability, the label and the digit")
    predict.add_argument("--start", type=non_negative_int, default=0, metavar="I",
                         help="first example shown by --show (0-based; default 0)")
    predict.add_argument("--png", type=Path, metavar="DIR",
                         help="with --show: save each digit as DIR/example_<ImageId>.png (300x300) "
                              "instead of drawing it in the terminal")
    predict.set_defaults(run=run_predict)

    plot = commands.add_parser(
        "plot", help="training curves, confusion matrix, misclassified digits (PNG)",
        description="Draw PNG pictures into --out-dir: curves.png (loss and accuracy per epoch, train and "
                    "validation, 1000x400 at --dpi 100) from --metrics or from the history stored in "
                    "MODEL; with MODEL, confusion.png (600x600) and misclassified.png (800x800) on --data.")
    plot.add_argument("model", type=Path, nargs="?", metavar="MODEL", help="a model file (.npz)")
    plot.add_argument("--data", type=Path, metavar="PATH", help=DATA_HELP)
    plot.add_argument("--metrics", type=Path, metavar="LOG", help="a metrics log written by fastnn train --metrics")
    plot.add_argument("--out-dir", type=Path, default=Path("."), metavar="DIR",
                      help="folder for the PNG files (created if needed; default: .)")
    plot.add_argument("--dpi", type=positive_int, default=100, help="pixels per inch (default: 100)")
    plot.set_defaults(run=run_plot)

    info = commands.add_parser(
        "info", help="what a model file holds",
        description="Describe a model file: network, parameters, training state and config, data checksum, "
                    "format and fastnn version. It is checked (checksum) but runs no code.")
    info.add_argument("model", type=Path, metavar="MODEL", help="a model file (.npz)")
    info.add_argument("--json", action="store_true", help="print the metadata as JSON")
    info.set_defaults(run=run_info)

    export = commands.add_parser(
        "export", help="write a model as ONNX or TorchScript, for other runtimes",
        description="Write MODEL as an ONNX graph (onnxruntime; needs pip install 'fastnn[onnx]') or as "
                    "TorchScript (torch.jit.load, no fastnn needed; needs torch). The file computes "
                    "predict_proba from the inputs fastnn reads: it divides pixel models' 0..255 inputs by "
                    "255, and a table model takes the encoded row (numeric columns raw, text columns one-hot) "
                    "and applies the stored scaling.")
    export.add_argument("model", type=Path, metavar="MODEL", help="a model file (.npz)")
    export.add_argument("--out", type=Path, metavar="FILE",
                        help="the file to write (default: MODEL with the suffix .onnx, or .pt for torch)")
    export.add_argument("--format", choices=("onnx", "torch"),
                        help="onnx or torch (TorchScript); default: torch for an --out ending in .pt or .pth, "
                             "else onnx")
    export.add_argument("--opset", type=positive_int, metavar="N", help="the ONNX opset (default: 17)")
    export.add_argument("--pixels", action=argparse.BooleanOptionalAction, default=None,
                        help="for a model of fastnn 0.1 only, which took uint8 inputs for pixels: whether the "
                             "exported inputs are 0..255 pixels (default: yes)")
    export.set_defaults(run=run_export)

    build = commands.add_parser(
        "build", help="compile the kernels ahead of time (once, after installing)",
        description="Compile fastnn's entry kernels into a native library (one to five minutes, with the C "
                    "compiler cc). Afterwards fastnn starts without importing Numba or compiling anything, for "
                    "the types the library holds; it is rebuilt when the kernels' sources change.")
    build.add_argument("--status", action="store_true", help="only say whether the native library is in use")
    build.set_defaults(run=run_build)
    from ..sweeps import add_sweep_command
    add_sweep_command(commands)
    return parser


# -- data for evaluate, predict and plot -----------------------------------------------------------

def load_data(path: Path | None, need_labels: str | None):
    """(X, y or None): the MNIST test set by default or from a folder; every row of a CSV.
    ``need_labels``: what needs them (for the message), or None when they are optional."""
    from ..data import datasets

    if path is not None and str(path).lower().endswith((".csv", ".csv.gz")):
        X, y = datasets.read_csv(path)  # reads only a regular file: a FIFO or folder is an error, not a hang
    elif path is None or Path(path).is_dir():
        mnist = datasets.load_mnist(path, download=path is None)
        return mnist.test_images, mnist.test_labels
    else:
        X, y = datasets.load_dataset(path)[:2]
    if need_labels and y is None:
        raise DataError(f"CSV file {path} has no label column; {need_labels} needs labels")
    return X, y


def load_model(path: Path):
    """The model and its table encoding (None for a digits model, which must classify)."""
    from ..model import MLP
    from .tables import model_encoding

    model = MLP.load(path)
    encoding = model_encoding(model)
    if encoding is None and model.output != "softmax":
        raise FastnnError(f"{path} has a {model.output} output; this command needs a softmax classifier")
    return model, encoding


def load_table(encoding, path: Path | None, model):
    """(frame, encoded inputs) of a table file for a model trained on a table."""
    from ..data.tables import read_table

    if path is None:
        raise FastnnError("this model was trained on a table: give one with --data FILE")
    frame = read_table(path)
    return frame, encoding.inputs(frame, model.dtype)


def check_width(model, X, path) -> None:
    if X.ndim != 2 or X.shape[1] != model.sizes[0]:
        raise DataError(f"the data at {path or 'MNIST'} has {X.shape[-1]} features per example, "
                        f"the network expects {model.sizes[0]}")


# -- commands -----------------------------------------------------------------------------------

def run_train(args: argparse.Namespace) -> int:
    from .outputs import claimed
    from .trainer import run

    if args.tutorial:
        out = getattr(args, "out", None)
        with claimed({"--out": out} if out else {}):  # checked and locked before the 500 iterations
            return run_tutorial(args)
    return run(args)


def tutorial_csv(path: Path | None) -> Path:
    if path is not None:
        return path
    root = os.environ.get("FASTNN_DATA")
    if not root:
        raise FastnnError("--tutorial needs the Kaggle train.csv: pass --data PATH or set FASTNN_DATA "
                          "to a folder with digit-recognizer/train.csv.gz")
    return Path(root) / "digit-recognizer" / "train.csv.gz"


def run_tutorial(args: argparse.Namespace) -> int:
    """The tutorial, step for step: 784-10-10, full batch, alpha 0.10, 500 iterations."""
    from ..data.datasets import read_csv
    from ..model import MLP

    seed, dtype = getattr(args, "seed", 0), getattr(args, "dtype", "float32")
    data, out = getattr(args, "data", None), getattr(args, "out", None)
    X, y = read_csv(tutorial_csv(data))
    if y is None:
        raise FastnnError("the tutorial's CSV needs a label column")
    order = np.random.default_rng(seed).permutation(len(y))
    dev, train = order[:1000], order[1000:]
    model = MLP([784, 10, 10], seed=seed, dtype=dtype, pixels=True)
    print(f"full-batch gradient descent on {len(train):,} examples, {len(dev):,} for dev")

    def report(epoch, history):
        iteration = epoch - 1  # the tutorial counts its iterations from 0
        if iteration % 10 == 0:
            print(f"iteration {iteration}: accuracy {history.accuracy[-1]:.4f}", flush=True)

    model.fit(X[train], y[train], epochs=500, batch_size=len(train), lr=0.1, shuffle=False,
              threads=getattr(args, "threads", None), on_epoch=report)
    print(f"training accuracy: {model.evaluate(X[train], y[train])['accuracy']:.4f}")
    print(f"dev accuracy: {model.evaluate(X[dev], y[dev])['accuracy']:.4f}")
    if out:
        model.save(out, training={"tutorial": True, "iterations": 500, "lr": 0.1})
        print(f"saved {out}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ..metrics import classification_report, format_report

    model, encoding = load_model(args.model)
    if encoding is not None:
        return evaluate_table(args, model, encoding)
    X, y = load_data(args.data, need_labels="evaluate")
    check_width(model, X, args.data)
    proba = model.predict_proba(X)
    loss = model.evaluate(X, y)["loss"]
    report = classification_report(y, proba.argmax(axis=1), model.n_classes, loss)
    report = {"model": str(args.model), "data": str(args.data) if args.data else "MNIST test set", **report}
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def evaluate_table(args: argparse.Namespace, model, encoding) -> int:
    """evaluate on a table: the target column found by its stored name."""
    from ..metrics import classification_report, format_report
    from ..metrics import format_regression, regression_report

    frame, X = load_table(encoding, args.data, model)
    where = {"model": str(args.model), "data": str(args.data), "target": encoding.target}
    if encoding.task == "regression":
        report = {**where, **regression_report(encoding.values(model.predict_proba(X)),
                                               encoding.values(encoding.targets(frame)))}
        print(json.dumps(report, indent=2) if args.json else format_regression(report))
        return 0
    y = encoding.targets(frame)
    proba = model.predict_proba(X)
    loss = float(-np.log(np.maximum(proba[np.arange(len(y)), y], np.finfo(proba.dtype).tiny)).mean())
    report = {**where, **classification_report(y, proba.argmax(axis=1), model.n_classes, loss, encoding.classes)}
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def predict_table(args: argparse.Namespace, model, encoding) -> int:
    """predict on a table: one row per input row, in its order, the class name or the value."""
    import csv
    import io

    if args.png:
        raise FastnnError("--png draws digits; a table's rows are shown as text (--show N)")
    frame, X = load_table(encoding, args.data, model)
    outputs = model.predict_proba(X)
    if encoding.task == "regression":
        predicted = encoding.values(outputs)
    else:
        predicted = encoding.class_names(outputs.argmax(axis=1))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["row", encoding.target])
    writer.writerows((i, value) for i, value in enumerate(predicted.tolist(), start=1))
    if args.out:
        write_text(args.out, text.getvalue())
        print(f"wrote {len(predicted):,} predictions to {args.out}", file=sys.stderr)
    elif not args.show:
        print(text.getvalue(), end="")
    if args.show:
        truth = encoding.target in frame.columns
        for i in range(args.start, min(args.start + args.show, len(frame))):
            known = f", true {frame[encoding.target].iloc[i]!r}" if truth else ""
            print(f"row {i + 1}: predicted {predicted[i]!r}{known}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from .show import draw_text, image_side, save_png, value_range

    model, encoding = load_model(args.model)
    if encoding is not None:
        return predict_table(args, model, encoding)
    X, y = load_data(args.data, need_labels=None)
    check_width(model, X, args.data)
    if args.png and not args.show:
        raise FastnnError("--png needs --show N")
    proba = model.predict_proba(X)
    predicted = proba.argmax(axis=1)
    lines = ["ImageId,Label"] + [f"{i},{p}" for i, p in enumerate(predicted, start=1)]
    if args.out:
        write_text(args.out, "\n".join(lines) + "\n")
        print(f"wrote {len(predicted):,} predictions to {args.out}", file=sys.stderr if not args.show else sys.stdout)
    elif not args.show:
        print("\n".join(lines))
    if args.show:
        if args.start >= len(X):
            raise FastnnError(f"--start {args.start} is past the last example ({len(X) - 1})")
        image_side(X.shape[1])
        limits = value_range(X)
        if args.png:
            make_dir(args.png)
        for i in range(args.start, min(args.start + args.show, len(X))):
            p = int(predicted[i])
            label = f"label {int(y[i])}" if y is not None else "no label"
            verdict = "" if y is None else (" (right)" if p == int(y[i]) else " (WRONG)")
            print(f"example {i} (ImageId {i + 1}): predicted {p} ({proba[i, p]:.1%}), {label}{verdict}")
            if args.png:
                path = Path(args.png) / f"example_{i + 1}.png"
                save_png(X[i], f"predicted {p}, {label}", path, limits=limits)
                print(f"  saved {path}")
            else:
                print(draw_text(X[i], limits))
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from . import metrics_log, plots
    from ..metrics import confusion_matrix

    if args.model is None and args.metrics is None:
        raise FastnnError("nothing to plot: give a MODEL file and/or --metrics LOG")
    model, encoding = load_model(args.model) if args.model else (None, None)
    rows = metrics_log.read(args.metrics) if args.metrics else (metrics_log.stored_rows(model.metadata.get("history"), model.epochs_trained) or None)
    X = y = None
    if model is not None and encoding is not None and args.data is not None:  # without: the curves only
        frame, X = load_table(encoding, args.data, model)
        y = encoding.targets(frame) if encoding.task == "classification" else None
    elif model is not None:
        X, y = load_data(args.data, need_labels="plotting the confusion matrix")
        check_width(model, X, args.data)
    make_dir(args.out_dir)
    written = []
    if rows:
        plots.curves(rows, args.out_dir / "curves.png", args.dpi)
        written.append(f"{args.out_dir / 'curves.png'} ({len(rows)} epochs)")
    elif model is not None:
        print(f"no training curves: {args.model} holds no history and no --metrics log was given", file=sys.stderr)
    if y is not None:
        predicted = model.predict_proba(X).argmax(axis=1)
        plots.confusion(confusion_matrix(y, predicted, model.n_classes), args.out_dir / "confusion.png", args.dpi,
                        names=encoding.classes if encoding is not None else None)
        written.append(f"{args.out_dir / 'confusion.png'}")
        if encoding is None and is_image(X):  # digits: the misclassified ones
            wrong = plots.misclassified(X, y, predicted, args.out_dir / "misclassified.png", args.dpi)
            written.append(f"{args.out_dir / 'misclassified.png'} ({wrong:,} misclassified of {len(y):,})")
    for line in written:
        print(f"wrote {line}")
    return 0


def is_image(X: np.ndarray) -> bool:
    """Whether examples of X can be drawn: a square number of inputs."""
    return math.isqrt(X.shape[1]) ** 2 == X.shape[1]


def run_export(args: argparse.Namespace) -> int:
    from .. import export
    from ..model import MLP
    from .outputs import check_output

    file_format = args.format or export.format_of(args.out)
    out = args.out or args.model.with_suffix(export.FORMATS[file_format])
    if out.resolve() == args.model.resolve():
        raise FastnnError(f"--out {out} is the model file itself; give another name")
    model = MLP.load(args.model)
    check_output(out.absolute(), "--out")
    print(export.export_file(model, out, format=file_format, opset=args.opset, pixels=args.pixels))
    return 0


def run_build(args: argparse.Namespace) -> int:
    from ..native import loader as native

    if not args.status:
        from ..native import build as build_native

        build_native.main()
    print(native.status())
    return 0


def run_info(args: argparse.Namespace) -> int:
    from .. import io
    from ..model import MLP

    arrays, meta = io.load_arrays(args.model)  # read once: the model is built from what was read
    model = MLP.from_file_contents(arrays, meta, args.model)
    if args.json:
        shown = {k: v for k, v in meta.items() if k != "rng"}
        shown["parameters"] = model.layout.n_weights
        print(json.dumps(shown, indent=2))
        return 0
    print(describe(args.model, meta, model))
    return 0


def describe(path, meta: dict, model) -> str:
    """What `fastnn info` prints. The network, the training state and the checksum were checked
    when the model was loaded; the free-form metadata (the fastnn version, the training config,
    data and history in ``extra``) may hold anything, so each value is formatted only when it
    has the type the format needs, and shown shortened otherwise."""
    from dataclasses import asdict

    extra = model.metadata
    n_params = model.layout.n_weights
    lines = [f"file: {path} ({Path(path).stat().st_size:,} bytes), format {meta['format']} version "
             f"{meta['version']}, written by fastnn {shown(meta.get('fastnn', '?'))}",
             f"network: {'-'.join(map(str, model.sizes))}, {model.activation} hidden, {model.output} output, "
             f"{model.dtype.name}, init {model.init}, seed {model.seed}, dropout {model.dropout:g}, inputs "
             f"{'0..255 pixels' if model.pixels else 'as given' if model.pixels is False else 'uint8 as pixels'}",
             f"parameters: {n_params:,} ({n_params * model.dtype.itemsize / 1024:,.1f} KiB)"]
    for l, (n_in, n_out) in enumerate(zip(model.sizes[:-1], model.sizes[1:])):
        lines.append(f"  layer {l + 1}: W {n_in}x{n_out}, b {n_out}")
    state = f"trained {model.epochs_trained} epochs"
    if model.optimizer_state is not None:
        optimizer = model.optimizer_state.optimizer
        settings = ", ".join(f"{k}={v}" for k, v in asdict(optimizer).items())
        state += f"; optimizer {type(optimizer).__name__}({settings}) after {model.optimizer_state.step:,} steps"
    lines.append(state)
    if model.position:
        p = model.position
        lines.append(f"checkpoint: stopped in epoch {model.epochs_trained + 1} after batch "
                     f"{p['batches_done']} of {p['n_batches']}; continue with: fastnn train --resume {path}")
    config = extra.get("config") or extra.get("training")
    if config:
        lines.append(f"training config: {settings_text(config)}")
    if extra.get("data"):
        lines.append(data_text(extra["data"]))
    if extra.get("history"):
        lines.append(history_text(extra["history"]))
    if "table" in extra:
        lines.append(table_text(model))
    lines.append(f"checksum (sha256 of the arrays): {meta['sha256']}")
    return "\n".join(lines)


def table_text(model) -> str:
    """The table encoding a model keeps: its target, scaling and one-hot columns."""
    from .tables import model_encoding

    try:
        return model_encoding(model).describe()
    except FastnnError as e:
        return f"table: {e}"


# -- info: values from a file's free-form metadata, shown whatever their type ----------------------

SHOWN_ITEMS = 40  # of a config or a list, on one line


def shown(value, limit: int = 100) -> str:
    """A short printable string as it is; anything else (another type, control characters, a
    megabyte of text, deep nesting) as a shortened repr."""
    from ..io import brief

    if isinstance(value, str) and value.isprintable() and len(value) <= limit:
        return value
    return brief(value, limit)


def shown_count(value) -> str:
    """An integer with thousands separators; anything else as a shortened repr."""
    from ..io import brief

    return f"{value:,}" if type(value) is int and abs(value) < 10**30 else brief(value)


def shown_number(value) -> str:
    """A number with 4 decimals; anything else (an integer too large for a float too) as a
    shortened repr."""
    from ..io import brief

    number = type(value) is float or (type(value) is int and abs(value) < 2**53)
    return f"{value:.4f}" if number else brief(value)


def shown_items(items: list[str]) -> str:
    """The first SHOWN_ITEMS items, joined by commas, and how many more there are."""
    more = f", ... ({len(items) - SHOWN_ITEMS:,} more)" if len(items) > SHOWN_ITEMS else ""
    return ", ".join(items[:SHOWN_ITEMS]) + more


def settings_text(settings) -> str:
    """key=value pairs of a training config (None and False left out), lists joined by commas."""
    if not isinstance(settings, dict):
        return shown(settings)
    return shown_items([f"{shown(k)}={','.join(shown(x) for x in v[:SHOWN_ITEMS]) if isinstance(v, list) else shown(v)}"
                        for k, v in settings.items() if not (v is None or v is False)])


def data_text(data) -> str:
    if not isinstance(data, dict):
        return f"data: {shown(data)}"
    return (f"data: {shown(data.get('path') or 'MNIST')} ({shown_count(data.get('examples', 0))} examples), "
            f"sha256 {shown(data.get('sha256'))}")


def history_text(history) -> str:
    if not isinstance(history, list):
        return f"history: {shown(history)}"
    last = history[-1]
    if not isinstance(last, dict):
        return f"history: {len(history)} epochs; last: {shown(last)}"
    summary = f"history: {len(history)} epochs; last: loss {shown_number(last.get('loss'))}"
    if last.get("accuracy") is not None:
        summary += f", accuracy {shown_number(last['accuracy'])}"
    if last.get("val_accuracy") is not None:
        summary += f", val accuracy {shown_number(last['val_accuracy'])}"
    return summary


# -- helpers ------------------------------------------------------------------------------------

def make_dir(path: Path) -> None:
    """Create the folder ``path`` and its parents if missing; FastnnError saying why not."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker is not None else e.strerror or e
        raise FastnnError(f"could not create the folder {path}: {why}") from e


def write_text(path: Path, text: str) -> None:
    from ..io import atomic_write

    try:
        atomic_write(Path(path), lambda f: f.write(text.encode()))
    except OSError as e:
        raise FastnnError(f"could not write {path}: {e.strerror or e}") from e


def main(argv: list[str] | None = None) -> int:
    """Entry point: errors are one line on stderr and a non-zero exit status, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except (FastnnError, ValueError) as e:
        message = " ".join(str(e).split())  # one line, whatever the message
        print(f"fastnn: error: {message}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `fastnn predict MODEL | head`: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:
        where = f" {e.filename}:" if e.filename else ""
        print(f"fastnn: error:{where} {e.strerror or e}", file=sys.stderr)
        return 1
    except (MemoryError, OverflowError, RecursionError) as e:  # the safety net behind the input checks
        print(f"fastnn: error: {limit_message(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fastnn: interrupted", file=sys.stderr)
        return 130


def limit_message(e: BaseException) -> str:
    """One line for input that went past a limit no check caught: memory, a number's range, or
    nesting too deep for Python's recursion."""
    detail = " ".join(str(e).split())
    if isinstance(e, MemoryError):
        return "not enough memory" + (f" ({detail})" if detail else "")
    if isinstance(e, RecursionError):
        return f"the input is nested too deeply to read ({detail})"
    return f"a number is out of range ({detail})"


if __name__ == "__main__":
    sys.exit(main())
