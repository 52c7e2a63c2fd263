"""fastnn.sweep: plans, results file, resume, the command, and Dask (a real LocalCluster of two
worker processes: same results as a local run; a worker killed mid-sweep loses no run and
duplicates none)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def one_group():
    """Six runs of one shape and optimizer: one fit_many group, smaller than models-per-task."""
    return {**config(**{"models-per-task": 8, "seeds": 3}), "grid": {"lr": [0.05, 0.2]}}


def test_chunks_split_one_group_over_the_cores():
    runs = plan(one_group())[0]
    for r in runs:
        r["id"] = str(r["index"])

    def sizes(per_task, cores):
        return [len(c) for c in fastnn.sweeps.chunks(runs, per_task, cores)]

    assert sizes(8, 1) == [6]  # local: one fit_many call
    assert sizes(8, 2) == [3, 3] and sizes(8, 4) == [2, 2, 1, 1] and sizes(8, 10) == [1] * 6
    assert sizes(2, 1) == [2, 2, 2] and sizes(4, 1) == [3, 3] and sizes(2, 4) == [2, 2, 1, 1]
    assert [r["index"] for c in fastnn.sweeps.chunks(runs, 8, 4) for r in c] == list(range(6))  # plan order
    two = plan(config())[0]  # two groups (relu, tanh) of four: each split over the cores
    for r in two:
        r["id"] = str(r["index"])
    assert [[r["point"]["activation"] for r in c] for c in fastnn.sweeps.chunks(two, 8, 2)] == \
        [["relu"] * 2, ["relu"] * 2, ["tanh"] * 2, ["tanh"] * 2]


def test_dask_results_equal_local(tmp_path, client):
    """One fit_many group is split over both workers (one chunk per core); the numbers are the
    local run's, and the worker column says who trained each run."""
    local = sweep(one_group(), data=DATA, out=tmp_path / "local", progress=False)
    remote = sweep(one_group(), data=DATA, out=tmp_path / "dask", client=client, progress=False)
    pd.testing.assert_frame_equal(metrics(remote), metrics(local))
    assert (local["worker"] == "local").all()
    assert remote.groupby("worker").size().to_dict() == {address: 3 for address in client.nthreads()}
    np.testing.assert_array_equal(fastnn.MLP.load(tmp_path / "dask" / "best.npz").get_params(),
                                  fastnn.MLP.load(tmp_path / "local" / "best.npz").get_params())
    # two groups, cut in chunks of two: still the local numbers
    local = sweep(config(), data=DATA, out=tmp_path / "local2", progress=False)
    remote = sweep(config(), data=DATA, out=tmp_path / "dask2", client=client, progress=False)
    pd.testing.assert_frame_equal(metrics(remote), metrics(local))
    assert set(remote["worker"]) == set(client.nthreads())


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

        def scatter(self, data, broadcast, hash, timeout):
            self.calls.append((broadcast, hash, timeout))
            if len(self.calls) <= self.hangs:
                raise TimeoutError("scatter")
            return [f"future of {value}" for value in data]

    once = Client(hangs=1)
    assert sweeps._scatter_to_all(once, {"X": 1, "X_val": None, "y": 2}) == \
        {"X": "future of 1", "X_val": None, "y": "future of 2"}
    assert once.calls == [(True, False, sweeps.SCATTER_TIMEOUT_SECONDS)] * 2  # keys of its own, not "X"
    always = Client(hangs=sweeps.SCATTER_TRIES)
    with pytest.raises(sweeps.SweepError, match="did not finish in 2 tries"):
        sweeps._scatter_to_all(always, {"X": 1})


# -- Ctrl-C, the dashboard, the progress bar ---------------------------------------------------------

def digits_csv(path, n=300, width=8):
    """A small Kaggle-layout CSV (label, pixel0, ...) for `fastnn sweep --data`."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(n, width))
    y = (X[:, 0] > X[:, 1]).astype(int)
    lines = ["label," + ",".join(f"pixel{i}" for i in range(width))]
    lines += [f"{label}," + ",".join(map(str, row)) for label, row in zip(y, X)]
    path.write_text("\n".join(lines) + "\n")
    return path


def long_sweep_toml(path, long_epochs):
    """Two quick runs (one epoch), then two of ``long_epochs``: Ctrl-C lands while those train."""
    path.write_text('[sweep]\nvalidation = 0.25\nseeds = 2\n\n[train]\nlayers = [8, 8, 2]\nbatch-size = 16\n\n'
                    f'[grid]\nepochs = [1, {long_epochs}]\n')
    return path


def live_processes(group: int) -> list[str]:
    """The processes of a process group that have not exited (zombies not counted)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):
            continue
        if int(pgrp) == group and state != "Z":
            alive.append(stat.parent.name)
    return alive


