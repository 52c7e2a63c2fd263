"""The options of `fastnn train`: one table that builds the command line, reads TOML config files
and checks every value, so that a value is checked the same way wherever it comes from.

Precedence: built-in defaults < ``--config FILE.toml`` < options on the command line. A config
file's keys are the long option names (``batch-size`` or ``batch_size``); unknown keys are errors.
"""

from __future__ import annotations

import argparse
import math
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import FastnnError


class OptionError(ValueError):
    """A bad option value; the message names the option."""


# -- converters: accept a command-line string or a TOML value, return the checked value --------

_REPR = reprlib.Repr()
_REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 12, 8, 60, 60, 40


def _shown(value) -> str:
    """repr(value), shortened: a config value may be a megabyte of text or a deeply nested list."""
    try:
        return _REPR.repr(value)
    except ValueError:  # an int of over 4,300 digits, which Python will not convert to text
        return f"<a {type(value).__name__} too long to show>"


def _number(value, name: str, kind: type):
    what = "an integer" if kind is int else "a number"
    if isinstance(value, bool):
        raise OptionError(f"{name} must be a number, got {value!r}")
    try:
        if isinstance(value, str):
            return kind(value)
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int if kind is int else (int, float)):
            return kind(value)
    except ValueError:
        raise OptionError(f"{name} must be {what}, got {_shown(value)}") from None
    except OverflowError:  # float(10**400)
        raise OptionError(f"{name} must be a finite number, got {_shown(value)}") from None
    raise OptionError(f"{name} must be {what}, got {_shown(value)}")


def integer(minimum: int) -> Callable:
    def convert(value, name):
        v = _number(value, name, int)
        if v < minimum:
            raise OptionError(f"{name} must be an integer >= {minimum}, got {_shown(value)}")
        return v
    return convert


