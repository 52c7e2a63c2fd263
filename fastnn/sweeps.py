"""Sweeps: many trainings of one data set, a grid or a random search over `fastnn train` options
and seeds, on this machine or on a Dask cluster.

    fastnn sweep CONFIG.toml [--out DIR] [--resume] [--scheduler ADDRESS | --workers N] [--dashboard]
    fastnn.sweep(config, client=None, ...)          (Python; config: a TOML path or a dict)

A config file has three tables; every key of [train], [grid] and [random] is a long option name
of `fastnn train` (layers, activation, init, dropout, dtype, optimizer, lr, momentum, nesterov,
weight-decay, clip-norm, schedule, gamma, step-size, lr-patience, warmup, epochs, batch-size,
shuffle, early-stopping, min-delta), checked the same way:

    [sweep]
    data = "/data/mnist"      # an MNIST IDX folder or a CSV; default: MNIST ($FASTNN_DATA, cache)
    limit = 10000             # use the first N training examples only
    validation = 0.1          # fraction of them held out, the same for every run (split-seed = 0)
    seeds = 3                 # each point runs with seeds 0, 1, 2 (or a list: [0, 7])
    metric = "val_accuracy"   # ranks the runs: train_/val_/test_ loss or accuracy
    runs = 20                 # [random] only: points drawn (search-seed = 0)
    models-per-task = 8       # runs of one shape trained together by fit_many, per task

    [train]                   # every run's settings
    layers = [784, 64, 10]
    epochs = 5

    [grid]                    # every combination (or [random]: lists are choices, and
    lr = [0.05, 0.1, 0.2]     #   {log-uniform = [a, b]}, {uniform = [a, b]}, {int-uniform = [a, b]}
    batch-size = [32, 64]     #   are drawn from)

Results go to OUT/results.csv, one row per run as it completes (so an interrupted sweep resumes
with ``--resume``, skipping the runs already there), rewritten sorted by the metric at the end;
the best run's model to OUT/best.npz. Runs of one network shape and optimizer kind are trained
together by fastnn.fit_many (one kernel call, each model bit-identical to its own fit), so the
results do not depend on how runs are grouped, on threads, or on the machine that ran them. On
Dask, each group is cut into one chunk per worker core; the column `worker` of the results names
the worker that trained each run ("local" without Dask).

Ctrl-C stops a sweep with one line that says how to resume it. On a local Dask cluster
(--workers) that means keeping the Ctrl-C that a terminal sends to every process away from the
workers (they ignore it, and the sweep stops them) and away from Dask's blocking calls (a call cut
short leaves the client broken, and Dask prints tracebacks).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import math
import os
import shlex
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .data.examples import validation_rows
from .errors import DataError, FastnnError

__all__ = ["sweep", "plan", "SweepError", "SweepInterrupted", "add_sweep_command", "run_sweep_command"]

SWEEP_KEYS = {"data", "limit", "validation", "split-seed", "seeds", "metric", "mode", "runs", "search-seed",
              "models-per-task", "out"}
# `fastnn train` options that a sweep sets itself, or that make no sense per run
NOT_RUN_OPTIONS = {"seed", "threads", "data", "out", "metrics", "checkpoint", "checkpoint-every",
                   "blocks-per-epoch", "validation-split"}
METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
RESULT_COLUMNS = ("status", "epochs_run", *METRICS, "seconds", "worker")
DISTRIBUTIONS = ("uniform", "log-uniform", "int-uniform")


class SweepError(FastnnError, ValueError):
    """A sweep that cannot run as configured."""


# -- the plan: every run, with a stable id -----------------------------------------------------------

def load_config(config) -> tuple[dict, Path | None]:
    """The config as a dict (from a TOML file, or given as a dict), and its file if any."""
    if isinstance(config, dict):
        return config, None
    from .cli.config import load_toml  # the same bounds as fastnn train --config: size, depth, regular file

    p = Path(config)
    return load_toml(p, "sweep config", SweepError), p


def _name(key: str) -> str:
    return str(key).replace("_", "-")


def _run_option(key: str, value):
    """A `fastnn train` option's value, checked by its converter."""
    from .cli import config as options

    name = _name(key)
    if name in NOT_RUN_OPTIONS:
        hint = " (use [sweep] seeds)" if name == "seed" else " (use [sweep] validation)" \
            if name == "validation-split" else " (use [sweep] data)" if name == "data" else ""
        raise SweepError(f"{name} cannot be set per run{hint}")
    if name not in options.BY_NAME:
        raise SweepError(f"unknown option {key!r}: the keys of [train], [grid] and [random] are the long "
                         "option names of 'fastnn train --help'")
    try:
        return name, options.BY_NAME[name].convert(value, name)
    except ValueError as e:
        raise SweepError(str(e))


