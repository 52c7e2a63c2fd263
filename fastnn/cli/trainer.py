"""`fastnn train`: load the data, build or resume the model, fit it with progress, metrics log,
periodic checkpoints and a checkpoint on Ctrl-C/SIGTERM, then report and save.

A model file written here (``--out`` or a checkpoint) carries in its metadata (``extra``):
``config`` (every option, paths absolute), ``data`` (path, examples, SHA-256 of the training
arrays), ``history`` (the metrics rows so far) and ``schedule_state``. ``--resume FILE`` needs
nothing else: it rebuilds the run from the file and continues it bit-identically. The files it
writes come from its own command line or sit beside FILE (config.resumed_outputs), never from
the file's config.

No finished training is lost to an output: every file the run writes is checked before training
(its folder exists or is created, and takes new files; the file is not a folder) and locked for
the run (claimed()), the model is saved before the final evaluation, and a periodic checkpoint
or metrics log that cannot be written is a warning, not the end of the run.
"""

from __future__ import annotations

import hashlib
import shlex
import sys

import numpy as np

from . import config as options, metrics_log
from ..data.examples import validation_rows
from ..errors import DataError, FastnnError, ModelFileError, TrainingDivergedError
from ..native import loader as native
from .outputs import checkpoint_path, claimed, outputs
from ..metrics import regression_report
from .tables import is_table, load_training_data, model_encoding, network_settings