def real(low: float, high: float = math.inf, *, low_open=False, high_open=True) -> Callable:
    def convert(value, name):
        v = _number(value, name, float)
        ok = math.isfinite(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
        if not ok:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            raise OptionError(f"{name} must be a finite number in {left}{low:g}, {high:g}{right}, "
                              f"got {_shown(value)}")
        return v
    return convert


def positive(value, name):
    v = _number(value, name, float)
    if not (math.isfinite(v) and v > 0):
        raise OptionError(f"{name} must be a positive finite number, got {_shown(value)}")
    return v


def choice(*options: str) -> Callable:
    def convert(value, name):
        if value not in options:
            raise OptionError(f"{name} must be one of {', '.join(options)}; got {_shown(value)}")
        return value
    return convert


def layers(value, name):
    """Layer sizes, checked before any data is loaded: integers >= 1, at most MAX_PARAMETERS
    parameters, and a float32 network of them must fit in memory (MLP checks again with the
    dtype it gets)."""
    from ..data.checks import check_network_size

    sizes = _integers(value, name)
    if len(sizes) < 2 or min(sizes) < 1:
        raise OptionError(f"{name} needs at least two positive sizes, got {_shown(value)}")
    try:
        check_network_size(tuple(sizes), itemsize=4, name=name)
    except ValueError as e:
        raise OptionError(str(e)) from None
    return sizes


def hidden(value, name):
    """Hidden layer widths, e.g. 64,32: the table's input and output widths go around them (the
    network's size is checked once they are known)."""
    sizes = _integers(value, name)
    if not sizes or min(sizes) < 1:
        raise OptionError(f"{name} needs at least one positive width, got {_shown(value)}")
    return sizes


def _integers(value, name) -> list[int]:
    if isinstance(value, str):
        try:
            return [int(part) for part in value.split(",")]
        except ValueError:
            raise OptionError(f"{name} must be comma-separated integers, got {_shown(value)}") from None
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    raise OptionError(f"{name} must be a list of integers, got {_shown(value)}")


def column(value, name):
    if isinstance(value, str) and value:
        return value
    raise OptionError(f"{name} must be a column name, got {_shown(value)}")


def boolean(value, name):
    if isinstance(value, bool):
        return value
    raise OptionError(f"{name} must be true or false, got {_shown(value)}")


def path(value, name):
    if isinstance(value, (str, Path)) and str(value):
        return str(value)
    raise OptionError(f"{name} must be a file or folder path, got {_shown(value)}")


def log_path(value, name):
    value = path(value, name)
    if not value.lower().endswith((".csv", ".jsonl", ".json")):
        raise OptionError(f"{name} must end in .csv or .jsonl (the log's format), got {_shown(value)}")
    return value


# -- the table ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Option:
    name: str  # the long option name, also the config file key
    convert: Callable[[Any, str], Any]
    default: Any
    help: str
    group: str
    metavar: str | None = None
    flag: bool = False  # a --name/--no-name switch
    on_resume: bool = False  # may differ from the checkpoint's value on --resume


OPTIONS = [
    # the network
    Option("layers", layers, [784, 10, 10], "layer sizes, input to output, e.g. 784,128,10", "network", "N,N,..."),
    Option("activation", choice("relu", "leaky_relu", "tanh", "sigmoid", "gelu", "silu", "identity"), "relu",
           "activation of the hidden layers: relu, leaky_relu, tanh, sigmoid, gelu, silu or identity", "network",
           "NAME"),
    Option("init", choice("auto", "uniform", "he", "glorot"), "auto",
           "weight initialisation: uniform (the tutorial's U[-0.5, 0.5)), he or glorot; auto = uniform "
           "for hidden widths up to 32, he above", "network", "NAME"),
    Option("dropout", real(0, 1), 0.0, "dropout rate of the hidden layers while training, in [0, 1)", "network", "P"),
    Option("dtype", choice("float32", "float64"), "float32", "float32 or float64", "network", "DTYPE"),
    Option("seed", integer(0), 0, "seed of the weights, the shuffles, dropout and the validation split",
           "network", "N"),
    # the optimizer and its learning rate
    Option("optimizer", choice("sgd", "rmsprop", "adam", "adamw"), "sgd",
           "sgd (with --momentum, --nesterov), rmsprop, adam or adamw (torch's definitions)", "optimizer", "NAME"),
    Option("lr", positive, None, "learning rate (default: 0.1 for sgd, 0.01 rmsprop, 0.001 adam/adamw)",
           "optimizer", "LR"),
    Option("momentum", real(0, 1), 0.0, "SGD momentum, in [0, 1)", "optimizer", "M"),
    Option("nesterov", boolean, False, "Nesterov momentum (SGD, needs --momentum)", "optimizer", flag=True),
    Option("weight-decay", real(0), None,
           "L2 weight decay (AdamW: decoupled; default 0, 0.01 for adamw)", "optimizer", "WD"),
    Option("clip-norm", positive, None, "clip each batch's gradient to this global L2 norm", "optimizer", "NORM"),
    Option("schedule", choice("constant", "step", "exponential", "cosine", "plateau"), "constant",
           "learning-rate schedule: constant; step (x gamma every --step-size epochs); exponential "
           "(x gamma per epoch); cosine (to 0 over --epochs); plateau (x gamma when the monitored "
           "loss stalls for --lr-patience epochs)", "optimizer", "NAME"),
    Option("gamma", real(0, 1, low_open=True, high_open=False), None,
           "decay factor of step/exponential/plateau (default 0.1; 0.95 for exponential)", "optimizer", "G"),
    Option("step-size", integer(1), 10, "epochs between decays of the step schedule", "optimizer", "N"),
    Option("lr-patience", integer(0), 5, "epochs without improvement before plateau lowers the lr",
           "optimizer", "N"),
    Option("warmup", integer(0), 0, "linear learning-rate warm-up over this many steps (batches)",
           "optimizer", "STEPS"),
    # the loop
    Option("epochs", integer(1), 5, "passes over the training set", "training", "N", on_resume=True),
    Option("batch-size", integer(1), 64, "examples per step; >= the data size is full-batch descent",
           "training", "N"),
    Option("shuffle", boolean, True, "shuffle the examples each epoch (--no-shuffle: in order)", "training",
           flag=True),
    Option("validation-split", real(0, 1), 0.0,
           "fraction of the training examples held out (drawn with the seed) to report validation "
           "loss and accuracy each epoch", "training", "F"),
    Option("early-stopping", integer(0), None,
           "stop when the validation loss (else training loss) has not improved for this many epochs, "
           "keeping the best weights; 0: never (a table's default is 10)", "training", "PATIENCE"),
    Option("min-delta", real(0), 0.0, "improvement that counts for --early-stopping", "training", "D"),
    Option("threads", integer(1), None, "threads (default: all cores); results do not depend on it",
           "training", "N", on_resume=True),
    Option("blocks-per-epoch", integer(1), 20,
           "Python regains control this many times per epoch (progress bar, Ctrl-C); results do not "
           "depend on it", "training", "N", on_resume=True),
    # files
    Option("data", path, None, "an MNIST IDX folder, a Kaggle-layout digits CSV (label,pixel0..pixel783), or "
           "a table (.csv, .csv.gz, .tsv, .parquet, .npz with X and y; see --target); default: MNIST from "
           "$FASTNN_DATA or the cache", "files", "PATH", on_resume=True),
    Option("out", path, None, "save the trained model to this file (.npz); with --resume CHECKPOINT, "
           "default: NAME.npz beside a checkpoint NAME.ckpt.npz, else the checkpoint itself", "files", "FILE",
           on_resume=True),
    Option("metrics", log_path, None, "write per-epoch metrics to this log: .csv or .jsonl (JSON lines); "
           "with --resume, only if given again", "files", "FILE", on_resume=True),
    Option("checkpoint", path, None, "checkpoint file (default: beside --out, OUT.ckpt.npz, else "
           "fastnn-checkpoint.npz)", "files", "FILE", on_resume=True),
    Option("checkpoint-every", integer(1), None, "save a checkpoint every N epochs", "files", "N",
           on_resume=True),
]
OPTIONS += [
    # tables: any CSV, TSV, Parquet or .npz file
    Option("target", column, None, "the table's column to predict (default: y, label, target or class)",
           "table", "COLUMN"),
    Option("hidden", hidden, None, "hidden layer widths of a table's network (default 100); its input and output "
           "widths come from the table", "table", "N,N,..."),
    Option("task", choice("classification", "regression"), None, "classification or regression (default: from "
           "the target: text, or integers with few values, are classes)", "table", "TASK"),
    Option("scale", choice("standard", "minmax", "pixels", "none"), None, "scaling of the numeric columns, "
           "learnt on the training rows: standard (the default), minmax, pixels (/255) or none", "table", "HOW"),
    Option("test-split", real(0, 1, low_open=True), None, "hold out this fraction of a table's rows, stratified "
           "by class, as the test set", "table", "F"),
]
BY_NAME = {o.name: o for o in OPTIONS}
GROUPS = {"network": "the network", "optimizer": "optimizer and learning rate", "training": "training loop",
          "files": "files", "table": "tables (a CSV, TSV, Parquet or .npz file)"}
# A table's defaults, as scikit-learn's MLPClassifier/MLPRegressor: Adam at 0.001, batches of up
# to 200, up to 200 epochs, stopping when the loss improves by less than 1e-4 for 10 epochs,
# Glorot's initialisation, one hidden layer of 100 (an option given, or in --config, wins).
TABLE_DEFAULTS = {"optimizer": "adam", "batch-size": 200, "epochs": 200, "early-stopping": 10, "min-delta": 1e-4,
                  "init": "glorot", "hidden": [100], "scale": "standard", "layers": None}  # layers: from the table
OPTIMIZER_LR = {"sgd": 0.1, "rmsprop": 0.01, "adam": 0.001, "adamw": 0.001}


def dest(name: str) -> str:
    return name.replace("-", "_")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One argument per option, default SUPPRESS: the namespace holds only what was typed."""
    for key, title in GROUPS.items():
        group = parser.add_argument_group(title)
        for o in (o for o in OPTIONS if o.group == key):
            shown = o.default if o.default is not None else "none"
            if isinstance(shown, list):
                shown = ",".join(map(str, shown))
            help = f"{o.help} (default: {shown})" if o.default is not None and "default" not in o.help else o.help
            if o.flag:
                group.add_argument(f"--{o.name}", dest=dest(o.name), action=argparse.BooleanOptionalAction,
                                   default=argparse.SUPPRESS, help=help)
            else:
                group.add_argument(f"--{o.name}", dest=dest(o.name), type=_argtype(o), metavar=o.metavar,
                                   default=argparse.SUPPRESS, help=help)


def _argtype(o: Option):
    def convert(text):
        try:
            return o.convert(text, o.name)
        except OptionError as e:
            raise argparse.ArgumentTypeError(str(e))
    convert.__name__ = o.name
    return convert


def typed(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, by long name."""
    return {o.name: getattr(args, dest(o.name)) for o in OPTIONS if hasattr(args, dest(o.name))}


#: Largest TOML file read (a config holds a few options) and deepest nesting of arrays and
#: tables in it: tomllib has neither bound (it reads the whole file, and recurses once a level).
MAX_TOML_BYTES = 1 << 20
MAX_TOML_DEPTH = 32


def load_toml(file, kind: str = "config file", error: type[Exception] = FastnnError) -> dict[str, Any]:
    """A TOML file as a dict, or ``error`` ("<kind> <file> ...") saying why not: missing, not a
    regular file (a FIFO would block), over MAX_TOML_BYTES, not TOML, or nested deeper than
    MAX_TOML_DEPTH."""
    import tomllib

    from ..data.checks import regular_file

    p = regular_file(file, kind, error)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_TOML_BYTES + 1)
    except OSError as e:
        raise error(f"{kind} {p} could not be read: {e.strerror or e}") from None
    if len(data) > MAX_TOML_BYTES:
        raise error(f"{kind} {p} is larger than {MAX_TOML_BYTES:,} bytes, the limit for a TOML file")
    too_deep = f"{kind} {p} nests arrays or tables more than {MAX_TOML_DEPTH} levels deep"
    try:
        raw = tomllib.loads(data.decode())
    except RecursionError:
        raise error(too_deep) from None
    except ValueError as e:  # TOMLDecodeError, UnicodeDecodeError, an integer of over 4,300 digits
        raise error(f"{kind} {p} is not valid TOML: {e}") from None
    if _nesting_depth(raw) > MAX_TOML_DEPTH:
        raise error(too_deep)
    return raw