def _draw(name: str, spec, rng: np.random.Generator):
    """One value of a [random] entry: a list is a choice, a table a distribution."""
    if isinstance(spec, list):
        if not spec:
            raise SweepError(f"[random] {name}: an empty list of choices")
        return spec[int(rng.integers(len(spec)))]
    if isinstance(spec, dict) and len(spec) == 1 and _name(next(iter(spec))) in DISTRIBUTIONS:
        kind, bounds = _name(next(iter(spec))), next(iter(spec.values()))
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds)
                and bounds[0] <= bounds[1]):
            raise SweepError(f"[random] {name}: {kind} needs [low, high] with low <= high, got {bounds!r}")
        low, high = bounds
        if kind == "uniform":
            return float(rng.uniform(low, high))
        if kind == "log-uniform":
            if low <= 0:
                raise SweepError(f"[random] {name}: log-uniform needs positive bounds, got {bounds!r}")
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        return int(rng.integers(int(low), int(high) + 1))
    raise SweepError(f"[random] {name}: expected a list of choices or one of "
                     f"{{{', '.join(k + ' = [low, high]' for k in DISTRIBUTIONS)}}}, got {spec!r}")


def _points(raw: dict) -> tuple[list[dict], list[str]]:
    """The search's points (option name -> value) and the names of the options it varies."""
    import itertools

    grid, random = raw.get("grid"), raw.get("random")
    if grid is not None and random is not None:
        raise SweepError("a sweep has a [grid] or a [random] table, not both")
    space = grid if grid is not None else random if random is not None else {}
    if not isinstance(space, dict):
        raise SweepError("[grid] and [random] must be tables")
    names = [_name(k) for k in space]
    if len(set(names)) != len(names):
        raise SweepError("an option appears twice in the search table (once with '-', once with '_'?)")
    settings = raw.get("sweep", {})
    if random is None:
        if "runs" in settings:
            raise SweepError("[sweep] runs is for a [random] search; a [grid] runs every combination")
        for key, values in space.items():
            if not isinstance(values, list) or not values:
                raise SweepError(f"[grid] {key}: expected a non-empty list of values, got {values!r}")
        points = [dict(zip(names, combo)) for combo in itertools.product(*space.values())]
    else:
        runs = settings.get("runs", 10)
        if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
            raise SweepError(f"[sweep] runs must be an integer >= 1, got {runs!r}")
        rng = np.random.default_rng(_int(settings.get("search-seed", settings.get("search_seed", 0)), "search-seed"))
        points = [{n: _draw(n, space[k], rng) for n, k in zip(names, space)} for _ in range(runs)]
    checked = []
    for point in points:
        checked.append(dict(_run_option(k, v) for k, v in point.items()))
    return checked, names


def _int(value, name, minimum=0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SweepError(f"[sweep] {name} must be an integer >= {minimum}, got {value!r}")
    return value


def sweep_settings(raw: dict) -> dict:
    """[sweep], checked, with its defaults."""
    unknown = set(raw) - {"sweep", "train", "grid", "random"}
    if unknown:
        raise SweepError(f"unknown table(s) {sorted(unknown)}: a sweep config has [sweep], [train], and [grid] "
                         "or [random]")
    given = {_name(k): v for k, v in raw.get("sweep", {}).items()}
    bad = set(given) - SWEEP_KEYS
    if bad:
        raise SweepError(f"unknown [sweep] key(s) {sorted(bad)}; known: {sorted(SWEEP_KEYS)}")
    s = {"data": None, "limit": None, "validation": 0.1, "split-seed": 0, "seeds": [0], "metric": "val_accuracy",
         "mode": None, "models-per-task": 8, "out": None}
    s.update(given)
    seeds = s["seeds"]
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = list(range(_int(seeds, "seeds", 1)))
    if not (isinstance(seeds, list) and seeds and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                                                      for x in seeds)) or len(set(seeds)) != len(seeds):
        raise SweepError(f"[sweep] seeds must be a count or a list of distinct integers >= 0, got {s['seeds']!r}")
    s["seeds"] = seeds
    if s["limit"] is not None:
        _int(s["limit"], "limit", 2)
    v = s["validation"]
    if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1):
        raise SweepError(f"[sweep] validation must be a fraction in [0, 1), got {v!r}")
    _int(s["split-seed"], "split-seed")
    _int(s["models-per-task"], "models-per-task", 1)
    if s["metric"] not in METRICS:
        raise SweepError(f"[sweep] metric must be one of {METRICS}, got {s['metric']!r}")
    if s["metric"].startswith("val_") and not v:
        raise SweepError(f"[sweep] metric {s['metric']} needs validation > 0")
    if s["mode"] is None:
        s["mode"] = "max" if s["metric"].endswith("accuracy") else "min"
    if s["mode"] not in ("max", "min"):
        raise SweepError(f"[sweep] mode must be 'max' or 'min', got {s['mode']!r}")
    return s


