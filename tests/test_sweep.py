"""fastnn.sweep: plans, results file, resume, the command, and Dask (a real LocalCluster of two
worker processes: same results as a local run; a worker killed mid-sweep loses no run and
duplicates none)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import fastnn
import fastnn.sweeps
from fastnn.data.examples import validation_rows
from fastnn.sweeps import METRICS, SweepError, plan, sweep


def synthetic(n=600, d=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + 200, d)).astype(np.float32)
    y = (np.argmax(X[:, :3] + 0.3 * X[:, 3:6], axis=1)).astype(np.int64)
    return X[:n], y[:n], X[n:], y[n:]


DATA = synthetic()


def config(**sweep_settings):
    return {"sweep": {"validation": 0.25, "seeds": 2, "models-per-task": 2, **sweep_settings},
            "train": {"layers": [12, 8, 3], "epochs": 3, "init": "he", "batch-size": 32},
            "grid": {"lr": [0.05, 0.2], "activation": ["relu", "tanh"]}}


def metrics(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index("id").sort_index()[["index", "seed", "status", "epochs_run", *METRICS]]


def test_plan_grid_random_and_errors():
    runs, names, settings = plan(config())
    assert len(runs) == 2 * 2 * 2 and names == ["lr", "activation"] and settings["mode"] == "max"
    assert {(r["point"]["lr"], r["point"]["activation"], r["seed"]) for r in runs} == \
        {(lr, a, s) for lr in (0.05, 0.2) for a in ("relu", "tanh") for s in (0, 1)}
    assert all(r["spec"]["epochs"] == 3 and r["spec"]["layers"] == [12, 8, 3] for r in runs)
    random = {"sweep": {"runs": 5, "seeds": [4]}, "train": {"layers": [12, 8, 3]},
              "random": {"lr": {"log-uniform": [1e-3, 1e-1]}, "batch_size": [16, 32], "dropout": {"uniform": [0, 0.5]}}}
    first, again = plan(random)[0], plan(random)[0]
    assert [r["point"] for r in first] == [r["point"] for r in again]  # drawn from search-seed
    assert all(1e-3 <= r["point"]["lr"] <= 1e-1 and r["point"]["batch-size"] in (16, 32) for r in first)
    for bad, message in [({"grid": {"lr": [0.1]}, "random": {"lr": [0.1]}}, "not both"),
                         ({"grid": {"lrr": [0.1]}}, "unknown option"),
                         ({"grid": {"seed": [1, 2]}}, "seeds"),
                         ({"grid": {"lr": [-1.0]}}, "lr"),
                         ({"train": {"optimizer": "adam", "momentum": 0.9}}, "momentum"),
                         ({"sweep": {"metric": "speed"}}, "metric"),
                         ({"sweep": {"frobnicate": 1}}, "unknown"),
                         ({"random": {"lr": {"normal": [0, 1]}}}, "log-uniform")]:
        with pytest.raises(SweepError, match=message):
            plan(bad)


def test_local_sweep_results_best_model_and_grouping(tmp_path):
    table = sweep(config(), data=DATA, out=tmp_path / "a", progress=False)
    assert len(table) == 8 and (table["status"] == "ok").all()
    assert list(table["val_accuracy"]) == sorted(table["val_accuracy"], reverse=True)  # best first
    on_disk = pd.read_csv(tmp_path / "a" / "results.csv")
    pd.testing.assert_frame_equal(on_disk, table)
    best = fastnn.MLP.load(tmp_path / "a" / "best.npz")
    assert best.metadata["sweep"]["id"] == table["id"][0]
    X, y, _, _ = DATA
    assert best.metadata["sweep"]["val_accuracy"] == table["val_accuracy"][0]
    # One run at a time instead of fit_many over pairs: the same numbers, bit for bit.
    alone = sweep(config(**{"models-per-task": 1}), data=DATA, out=tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(metrics(alone), metrics(table))
    # ... and as a plain fit of the same model
    row = table.iloc[0]
    run = next(r for r in plan(config())[0] if r["index"] == row["index"])
    model = fastnn.MLP([12, 8, 3], activation=run["spec"]["activation"], init="he", seed=int(row["seed"]))
    kept, _ = validation_rows(len(y), 150 / len(y), seed=0)  # the sweep's split: 150 held out, split-seed 0
    X_fit, y_fit = X[kept], y[kept]
    history = model.fit(X_fit, y_fit, epochs=3, batch_size=32, lr=run["spec"]["lr"])
    assert history.loss[-1] == row["train_loss"]


def test_resume_skips_finished_runs(tmp_path):
    out = tmp_path / "s"
    seen = []

    def interrupt_after_three(row):
        seen.append(row["id"])
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(config(**{"models-per-task": 1}), data=DATA, out=out, progress=False, on_result=interrupt_after_three)
    assert len(pd.read_csv(out / "results.csv")) == 3
    with pytest.raises(SweepError, match="--resume"):
        sweep(config(), data=DATA, out=out, progress=False)
    with open(out / "results.csv", "a") as f:
        f.write("deadbeef,7,1,0.2")  # a row cut short by a crash: dropped, that run trains again
    again = []
    table = sweep(config(), data=DATA, out=out, resume=True, progress=False, on_result=lambda r: again.append(r["id"]))
    assert len(again) == 5 and not set(again) & set(seen)
    assert len(table) == 8 and table["id"].is_unique
    fresh = sweep(config(), data=DATA, out=tmp_path / "fresh", progress=False)
    pd.testing.assert_frame_equal(metrics(table), metrics(fresh))
    with pytest.raises(SweepError, match="not in this sweep"):
        sweep({**config(), "grid": {"lr": [0.3], "activation": ["relu"]}}, data=DATA, out=out, resume=True, progress=False)


def test_callable_module():
    assert fastnn.sweep is sweep


def test_command_on_mnist_subset(tmp_path, shared_data):
    toml = tmp_path / "mnist.toml"
    toml.write_text(f'[sweep]\ndata = "{shared_data / "mnist"}"\nlimit = 2000\nseeds = [0]\n'
                    'metric = "val_accuracy"\n\n[train]\nlayers = [784, 16, 10]\ninit = "he"\nepochs = 2\n\n'
                    '[grid]\nlr = [0.05, 0.1]\n')
    command = [sys.executable, "-m", "fastnn.cli", "sweep", str(toml), "-q"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "mnist-sweep" / "results.csv")
    assert len(table) == 2 and table["val_accuracy"].iloc[0] >= table["val_accuracy"].iloc[1] > 0.5
    assert "best model" in done.stdout and (tmp_path / "mnist-sweep" / "best.npz").exists()
    again = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert again.returncode == 1 and "--resume" in again.stderr and "Traceback" not in again.stderr
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "mnist-sweep" / "results.csv"), table)


# -- Dask ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    import logging

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.CRITICAL)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_dask_results_equal_local(tmp_path, client):
    local = sweep(config(), data=DATA, out=tmp_path / "local", progress=False)
    remote = sweep(config(), data=DATA, out=tmp_path / "dask", client=client, progress=False)
    pd.testing.assert_frame_equal(metrics(remote), metrics(local))
    assert len(set(remote["worker"])) == 2  # both workers trained runs
    np.testing.assert_array_equal(fastnn.MLP.load(tmp_path / "dask" / "best.npz").get_params(),
                                  fastnn.MLP.load(tmp_path / "local" / "best.npz").get_params())


def test_dask_worker_killed_mid_sweep(tmp_path, client):
    """Kill a worker process while it trains a run: Dask runs its tasks elsewhere, and every run
    ends in the results exactly once, with the numbers of a local run."""
    cfg = config(**{"models-per-task": 1})
    cfg["grid"]["lr"] = [0.02, 0.05, 0.1, 0.2]
    cfg["train"]["epochs"] = 40
    killed = []

    def kill_a_busy_worker(row):
        if killed:
            return
        pids = client.run(os.getpid)
        busy = [address for address, keys in client.processing().items() if keys and address in pids]
        victim = busy[0] if busy else next(iter(pids))
        killed.append((victim, pids[victim], bool(busy)))
        os.kill(pids[victim], signal.SIGKILL)

    remote = sweep(cfg, data=DATA, out=tmp_path / "dask", client=client, progress=False, on_result=kill_a_busy_worker)
    assert killed and killed[0][2], killed  # a worker killed while it trained
    assert len(remote) == 16 and remote["id"].is_unique and (remote["status"] == "ok").all()
    rows = pd.read_csv(tmp_path / "dask" / "results.csv")
    assert sorted(rows["index"]) == list(range(16))
    deadline = time.time() + 60  # the nanny restarts the worker; leave the cluster as it was
    while len(client.scheduler_info()["workers"]) < 2 and time.time() < deadline:
        time.sleep(0.5)
    local = sweep(cfg, data=DATA, out=tmp_path / "local", progress=False)
    pd.testing.assert_frame_equal(metrics(remote), metrics(local))


def test_scattering_the_data_is_tried_again_when_it_hangs(monkeypatch):
    """A scatter to every worker that does not return in time (dask/distributed#4907) is tried
    once more, then ends in a clear error rather than a hang."""
    from fastnn import sweeps

    class Client:
        def __init__(self, hangs):
            self.hangs, self.calls = hangs, []

        def scatter(self, data, broadcast, timeout):
            self.calls.append((broadcast, timeout))
            if len(self.calls) <= self.hangs:
                raise TimeoutError("scatter")
            return {"X": "future"}

    once = Client(hangs=1)
    assert sweeps._scatter_to_all(once, {"X": 1}) == {"X": "future"}
    assert once.calls == [(True, sweeps.SCATTER_TIMEOUT_SECONDS)] * 2
    always = Client(hangs=sweeps.SCATTER_TRIES)
    with pytest.raises(sweeps.SweepError, match="did not finish in 2 tries"):
        sweeps._scatter_to_all(always, {"X": 1})