def _nesting_depth(value) -> int:
    """Levels of tables and arrays in ``value`` (a top-level table of scalars: 1), without recursing."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_toml(file) -> dict[str, Any]:
    """The options of a TOML config file, checked; FastnnError for anything wrong."""
    p = Path(file)
    raw = load_toml(p)
    options = {}
    for key, value in raw.items():
        name = key.replace("_", "-")
        if name not in BY_NAME:
            raise FastnnError(f"config file {p}: unknown key {_shown(key)} (keys are the long option names of "
                              "'fastnn train --help')")
        try:
            options[name] = BY_NAME[name].convert(value, name)
        except OptionError as e:
            raise FastnnError(f"config file {p}: {e}")
    return options


def resolve(given: dict[str, Any], file: dict[str, Any] | None = None, table: bool = False) -> dict[str, Any]:
    """Defaults (a table's: TABLE_DEFAULTS) < config file < command line, then the checks that
    look at several options."""
    config = {o.name: o.default for o in OPTIONS}
    if table:
        config.update(TABLE_DEFAULTS)
    config.update(file or {})
    config.update(given)
    check(config)
    return config


def check(config: dict[str, Any]) -> None:
    if config["optimizer"] != "sgd" and (config["momentum"] or config["nesterov"]):
        raise OptionError(f"--momentum and --nesterov are SGD's; the {config['optimizer']} optimizer has none")
    if config["nesterov"] and not config["momentum"]:
        raise OptionError("--nesterov needs a --momentum > 0")
    if config["early-stopping"] is None and config["min-delta"]:
        raise OptionError("--min-delta needs --early-stopping")


OUTPUT_FILES = ("out", "metrics", "checkpoint")  # the options naming files a run writes


def for_resume(saved: dict[str, Any], given: dict[str, Any], checkpoint) -> dict[str, Any]:
    """A checkpoint's config, with the options that may change on resume (epochs, files, threads).

    The files the run writes never come from the checkpoint (it may come from anyone): they are
    this command line's, else resumed_outputs()'s, beside the checkpoint.
    """
    config = {o.name: o.default for o in OPTIONS}
    config.update({name: value for name, value in checked_saved(saved, checkpoint).items() if name not in OUTPUT_FILES})
    for name, value in given.items():
        if not BY_NAME[name].on_resume and value != config.get(name):
            was = "the default" if config.get(name) is None else repr(config.get(name))
            raise OptionError(f"--{name} cannot change when resuming: {checkpoint} was trained with {name} = {was}")
        config[name] = value
    config.update(resumed_outputs(given, checkpoint))
    check(config)
    return config


def checked_saved(saved: dict[str, Any], checkpoint) -> dict[str, Any]:
    """A checkpoint's stored config, each value through its option's check, as a config file's
    are: the file may come from anyone. ModelFileError names the first bad one."""
    from ..errors import ModelFileError

    checked = {}
    for name, value in saved.items():
        if name not in BY_NAME:
            raise ModelFileError(f"{checkpoint} holds an unknown option {_shown(name)} in its config")
        try:
            checked[name] = value if value is None and BY_NAME[name].default is None \
                else BY_NAME[name].convert(value, name)
        except (OptionError, FastnnError) as e:
            raise ModelFileError(f"{checkpoint} holds an invalid config: {e}") from None
    return checked


def resumed_model(checkpoint) -> str:
    """Where a resumed run saves its model without --out: NAME.npz beside NAME.ckpt.npz (the
    checkpoint of a run with --out NAME.npz), else over the checkpoint itself."""
    p = Path(checkpoint)
    name = p.name.removesuffix(".ckpt.npz")
    return str(p.with_name(name + ".npz")) if name and name != p.name else str(p)


def resumed_outputs(given: dict[str, Any], checkpoint) -> dict[str, Any]:
    """The files a resumed run writes: those given on its command line; else the model to
    resumed_model(), no metrics log, and the checkpoint beside the model (OUT.ckpt.npz)."""
    return {"out": given.get("out", resumed_model(checkpoint)), "metrics": given.get("metrics"),
            "checkpoint": given.get("checkpoint")}


def absolute(config: dict[str, Any]) -> dict[str, Any]:
    """Paths made absolute, so that a checkpoint resumes from any folder."""
    out = dict(config)
    for name in ("data", "out", "metrics", "checkpoint"):
        if out.get(name) is not None:
            out[name] = str(Path(out[name]).expanduser().absolute())
    return out


# -- building the API's objects ------------------------------------------------------------------

def init(config) -> str:
    if config["init"] != "auto":
        return config["init"]
    return "uniform" if max(config["layers"][1:-1], default=0) <= 32 else "he"


def optimizer(config):
    from .. import optimizers

    kind = config["optimizer"]
    lr = config["lr"] if config["lr"] is not None else OPTIMIZER_LR[kind]
    decay = {} if config["weight-decay"] is None else {"weight_decay": config["weight-decay"]}
    if kind == "sgd":
        return optimizers.SGD(lr=lr, momentum=config["momentum"], nesterov=config["nesterov"], **decay)
    return {"rmsprop": optimizers.RMSprop, "adam": optimizers.Adam, "adamw": optimizers.AdamW}[kind](lr=lr, **decay)


def schedule(config):
    from .. import schedules

    kind, gamma = config["schedule"], config["gamma"]
    if kind == "constant":
        s = schedules.Schedule()
    elif kind == "step":
        s = schedules.StepDecay(step_size=config["step-size"], gamma=0.1 if gamma is None else gamma)
    elif kind == "exponential":
        s = schedules.Exponential(gamma=0.95 if gamma is None else gamma)
    elif kind == "cosine":
        s = schedules.Cosine(t_max=config["epochs"])
    else:
        s = schedules.ReduceOnPlateau(reduce_by=0.1 if gamma is None else gamma, patience=config["lr-patience"])
    return schedules.Warmup(steps=config["warmup"], then=s) if config["warmup"] else s


def schedule_state(s) -> dict | None:
    """What a stateful schedule (plateau) has learnt, for a checkpoint."""
    from .. import schedules

    inner = s.then if isinstance(s, schedules.Warmup) else s
    if isinstance(inner, schedules.ReduceOnPlateau):
        return {"current": inner.current, "best": inner.best, "bad_epochs": inner.bad_epochs}
    return None


def restore_schedule_state(s, state: dict | None) -> None:
    from .. import schedules

    inner = s.then if isinstance(s, schedules.Warmup) else s
    if state and isinstance(inner, schedules.ReduceOnPlateau):
        current, best, bad = (state.get(k) if isinstance(state, dict) else None
                              for k in ("current", "best", "bad_epochs"))
        if not (_is_real(current) and current > 0 and (_is_real(best) or best == math.inf)
                and type(bad) is int and bad >= 0):
            from ..errors import ModelFileError
            raise ModelFileError(f"the checkpoint's plateau schedule state is invalid: {_shown(state)}")
        inner.current, inner.best, inner.bad_epochs = current, best, bad


def _is_real(value) -> bool:
    return type(value) in (int, float) and math.isfinite(value)