def plan(config) -> tuple[list[dict], list[str], dict]:
    """(runs, the varied option names, [sweep] settings) of a config (TOML path or dict).

    Each run is {"index", "id", "seed", "point" (the varied options), "spec" (every option)}; its
    id is a digest of its spec and seed (and, when the sweep runs, of the data), stable across
    sessions, so that --resume recognises the runs already done."""
    from .cli import config as options

    raw, _ = load_config(config)
    settings = sweep_settings(raw)
    fixed = dict(_run_option(k, v) for k, v in raw.get("train", {}).items())
    points, names = _points(raw)
    runs = []
    for point in points:
        for seed in settings["seeds"]:
            try:
                spec = options.resolve(point, fixed)
            except ValueError as e:
                raise SweepError(f"run {point}: {e}")
            spec = {k: v for k, v in spec.items() if k not in NOT_RUN_OPTIONS}
            runs.append({"index": len(runs), "seed": seed, "point": point, "spec": spec})
    return runs, names, settings


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


# -- data ------------------------------------------------------------------------------------------

def load_data(settings: dict, data=None) -> dict:
    """Training, validation and test arrays: ``data`` ((X, y) or (X, y, X_test, y_test)), else
    [sweep] data (a path), else MNIST; the first ``limit`` training examples; a seeded split."""
    from .data import datasets

    if data is None:
        if settings["data"] is not None:
            X, y, X_test, y_test = datasets.load_dataset(Path(settings["data"]).expanduser())
        else:
            m = datasets.load_mnist()
            X, y, X_test, y_test = m.train_images, m.train_labels, m.test_images, m.test_labels
    else:
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 4):
            raise SweepError("data must be (X, y) or (X, y, X_test, y_test)")
        X, y, X_test, y_test = (*data, None, None)[:4]
    X, y = np.asarray(X), np.asarray(y)
    if settings["limit"] is not None:
        X, y = X[:settings["limit"]], y[:settings["limit"]]
    out = {"X": X, "y": y, "X_val": None, "y_val": None, "X_test": X_test, "y_test": y_test}
    if settings["validation"]:
        try:
            train, val = validation_rows(len(y), settings["validation"], settings["split-seed"], "validation =")
        except DataError as error:
            raise SweepError(str(error)) from None
        out.update(X=X[train], y=y[train], X_val=X[val], y_val=y[val])
    return out


def data_fingerprint(data: dict) -> str:
    """A digest of every array: a run's id covers the data it trains and is scored on."""
    digest = hashlib.sha256()
    for name in ("X", "y", "X_val", "y_val", "X_test", "y_test"):
        a = data[name]
        if a is not None:
            a = np.ascontiguousarray(a)
            digest.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
            digest.update(a.tobytes())
    return digest.hexdigest()


# -- running: one task trains a chunk of runs (one shape: one fit_many call) ----------------------

def group_key(spec: dict) -> str | None:
    """Runs with the same key can train together in fit_many: everything but seed, initial
    weights and the optimizer's numbers. None: the run trains alone (early stopping and the
    plateau schedule need per-model validation, which fit_many does not do)."""
    if spec.get("early-stopping") or spec.get("schedule") == "plateau":
        return None
    shared = {k: v for k, v in spec.items() if k not in ("lr", "momentum", "weight-decay", "init")}
    shared["momentum>0"] = bool(spec.get("momentum"))
    return _digest(shared)