def data_checksum(X: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 of the training arrays (dtype, shape and bytes of X, then of y)."""
    digest = hashlib.sha256()
    for a in (X, y):
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}|{a.shape}|".encode())
        digest.update(a.data)
    return digest.hexdigest()


def resume_command(config, checkpoint: str) -> str:
    """The command that continues this run from ``checkpoint`` into the same files: --out,
    --metrics and --checkpoint wherever they differ from what --resume alone would write."""
    words = ["fastnn", "train", "--resume", checkpoint]
    out = config["out"] or options.resumed_model(checkpoint)
    if out != options.resumed_model(checkpoint):
        words += ["--out", out]
    if config["metrics"]:
        words += ["--metrics", config["metrics"]]
    if checkpoint != checkpoint_path({"checkpoint": None, "out": out}):
        words += ["--checkpoint", checkpoint]
    return shlex.join(words)


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def warn(message: str) -> None:
    print(f"fastnn: warning: {' '.join(message.split())}", file=sys.stderr, flush=True)


# -- the run ---------------------------------------------------------------------------------------

def resolve_run(args):
    """(config, model or None): the run's options, from --resume's checkpoint or the command line
    and --config; the model when resuming."""
    from ..model import MLP

    given = options.typed(args)
    if not args.resume:
        file = options.read_toml(args.config) if args.config else None
        config = options.resolve(given, file)
        if is_table(config["data"], config["target"]):
            config = options.resolve(given, file, table=True)
        return options.absolute(config), None
    if args.config:
        raise FastnnError("--config cannot be combined with --resume (the checkpoint holds the config)")
    model = MLP.load(args.resume)
    saved = model.metadata.get("config")
    if not isinstance(saved, dict):
        raise FastnnError(f"{args.resume} holds no training config: not a checkpoint written by fastnn train")
    return options.absolute(options.for_resume(saved, given, args.resume)), model


def run(args) -> int:
    config, model = resolve_run(args)
    with claimed(outputs(config)):
        return train(args, config, model)


def train(args, config, model) -> int:
    from ..model import MLP
    from .progress import Progress, bar_wanted
    from .signals import StopRequest
    from ..training import EarlyStopping

    encoding = model_encoding(model) if model is not None else None
    data = load_training_data(config, encoding, np.dtype(config["dtype"]))
    X, y = data.X, data.y
    jit_reason = native.missing()
    if jit_reason is not None:  # else a first run's silent compiling looks like a hang
        print(f"note: {jit_reason}; until then the kernels compile on first use (about 20 s, then cached)",
              file=sys.stderr, flush=True)
    checksum = data_checksum(X, y)
    if model is not None:
        trained_on = model.metadata.get("data")
        before = trained_on.get("sha256") if isinstance(trained_on, dict) else None
        if before is not None and before != checksum:
            raise DataError(f"the training data ({config['data'] or 'MNIST'}) is not the data "
                            f"{args.resume} was trained on (its SHA-256 differs)")
    else:
        network = network_settings(config, data.encoding)
        config["layers"] = network.pop("sizes")
        model = MLP(config["layers"], activation=config["activation"], init=options.init(config),
                    dropout=config["dropout"], seed=config["seed"], dtype=config["dtype"], **network)
    if list(model.sizes) != list(config["layers"]):
        raise FastnnError(f"{args.resume} holds a {'-'.join(map(str, model.sizes))} network, its config says "
                          f"{'-'.join(map(str, config['layers']))}")
    validation = None
    if config["validation-split"]:
        train_rows, held = validation_rows(len(y), config["validation-split"], config["seed"], "--validation-split")
        validation = (X[held], y[held])
        X, y = X[train_rows], y[train_rows]

    optimizer = options.optimizer(config)
    schedule = options.schedule(config)
    if args.resume:
        options.restore_schedule_state(schedule, model.metadata.get("schedule_state"))
    history_rows = metrics_log.stored_rows(model.metadata.get("history"), model.epochs_trained)
    data_info = {"path": config["data"], "examples": int(len(y) + (0 if validation is None else len(validation[1]))),
                 "sha256": checksum}
    checkpoint = checkpoint_path(config)

    table = {"table": data.encoding.to_dict()} if data.encoding is not None else {}

    def save(path):
        model.save(path, config=config, data=data_info, history=history_rows,
                   schedule_state=options.schedule_state(schedule), **table)

    def save_checkpoint():
        try:
            save(checkpoint)
        except (ModelFileError, OSError) as e:  # e.g. a full disk: the run goes on, its model is what counts
            warn(f"could not save the checkpoint of epoch {model.epochs_trained} ({e}); training goes on")

    def write_metrics():
        try:
            metrics_log.write(config["metrics"], history_rows)
        except DataError as e:  # the whole log is written again after the next epoch
            warn(f"{e}; training goes on")

    remaining = config["epochs"] - model.epochs_trained
    layers = "-".join(map(str, model.sizes))
    held_out = f" ({len(validation[1]):,} held out for validation)" if validation is not None else ""
    if args.resume:
        where = f"epoch {model.epochs_trained + 1} of {config['epochs']}"
        if model.position:
            where += f", batch {model.position['batches_done'] + 1} of {model.position['n_batches']}"
        print(f"resuming {layers} on {len(y):,} examples{held_out} from {args.resume}: {where}")
    else:
        print(f"training {layers} on {len(y):,} examples{held_out}: {plural(config['epochs'], 'epoch')}, batch "
              f"{config['batch-size']}, lr {optimizer.lr:g}, seed {config['seed']}")

    progress = Progress(bar_wanted(getattr(args, "quiet", False), getattr(args, "progress", False)),
                        len(y), config["batch-size"], config["epochs"])
    skipped = model.position["batches_done"] if model.position else 0

    first_epoch = model.epochs_trained + 1  # the one a checkpoint may have stopped inside

    def on_block(epoch, batches_done, n_batches):
        progress.block(epoch, batches_done, n_batches, skipped if epoch == first_epoch else 0)
        return stop.requested

    def on_epoch(epoch, history):
        seconds = history.seconds[-1]
        trained = len(y) - (min(skipped * config["batch-size"], len(y)) if epoch == first_epoch else 0)
        row = {"epoch": model.epochs_trained, "loss": history.loss[-1],
               "accuracy": history.accuracy[-1] if history.accuracy else None,
               "val_loss": history.val_loss[-1] if history.val_loss else None,
               "val_accuracy": history.val_accuracy[-1] if history.val_accuracy else None,
               "lr": history.lr[-1], "seconds": seconds, "examples_per_second": trained / max(seconds, 1e-9)}
        history_rows.append(row)
        line = f"epoch {row['epoch']}: loss {row['loss']:.4f}"
        if row["accuracy"] is not None:
            line += f", accuracy {row['accuracy']:.4f}"
        if row["val_loss"] is not None:
            line += f", val loss {row['val_loss']:.4f}, val accuracy {row['val_accuracy']:.4f}"
        progress.epoch(f"{line} ({seconds:.3f} s)", {"loss": row["loss"], "acc": row["accuracy"]})
        if config["metrics"]:
            write_metrics()
        every = config["checkpoint-every"]
        if every and model.epochs_trained % every == 0 and model.epochs_trained < config["epochs"]:
            save_checkpoint()

    if config["metrics"] and args.resume:
        write_metrics()  # drop epochs trained after the checkpoint
    early = None
    if config["early-stopping"]:
        early = EarlyStopping(patience=config["early-stopping"], min_delta=config["min-delta"])
    history = None
    with StopRequest() as stop:
        try:
            if remaining > 0:
                history = model.fit(X, y, epochs=remaining, batch_size=config["batch-size"], optimizer=optimizer,
                                    schedule=schedule, shuffle=config["shuffle"], validation_data=validation,
                                    early_stopping=early, clip_norm=config["clip-norm"], threads=config["threads"],
                                    blocks_per_epoch=config["blocks-per-epoch"], on_block=on_block,
                                    on_epoch=on_epoch)
        except TrainingDivergedError as diverged:
            if not config["out"]:
                raise
            save(config["out"])  # the weights of the last good block
            raise TrainingDivergedError(f"{diverged}; saved them to {config['out']}") from None
        finally:
            progress.close()
        finished = model.epochs_trained >= config["epochs"] or (history is not None and history.stopped_early)
        if stop.requested and not finished:
            save(checkpoint)
            print(f"interrupted: checkpoint saved to {checkpoint}; resume with: {resume_command(config, checkpoint)}",
                  file=sys.stderr, flush=True)
            return stop.exit_status  # 130 for SIGINT, 143 for SIGTERM
    if remaining <= 0:
        print(f"nothing to train: {args.resume} has trained {model.epochs_trained} of {config['epochs']} epochs")
    if history is not None and history.stopped_early:
        print(f"stopped early after epoch {model.epochs_trained}; kept the weights of epoch "
              f"{model.epochs_trained - len(history.loss) + history.best_epoch + 1}")
    if config["out"]:  # before the evaluation: whatever happens there, the training is kept
        save(config["out"])
        print(f"saved {config['out']}")
    report_test(model, data, config)
    return 0


def report_test(model, data, config) -> None:
    """Print the accuracy (a table's regression: R², RMSE, MAE) on the data's test set, if it
    has one; an empty one is a warning."""
    if data.X_test is None:
        return
    if len(data.X_test) == 0:
        warn(f"no test accuracy: the test set of {config['data'] or 'MNIST'} has no examples")
        return
    if model.output == "linear":
        encoding = data.encoding
        report = regression_report(encoding.values(model.predict_proba(data.X_test)),
                                   encoding.values(data.y_test))
        print(f"test R² {report['r2']:.4f}, RMSE {report['rmse']:.6g}, MAE {report['mae']:.6g}")
        return
    print(f"test accuracy: {model.evaluate(data.X_test, data.y_test)['accuracy']:.4f}")