def interrupt_after_first_row(command, results, cwd, on_first_line=None):
    """Run `fastnn sweep` in its own process group, as a terminal would; once the first row is in
    ``results``, send SIGINT to the whole group (Ctrl-C). With ``on_first_line``, the first line
    on stderr is read (and given to it) first. (exit status, stderr, the group's id)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                               start_new_session=True)
    first = ""
    try:
        if on_first_line is not None:
            first = process.stderr.readline()
            on_first_line(first)
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if results.exists() and len(results.read_text().splitlines()) >= 2:
                break
            time.sleep(0.02)
        assert process.poll() is None, process.communicate()  # still training: the long runs
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    return process.returncode, first + err, process.pid


def assert_group_ends(group: int) -> None:
    """Every process of the group ends soon after the sweep: no worker left behind."""
    deadline = time.monotonic() + 15
    while live_processes(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_processes(group) == []


def spawned_workers(parent: int) -> int:
    """Dask worker processes that ``parent`` has started (multiprocessing's spawn), ready or not."""
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        count += ppid == parent and b"spawn_main" in command
    return count


def without_notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith("note: ")]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process groups from /proc")
def test_ctrl_c_on_a_dask_sweep_is_one_line_with_the_resume_hint(tmp_path):
    """Ctrl-C reaches the sweep and its workers (a terminal signals the whole group): one line,
    no traceback from Dask, tornado or the workers, and no process left. With bokeh, --dashboard
    serves the dashboard and prints its address; the bar is not drawn on a pipe."""
    import importlib.util
    import urllib.request

    pytest.importorskip("distributed")
    toml = long_sweep_toml(tmp_path / "long.toml", long_epochs=10 ** 7)  # never ends: Ctrl-C does
    data = digits_csv(tmp_path / "digits.csv")
    dashboard = importlib.util.find_spec("bokeh") is not None
    command = [sys.executable, "-m", "fastnn.cli", "sweep", "long.toml", "--data", "digits.csv", "--out", "runs",
               "--workers", "2", *(["--dashboard", ":0"] if dashboard else [])]
    pages = []

    def open_dashboard(note):
        assert note.startswith("note: Dask dashboard: http://127.0.0.1:") and note.endswith("/status\n"), note
        with urllib.request.urlopen(note.split("dashboard: ")[1].strip(), timeout=30) as page:
            pages.append((page.status, b"<title>Dask Diagnostic UI</title>" in page.read()))

    status, stderr, group = interrupt_after_first_row(command, tmp_path / "runs" / "results.csv", tmp_path,
                                                      on_first_line=open_dashboard if dashboard else None)
    assert data.exists() and toml.exists()
    rows = pd.read_csv(tmp_path / "runs" / "results.csv")
    assert status == 130, stderr
    assert without_notes(stderr) == [f"interrupted: {len(rows)} of 4 runs done, in runs/results.csv; resume with: "
                                     "fastnn sweep long.toml --data digits.csv --out runs --resume --workers 2"]
    assert 1 <= len(rows) < 4 and set(rows["epochs_run"]) <= {1, 10 ** 7}
    assert_group_ends(group)
    assert pages == ([(200, True)] if dashboard else [])  # served while the sweep ran


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_ctrl_c_while_the_dask_workers_start_is_not_lost(tmp_path):
    """Ctrl-C right after the worker processes are spawned, before they are ready (they ignore
    it from birth; the sweep holds it until the cluster can be closed): the same one line."""
    pytest.importorskip("distributed")
    long_sweep_toml(tmp_path / "long.toml", long_epochs=10 ** 7)
    digits_csv(tmp_path / "digits.csv")
    command = [sys.executable, "-m", "fastnn.cli", "sweep", "long.toml", "--data", "digits.csv", "--out", "runs",
               "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while spawned_workers(process.pid) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.1)  # Ctrl-C is ignored until the sweep has seen them started: a few milliseconds
        assert (tmp_path / "runs" / "results.csv").read_text().count("\n") == 1  # the header: no run yet
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 130, stderr
    assert stderr.splitlines() == ["interrupted: 0 of 4 runs done, in runs/results.csv; resume with: fastnn sweep "
                                   "long.toml --data digits.csv --out runs --resume --workers 2"]
    assert_group_ends(process.pid)


def ignores_ctrl_c():
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_the_workers_of_a_sweeps_own_cluster_ignore_ctrl_c_after_a_restart_too():
    """Started while the sweep ignores Ctrl-C, they inherit that; one started again by its nanny
    (after the sweep restored its handler) ignores it through the preload, fastnn.sweeps.dask_setup."""
    pytest.importorskip("distributed")
    client, cluster = fastnn.sweeps._connect(None, 1)
    try:
        assert list(client.run(ignores_ctrl_c).values()) == [True]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the sweep's own is back
        first = client.run(os.getpid)
        os.kill(next(iter(first.values())), signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.2)
            again = client.run(os.getpid) if client.nthreads() else {}
            if again and set(again.values()) != set(first.values()):
                break
        assert again and set(again.values()) != set(first.values())  # restarted
        assert list(client.run(ignores_ctrl_c).values()) == [True]
    finally:
        fastnn.sweeps._close_quietly(client, cluster)


def test_dashboard_needs_a_cluster_and_bokeh(tmp_path, monkeypatch):
    import importlib.util

    with pytest.raises(SweepError, match="needs a Dask cluster"):
        sweep(config(), data=DATA, out=tmp_path / "a", dashboard=":0", progress=False)
    pytest.importorskip("distributed")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bokeh" else object())
    with pytest.raises(SweepError, match=r"^the Dask dashboard needs bokeh: pip install 'bokeh>=3.1'$"):
        fastnn.sweeps._connect(None, 2, ":0")


def test_the_dashboard_note_says_when_a_scheduler_serves_none():
    """A scheduler without a dashboard still has a dashboard link (to its plain HTTP server)."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/status" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    class Client:
        def __init__(self, link):
            self.link = link

        @property
        def dashboard_link(self):
            if self.link is None:
                raise KeyError("dashboard")  # no HTTP service at all
            return self.link

    server = HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site = f"http://127.0.0.1:{server.server_port}"
    none = "the Dask scheduler serves no dashboard (it needs bokeh where the scheduler runs)"
    try:
        assert fastnn.sweeps._dashboard_note(Client(f"{site}/status")) == f"Dask dashboard: {site}/status"
        assert fastnn.sweeps._dashboard_note(Client(f"{site}/missing")) == none
        assert fastnn.sweeps._dashboard_note(Client(None)) == none
    finally:
        server.shutdown()
        server.server_close()


def test_ctrl_c_on_a_local_sweep_names_resume_and_resume_finishes(tmp_path):
    long_sweep_toml(tmp_path / "long.toml", long_epochs=3000)
    digits_csv(tmp_path / "digits.csv")
    command = [sys.executable, "-m", "fastnn.cli", "sweep", "long.toml", "--data", "digits.csv"]
    status, stderr, _ = interrupt_after_first_row(command, tmp_path / "long-sweep" / "results.csv", tmp_path)
    assert status == 130, stderr
    rows = pd.read_csv(tmp_path / "long-sweep" / "results.csv")
    assert len(rows) in (1, 2) and set(rows["epochs_run"]) == {1}  # the quick runs; Ctrl-C stopped a long one
    assert stderr.splitlines() == [f"interrupted: {len(rows)} of 4 runs done, in long-sweep/results.csv; resume "
                                   "with: fastnn sweep long.toml --data digits.csv --out long-sweep --resume"]
    resume = stderr.split("resume with: ")[1].split()
    assert resume[:2] == ["fastnn", "sweep"]
    done = subprocess.run([sys.executable, "-m", "fastnn.cli", *resume[1:]], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr  # no bar: stderr is a pipe
    table = pd.read_csv(tmp_path / "long-sweep" / "results.csv")
    assert sorted(table["index"]) == [0, 1, 2, 3] and sorted(table["epochs_run"]) == [1, 1, 3000, 3000]


def test_the_bar_shows_on_a_terminal_only(monkeypatch):
    class Stderr(io.StringIO):
        def __init__(self, terminal):
            super().__init__()
            self.terminal = terminal

        def isatty(self):
            return self.terminal

    for terminal, progress, shown in [(True, None, True), (False, None, False), (False, True, True),
                                      (True, False, False)]:
        monkeypatch.setattr(sys, "stderr", Stderr(terminal))
        bar = fastnn.sweeps._progress_bar(4, 1, progress)
        assert bar.disable is not shown
        bar.update(1)
        bar.close()
        assert ("2/4" in sys.stderr.getvalue()) is shown, (terminal, progress, sys.stderr.getvalue())


def test_sweep_workers_do_not_report_their_schedulers_end():
    """A worker that outlives the scheduler by a heartbeat (the sweep closes its own cluster as
    it ends) logs that it cannot reach it: noise after a Ctrl-C, which the sweep's workers drop.
    Their other errors still show."""
    import logging
    import signal

    from fastnn.sweeps import dask_setup

    logger = logging.getLogger("distributed.worker")
    before, on_sigint = list(logger.filters), signal.getsignal(signal.SIGINT)
    try:
        dask_setup(None)
        gone = logger.makeRecord(logger.name, logging.ERROR, __file__, 1,
                                 "Failed to communicate with scheduler during heartbeat.", (), None)
        other = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, "Compute Failed", (), None)
        assert not logger.filter(gone) and logger.filter(other)
    finally:
        logger.filters[:] = before
        signal.signal(signal.SIGINT, on_sigint)  # dask_setup ignores Ctrl-C, as a worker must