def chunks(runs: list[dict], per_task: int, cores: int = 1) -> list[list[dict]]:
    """Runs grouped by group_key, in plan order, cut into chunks of at most per_task runs, and
    each group into at least ``cores`` chunks (as many as it has runs allow) of near-equal size:
    on a cluster, one chunk per worker core, so that one group keeps every core busy."""
    groups: dict = {}
    for r in runs:
        key = group_key(r["spec"])
        groups.setdefault(key if key is not None else f"alone-{r['id']}", []).append(r)
    out = []
    for members in groups.values():
        parts = max(-(-len(members) // per_task), min(cores, len(members)))
        size, extra = divmod(len(members), parts)
        start = 0
        for part in range(parts):  # the first `extra` chunks get one run more
            end = start + size + (part < extra)
            out.append(members[start:end])
            start = end
    return out


def _build(run: dict):
    from .cli import config as options
    from .model import MLP

    spec = run["spec"]
    return MLP(spec["layers"], activation=spec["activation"], init=options.init(spec), dropout=spec["dropout"],
               pixels=None,  # uint8 images (the loaders' digits) are pixels, other data is used as given
               seed=run["seed"], dtype=spec["dtype"])


def prepared(data: dict, name: str, dtype: str):
    """data[name] converted once per dtype for every run that reads it (fastnn.prepare),
    kept in data; None stays None."""
    from .data.prepared import prepare

    if data[name] is None:
        return None
    cache = data.setdefault("prepared", {})
    if (name, dtype) not in cache:
        cache[name, dtype] = prepare(data[name], dtype)
    return cache[name, dtype]


def run_chunk(runs: list[dict], data: dict, threads: int | None = None) -> list[tuple[dict, Any]]:
    """Train the runs of one chunk (fit_many for two or more runs of one group), score them;
    returns [(row, trained MLP)]. A run whose loss diverges gets status 'diverged'."""
    from .cli import config as options
    from .errors import TrainingDivergedError
    from .many import fit_many
    from .training import EarlyStopping

    started = time.perf_counter()
    spec = runs[0]["spec"]
    models = [_build(r) for r in runs]
    X, X_val, X_test = (prepared(data, name, spec["dtype"]) for name in ("X", "X_val", "X_test"))
    common = dict(epochs=spec["epochs"], batch_size=spec["batch-size"], shuffle=spec["shuffle"],
                  clip_norm=spec["clip-norm"], threads=threads)
    statuses = ["ok"] * len(runs)
    histories: list = [None] * len(runs)
    together = len(runs) > 1 and group_key(spec) is not None
    if together:
        try:
            histories = fit_many(models, X, data["y"], optimizers=[options.optimizer(r["spec"]) for r in runs],
                                 schedule=options.schedule(spec), **common)
        except TrainingDivergedError:  # find which: train them one by one (same results)
            models = [_build(r) for r in runs]
            together = False
    if not together:
        for k, (run, model) in enumerate(zip(runs, models)):
            s = run["spec"]
            stop = None if not s["early-stopping"] else EarlyStopping(patience=s["early-stopping"],
                                                                      min_delta=s["min-delta"])
            if stop is not None and data["X_val"] is None:
                raise SweepError("early-stopping in a sweep needs [sweep] validation > 0")
            try:
                histories[k] = model.fit(X, data["y"], optimizer=options.optimizer(s),
                                         schedule=options.schedule(s), early_stopping=stop,
                                         validation_data=None if stop is None else (X_val, data["y_val"]),
                                         **{**common, "epochs": s["epochs"], "batch_size": s["batch-size"],
                                            "shuffle": s["shuffle"], "clip_norm": s["clip-norm"]})
            except TrainingDivergedError:
                statuses[k] = "diverged"
    seconds = (time.perf_counter() - started) / len(runs)
    worker = worker_name()
    out = []
    for run, model, history, status in zip(runs, models, histories, statuses):
        row = {"id": run["id"], "index": run["index"], "seed": run["seed"], "status": status,
               "epochs_run": len(history.loss) if history is not None else None,
               **{m: None for m in METRICS}, "seconds": seconds, "worker": worker}
        if status == "ok":
            row["train_loss"] = history.loss[-1]
            row["train_accuracy"] = history.accuracy[-1]
            for part, inputs in (("val", X_val), ("test", X_test)):
                if inputs is not None:
                    metrics = model.evaluate(inputs, data[f"y_{part}"])
                    row[f"{part}_loss"], row[f"{part}_accuracy"] = metrics["loss"], metrics["accuracy"]
        out.append((row, model if status == "ok" else None))
    return out


def worker_name() -> str:
    """The address of the Dask worker running this, or "local" outside a Dask worker."""
    if "distributed" in sys.modules:  # never import Dask for a local sweep
        from distributed import get_worker

        try:
            return get_worker().address
        except ValueError:  # not in a worker
            pass
    return "local"


def _local_results(todo_chunks, data):
    for chunk in todo_chunks:
        yield run_chunk(chunk, data, threads=None)


# Scattering to every worker now and then never returns (dask/distributed#4907, also seen in this
# project's CI at the start of a sweep): each try gets this long, and one more follows.
SCATTER_TIMEOUT_SECONDS = 120
SCATTER_TRIES = 2


def _scatter_to_all(client, data: dict) -> dict:
    """The arrays of ``data`` sent to every worker: {name: future} (None stays None), tried
    again if the scatter does not return in time. Each under a key of its own: a dict given to
    scatter keeps its names ("X", "y") as the cluster's keys, which another sweep on the same
    cluster would share, and release under this one."""
    names = [name for name, value in data.items() if value is not None]
    for attempt in range(SCATTER_TRIES):
        try:
            futures = client.scatter([data[name] for name in names], broadcast=True, hash=False,
                                     timeout=SCATTER_TIMEOUT_SECONDS)
            return {**data, **dict(zip(names, futures))}
        except TimeoutError as error:
            if attempt == SCATTER_TRIES - 1:
                raise SweepError(f"sending the data to the Dask workers did not finish in {SCATTER_TRIES} tries "
                                 f"of {SCATTER_TIMEOUT_SECONDS} s") from error


def _dask_results(todo_chunks, data, client):
    """Each chunk a task on the cluster, single-threaded; the data scattered to every worker.
    A task lost with its worker is run again by Dask elsewhere; the caller counts each run once."""
    from distributed import as_completed

    token = os.urandom(4).hex()
    with _sigint_deferred():  # a scatter cut short by Ctrl-C breaks the client (see _connect)
        shared = _scatter_to_all(client, data)
        futures = [client.submit(run_chunk, chunk, shared, 1, pure=False,
                                 key=f"fastnn-sweep-{chunk[0]['id']}-{len(chunk)}-{token}")
                   for chunk in todo_chunks]
    try:
        # with_results: the results are fetched on Dask's own thread. future.result() here would wait
        # in distributed.utils.sync, where a Ctrl-C can land before its future exists and Dask
        # prints a NameError traceback.
        for future, result in as_completed(futures, with_results=True):
            if isinstance(result, BaseException):  # cancelled by Dask (errors raise in as_completed)
                raise SweepError(f"Dask cancelled a task of the sweep: {result}")
            future.release()
            yield result
    finally:
        client.cancel(futures)


# -- the results file ----------------------------------------------------------------------------

def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return repr(value) if isinstance(value, float) else str(value)


class Results:
    """OUT/results.csv: a header, then one row per finished run, appended and flushed to disk
    as each run completes; rewritten sorted by the metric when the sweep ends."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns

    def read(self) -> list[dict]:
        """The finished runs in the file; a last line cut short by a crash is dropped."""
        with self.path.open(newline="") as f:
            lines = list(csv.reader(f))
        if not lines:
            return []
        if lines[0] != self.columns:
            raise SweepError(f"{self.path} holds the results of another sweep (its columns differ); "
                             "use another --out, or --overwrite to start again")
        return [dict(zip(self.columns, line)) for line in lines[1:] if len(line) == len(self.columns)]

    def start(self, rows: list[dict]) -> None:
        """Write the header and ``rows`` (atomically): the file a sweep appends to."""
        from .io import atomic_write

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in self.columns])
        atomic_write(self.path, lambda f: f.write(buffer.getvalue().encode()))

    def append(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f, lineterminator="\n").writerow([_cell(row.get(c)) for c in self.columns])
            f.flush()
            os.fsync(f.fileno())


def _score(row: dict, metric: str, mode: str) -> float | None:
    """The row's metric, oriented so that larger is better; None if missing or not finite."""
    text = row.get(metric)
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    return value if mode == "max" else -value


def _better(row: dict, best: dict | None, metric: str, mode: str) -> bool:
    score = _score(row, metric, mode)
    if score is None:
        return False
    if best is None:
        return True
    best_score = _score(best, metric, mode)
    return score > best_score or (score == best_score and int(row["index"]) < int(best["index"]))


# -- the sweep -----------------------------------------------------------------------------------

def check_outputs(folder: Path, files: list[Path]) -> None:
    """SweepError, before any run trains, unless ``folder`` exists or can be created and none of
    ``files`` (written into it as runs finish) is a folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SweepError(f"could not create the results folder {folder}: {e.strerror or e}") from e
    for path in files:
        if path.is_dir():
            raise SweepError(f"{path} is a folder, where the sweep writes a file: remove it or use another --out")


def sweep(config, *, data=None, out=None, resume: bool = False, overwrite: bool = False, client=None,
          scheduler: str | None = None, workers: int | None = None, dashboard: str | None = None,
          progress: bool | None = None, on_result: Callable[[dict], None] | None = None):
    """Run a sweep (see this module's docstring); returns its results as a pandas DataFrame,
    sorted by the metric (best first), as written to OUT/results.csv.

    - ``config``: a TOML file or the same structure as a dict.
    - ``data``: (X, y) or (X, y, X_test, y_test) arrays instead of [sweep] data.
    - ``out``: the results folder (default: [sweep] out, else CONFIG-sweep beside a config file,
      else ./sweep). It must not hold results already, unless ``resume`` (skip the runs found
      there) or ``overwrite`` (start again).
    - Where runs train: in this process by default (each with all cores); on the Dask cluster of
      ``client`` (a distributed.Client) or of ``scheduler`` (its address, e.g.
      'tcp://10.0.0.5:8786'); or on a local Dask cluster of ``workers`` processes. On Dask each
      run is single-threaded, and the runs of one group are split into one chunk per worker core.
      Results are identical wherever runs train; the column ``worker`` says where each trained
      (a Dask worker's address, or "local").
    - ``dashboard``: on Dask, print the address of the Dask dashboard on stderr; for the local
      cluster of ``workers``, it is served at this address (":8787", or ":0" for a free port).
    - ``progress``: a progress bar on stderr; by default only when stderr is a terminal.
    - ``on_result(row)`` is called after each finished run (a dict of its results row).

    Ctrl-C (KeyboardInterrupt) raises SweepInterrupted, a KeyboardInterrupt that says how many
    runs are done; the runs in OUT/results.csv are kept, and ``resume=True`` continues.
    """
    import pandas as pd

    runs, names, settings = plan(config)
    _, config_path = load_config(config)
    if sum(x is not None for x in (client, scheduler, workers)) > 1:
        raise SweepError("give at most one of client, scheduler and workers")
    if dashboard is not None and client is None and scheduler is None and workers is None:
        raise SweepError("the dashboard is Dask's: it needs a Dask cluster (--workers N or --scheduler ADDRESS)")
    arrays = load_data(settings, data)
    fingerprint = data_fingerprint(arrays)
    for r in runs:
        r["id"] = _digest({"spec": r["spec"], "seed": r["seed"], "data": fingerprint})[:12]
    out = Path(out if out is not None else settings["out"] if settings["out"] is not None
               else config_path.with_name(config_path.stem + "-sweep") if config_path is not None else "sweep")
    columns = ["id", "index", "seed", *names, *RESULT_COLUMNS]
    results = Results(out / "results.csv", columns)
    best_path = out / "best.npz"
    check_outputs(out, [results.path, best_path])
    done: dict[str, dict] = {}
    if results.path.exists() and results.path.stat().st_size and not overwrite:
        if not resume:
            raise SweepError(f"{results.path} exists: pass --resume to continue that sweep (its finished runs "
                             "are skipped), or --overwrite to start again")
        known = {r["id"] for r in runs}
        for row in results.read():
            if row["id"] not in known:
                raise SweepError(f"{results.path} holds run {row['id']}, which is not in this sweep (another config "
                                 "or data?): use another --out, or --overwrite")
            done[row["id"]] = row
    rows_by_index = {r["index"]: r for r in runs}
    try:
        results.start(list(done.values()))  # drops a last line cut short by a crash; proves OUT takes files
    except OSError as e:
        raise SweepError(f"could not write {results.path}: {e.strerror or e}") from e
    best = None
    for row in done.values():
        if _better(row, best, settings["metric"], settings["mode"]):
            best = row
    todo = [r for r in runs if r["id"] not in done]

    own_cluster = bar = stream = None
    try:
        if scheduler is not None or workers is not None:
            client, own_cluster = _connect(scheduler, workers, dashboard)
        if dashboard is not None:
            _note(_dashboard_note(client))
        cores = dask_cores(client) if client is not None else 1
        bar = _progress_bar(len(runs), len(done), progress)
        todo_chunks = chunks(todo, settings["models-per-task"], cores)
        if client is not None:
            stream = _dask_results(todo_chunks, arrays, client)
        else:
            stream = _local_results(todo_chunks, arrays)
        for finished in stream:
            for row, model in finished:
                if row["id"] in done:  # a task run twice (its worker died after it finished): count it once
                    continue
                run = rows_by_index[row["index"]]
                row.update({n: run["point"].get(n) for n in names})
                as_text = {k: _cell(v) for k, v in row.items()}
                if model is not None and _better(as_text, best, settings["metric"], settings["mode"]):
                    model.save(best_path, sweep={"id": row["id"], "seed": row["seed"], "options": run["spec"],
                                                 settings["metric"]: row[settings["metric"]]})
                    best = as_text
                results.append(row)
                done[row["id"]] = as_text
                bar.update(1)
                if best is not None:
                    bar.set_postfix_str(f"best {settings['metric']} {float(best[settings['metric']]):.4f}")
                if on_result is not None:
                    on_result(row)
    except KeyboardInterrupt:
        raise SweepInterrupted(_rows_on_disk(results, len(done)), len(runs), results.path) from None
    finally:
        with _sigint_ignored():  # a second Ctrl-C must not cut the clean-up short
            if stream is not None:
                stream.close()  # cancels the tasks still on the cluster
            if bar is not None:
                bar.close()
            if own_cluster is not None:
                _close_quietly(client, own_cluster)
    ordered = sorted(done.values(), key=lambda r: (-(_score(r, settings["metric"], settings["mode"])
                                                     if _score(r, settings["metric"], settings["mode"]) is not None
                                                     else -math.inf), int(r["index"])))
    results.start(ordered)
    return pd.read_csv(results.path, dtype={"id": str})  # an id like 123e4567 is text, not a number


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep: ``done`` of ``total`` runs are in ``results`` (OUT/results.csv),
    and a sweep with resume=True (--resume) trains the others."""

    def __init__(self, done: int, total: int, results: Path):
        super().__init__(f"sweep interrupted: {done} of {total} runs done, in {results}; resume=True (--resume) "
                         "trains the others")
        self.done, self.total, self.results = done, total, results


def _rows_on_disk(results: Results, default: int) -> int:
    """The runs in the results file, which --resume skips (a Ctrl-C can land after a row is
    written and before it is counted); ``default`` if it cannot be read."""
    try:
        return len(results.read())
    except (OSError, SweepError):
        return default


def _progress_bar(total: int, initial: int, progress: bool | None):
    """tqdm's bar on stderr; by default (progress None) only when stderr is a terminal, where
    its redrawn line is not noise in a log."""
    from tqdm.auto import tqdm

    shown = progress if progress is not None else sys.stderr.isatty()
    return tqdm(total=total, initial=initial, unit="run", desc="sweep", disable=not shown, dynamic_ncols=True)


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr, flush=True)


def dask_cores(client) -> int:
    """The threads of the cluster's workers, summed: one chunk of each group per core."""
    with _sigint_deferred():
        return max(1, sum(client.nthreads().values()))


def _dashboard_note(client) -> str:
    """The dashboard's address, or why there is none. A scheduler without a dashboard (started
    without bokeh, or with it switched off) still serves HTTP, and has a link to a missing page."""
    import urllib.error
    import urllib.request

    none = "the Dask scheduler serves no dashboard (it needs bokeh where the scheduler runs)"
    try:
        link = client.dashboard_link
    except (KeyError, AttributeError):  # no HTTP service at all
        return none
    try:
        with urllib.request.urlopen(link, timeout=DASHBOARD_CHECK_SECONDS):
            pass
    except urllib.error.HTTPError:
        return none
    except (OSError, ValueError) as error:  # a link for another network, say
        return f"Dask dashboard: {link} (it did not answer here: {getattr(error, 'reason', error)})"
    return f"Dask dashboard: {link}"


DASHBOARD_CHECK_SECONDS = 5


@contextmanager
def _sigint_deferred():
    """Ctrl-C in this block is noted, not raised (yields a function that says whether one came),
    then raised as KeyboardInterrupt at the end of the block. In the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield lambda: bool(caught)
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if caught:
        raise KeyboardInterrupt


@contextmanager
def _sigint_ignored():
    """Ctrl-C ignored in this block (only the main thread can change it; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


class _SchedulerGone(logging.Filter):
    """Drops a worker's report that its scheduler is gone, with its traceback: the sweep closes
    its own cluster's scheduler as it ends, and a worker still busy with a run can outlive it
    by a heartbeat."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to communicate with scheduler")


def dask_setup(worker) -> None:
    """Dask's preload hook: the workers of a sweep's own local cluster (and those their nannies
    start again) ignore Ctrl-C, which a terminal sends to every process of the sweep; the sweep
    itself stops them, instead of each printing a KeyboardInterrupt traceback. Nor do they
    report the scheduler's end (_SchedulerGone)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("distributed.worker").addFilter(_SchedulerGone())


def _connect(scheduler: str | None, workers: int | None, dashboard: str | None = None):
    """A Client of the cluster at ``scheduler``, or of a new local cluster of ``workers``
    single-threaded processes (with its dashboard at ``dashboard``, else none); (client, the
    cluster to close or None)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SweepError("running a sweep on Dask needs the dask extra: pip install 'fastnn[dask]'")
    if scheduler is not None:
        return Client(scheduler), None
    if not isinstance(workers, int) or workers < 1:
        raise SweepError(f"workers must be an integer >= 1, got {workers!r}")
    if dashboard is not None:
        import importlib.util

        if importlib.util.find_spec("bokeh") is None:
            raise SweepError("the Dask dashboard needs bokeh: pip install 'bokeh>=3.1'")
    # A Ctrl-C that cuts one of Dask's blocking calls short leaves the client or the cluster
    # broken (its close then fails too), so here it is held until the cluster is up or closed.
    cluster = client = None
    try:
        with _sigint_deferred() as interrupted, warnings.catch_warnings():
            # the port taken instead of a busy one is in the note that shows the dashboard's address
            warnings.filterwarnings("ignore", message="Port .* is already in use")
            # Without a dashboard, the scheduler still serves HTTP, by default on the dashboard's port 8787.
            cluster = LocalCluster(n_workers=0, threads_per_worker=1, processes=True, dashboard_address=dashboard,
                                   scheduler_kwargs={"dashboard_address": dashboard or ":0"},
                                   preload=["fastnn.sweeps"], silence_logs=logging.ERROR)
            if not interrupted():
                _spawn_workers(cluster, workers)
            if not interrupted():
                client = Client(cluster)
                _wait_for_workers(client, cluster, workers, interrupted)
    except BaseException:  # Ctrl-C too
        if cluster is not None:
            _close_quietly(client, cluster)
        raise
    return client, cluster


WORKER_START_SECONDS = 120


def _spawn_workers(cluster, workers: int) -> None:
    """Ask ``cluster`` for ``workers`` worker processes, with Ctrl-C ignored until they exist:
    processes started then ignore it too (the setting survives exec), so that Ctrl-C, which a
    terminal sends to every process of the sweep, is for the sweep alone to handle. (The
    preload, dask_setup, does the same for workers started again later.)"""
    import multiprocessing

    with _sigint_ignored():
        before = len(multiprocessing.active_children())
        cluster.scale(workers)
        deadline = time.monotonic() + WORKER_START_SECONDS
        while len(multiprocessing.active_children()) < before + workers and time.monotonic() < deadline:
            time.sleep(0.002)


def _wait_for_workers(client, cluster, workers: int, interrupted: Callable[[], bool]) -> None:
    """Return once ``workers`` workers are up, or at once after a Ctrl-C (``interrupted``);
    SweepError if they fail to start."""
    from distributed.core import Status

    deadline = time.monotonic() + WORKER_START_SECONDS
    while not interrupted():
        if any(worker.status in (Status.failed, Status.closed) for worker in list(cluster.workers.values())):
            raise SweepError("the workers of the local Dask cluster did not start (Dask's messages above say why)")
        try:
            client.wait_for_workers(workers, timeout=0.25)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise SweepError(f"the local Dask cluster's {workers} workers did not start in "
                                 f"{WORKER_START_SECONDS} s") from None


DASK_LOGGERS = ("distributed", "tornado", "asyncio")
# A worker training a run (after a Ctrl-C, or an error) does not stop when asked: its nanny waits
# 4 s by default before it kills it. The sweep's own workers hold nothing worth that wait.
WORKER_STOP_SECONDS = 0.5


def _stop_workers(cluster) -> None:
    """Stop the worker processes of the sweep's own cluster, killing those still busy after
    WORKER_STOP_SECONDS. Closing their nannies, not just the workers: a nanny starts a killed
    worker again."""
    import asyncio

    async def stop_all():
        nannies = list(cluster.workers.values())
        await asyncio.gather(*(nanny.close(timeout=WORKER_STOP_SECONDS) for nanny in nannies),
                             return_exceptions=True)

    cluster.sync(stop_all)


def _close_quietly(client, cluster) -> None:
    """Close the client (if any) and the sweep's own cluster with Ctrl-C ignored (a second one must not
    break the shutdown) and Dask's loggers off: stopping workers that were busy is expected
    here, and its warnings and tracebacks are noise after a Ctrl-C."""
    loggers = {logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name.split(".")[0] in DASK_LOGGERS} | {logging.getLogger(name) for name in DASK_LOGGERS}
    were = {logger: logger.disabled for logger in loggers}
    with _sigint_ignored():
        try:
            for logger in loggers:
                logger.disabled = True
            steps = [client.close] if client is not None else []
            for step in (*steps, lambda: _stop_workers(cluster), cluster.close):
                with suppress(Exception):  # each step, even if a Dask call cut short broke another
                    step()
        finally:
            for logger, disabled in were.items():
                logger.disabled = disabled


# -- the command -----------------------------------------------------------------------------------

def add_sweep_command(subparsers) -> argparse.ArgumentParser:
    """Add `sweep` to the `fastnn` command's subparsers; it runs run_sweep_command."""
    p = subparsers.add_parser(
        "sweep", help="grid or random search over options and seeds, here or on a Dask cluster",
        description="Train one run per point of a grid or random search and per seed, as described by "
                    "CONFIG.toml (see 'python -c \"import fastnn.sweeps; help(fastnn.sweeps)\"'); write "
                    "OUT/results.csv (one row per run, sorted by the metric at the end) and the best "
                    "model to OUT/best.npz.")
    add_sweep_arguments(p)
    p.set_defaults(run=run_sweep_command)
    return p


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, metavar="CONFIG.toml", help="the sweep's config file")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="results folder (default: [sweep] out, else CONFIG-sweep beside the config)")
    p.add_argument("--data", type=Path, metavar="PATH", help="an MNIST IDX folder or a CSV (overrides [sweep] data)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the sweep whose results are in DIR: skip the runs already there")
    again.add_argument("--overwrite", action="store_true", help="start again, replacing the results in DIR")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on the Dask cluster of this scheduler, e.g. tcp://10.0.0.5:8786 (needs the dask extra)")
    where.add_argument("--workers", type=int, metavar="N",
                       help="run on a local Dask cluster of N single-threaded processes (needs the dask extra)")
    p.add_argument("--dashboard", nargs="?", const=":8787", metavar="ADDRESS",
                   help="with --workers, serve the Dask dashboard (at ADDRESS, default :8787; :0 picks a free "
                        "port; needs bokeh); with --scheduler, show its address")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (drawn only on a terminal anyway)")


def run_sweep_command(args: argparse.Namespace) -> int:
    """`fastnn sweep`: run the sweep, print the best runs."""
    raw, _ = load_config(args.config)
    if args.data is not None:
        raw = {**raw, "sweep": {**raw.get("sweep", {}), "data": str(args.data)}}
    out = args.out
    if out is None and "out" not in {_name(k) for k in raw.get("sweep", {})}:
        out = args.config.with_name(args.config.stem + "-sweep")
    settings = sweep_settings(raw)
    folder = Path(out if out is not None else settings["out"])
    try:
        table = sweep(raw, out=out, resume=args.resume, overwrite=args.overwrite, scheduler=args.scheduler,
                      workers=args.workers, dashboard=args.dashboard, progress=False if args.quiet else None)
    except SweepInterrupted as stop:
        print(f"interrupted: {stop.done} of {stop.total} runs done, in {stop.results}; resume with: "
              f"{resume_command(args, folder)}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # before the first run started: reading the data, say
        print(f"interrupted; resume with: {resume_command(args, folder)}", file=sys.stderr)
        return 130
    shown = [c for c in table.columns if c not in ("worker", "status") and not table[c].isna().all()]
    print(table[shown].head(10).to_string(index=False))
    print(f"{len(table)} runs; results: {folder / 'results.csv'}; best model ({settings['metric']}): "
          f"{folder / 'best.npz'}")
    return 0


def resume_command(args: argparse.Namespace, folder: Path) -> str:
    """The command that continues an interrupted `fastnn sweep`: the same config, data and
    cluster, the same results folder, and --resume."""
    words = ["fastnn", "sweep", str(args.config)]
    if args.data is not None:
        words += ["--data", str(args.data)]
    words += ["--out", str(folder), "--resume"]
    if args.workers is not None:
        words += ["--workers", str(args.workers)]
    if args.scheduler is not None:
        words += ["--scheduler", args.scheduler]
    return " ".join(shlex.quote(w) for w in words)
