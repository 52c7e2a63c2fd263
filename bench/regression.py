"""Training-speed regression check between two commits of fastnn, by paired runs (as bench.ab).

    python -m bench.regression                  # HEAD~1 against HEAD, as CI (.ci/run) runs it
    python -m bench.regression main HEAD        # any two revisions
    python -m bench.regression HEAD .           # the working tree (a folder) against its commit

Each revision is exported with ``git archive`` into .asv/commits/<commit>/ (kept, with its own
Numba cache, so a second check of the same commit compiles nothing); a folder holding fastnn/ is
used in place. One warm process per side imports fastnn from its tree and runs the JIT kernels
(FASTNN_NATIVE=0: a commit's native library would take minutes to build). The two take turns,
in alternating order: each round, both train every shape for two epochs on MNIST, one thread,
and each epoch of HEAD is paired with the same epoch of BASE. On this machine epoch times drift
by a third between runs while a pair's ratio stays within a few percent.

A shape regressed when the median of its paired ratios HEAD/BASE exceeds --threshold (1.25) AND
the lower end of the median's 95% interval (distribution-free, from the order statistics) lies
above --floor (1.10): a slowdown both large and clear of the noise. Exit status 1 if a shape
regressed (or on an error), else 0; also 0, with a message, when BASE is not in a shallow clone,
when fastnn/ is the same in both commits, or when BASE cannot train while HEAD can (a broken
commit: HEAD's own tests judge HEAD).
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
#: Where exported commits and their Numba caches are kept (.asv/ is not tracked).
EXPORTS = ".asv/commits"
#: Exported commits kept; older ones are removed.
KEEP_EXPORTS = 6
SKIPPED, PASSED, REGRESSED = 0, 0, 1  # exit statuses
SIDES = ("BASE", "HEAD")


@dataclass(frozen=True)
class Shape:
    """One network and optimizer that each round trains for two epochs (batch 64, one thread)."""

    sizes: tuple[int, ...]
    optimizer: str  # "sgd" (lr 0.1) or "adam" (lr 0.001)

    @property
    def name(self) -> str:
        return f"{'-'.join(map(str, self.sizes))} {self.optimizer}"


#: The tutorial's network, a wider one under Adam (its update of every weight), a deep one (the
#: hidden-to-hidden products).
SHAPES = (Shape((784, 10, 10), "sgd"), Shape((784, 128, 10), "adam"), Shape((784, 256, 128, 10), "sgd"))
EPOCHS_PER_ROUND = 2


@dataclass(frozen=True)
class Verdict:
    """The paired comparison of one shape."""

    shape: str
    pairs: int
    base_seconds: float  # median seconds per epoch
    head_seconds: float
    ratio: float  # median of the paired ratios HEAD/BASE
    low: float  # the median's confidence interval
    high: float
    regressed: bool


# -- decision ---------------------------------------------------------------------------------

def paired_ratios(base: Sequence[float], head: Sequence[float]) -> np.ndarray:
    """HEAD/BASE of each pair of epochs (the i-th epoch of each side's list)."""
    base, head = np.asarray(base, dtype=float), np.asarray(head, dtype=float)
    if base.shape != head.shape or base.ndim != 1 or base.size == 0:
        raise ValueError(f"paired timings must be two lists of one length, got {base.shape} and {head.shape}")
    if not (np.isfinite(base).all() and np.isfinite(head).all() and (base > 0).all() and (head > 0).all()):
        raise ValueError("timings must be positive and finite")
    return head / base


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median: the order statistics x(k) and x(n+1-k), with
    the largest k such that P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2 (it covers the
    median with at least that confidence whatever the distribution). With too few values for
    that (n < 6 at 95%), the smallest and largest."""
    x = np.sort(np.asarray(values, dtype=float))
    n = x.size
    if n == 0:
        raise ValueError("no values")
    tail = (1 - confidence) / 2
    k, below = 0, 0.0  # below: P(Binomial(n, 1/2) < k + 1)
    while k < n // 2:
        below += math.comb(n, k) / 2**n
        if below > tail:
            break
        k += 1
    k = max(k, 1)
    return float(x[k - 1]), float(x[n - k])


def judge(shape: str, base: Sequence[float], head: Sequence[float], threshold: float = 1.25,
          floor: float = 1.10, confidence: float = 0.95) -> Verdict:
    """The verdict on one shape's paired epoch times: regressed when the median ratio HEAD/BASE
    exceeds ``threshold`` and the lower end of its interval exceeds ``floor``."""
    ratios = paired_ratios(base, head)
    low, high = median_interval(ratios, confidence)
    ratio = float(np.median(ratios))
    return Verdict(shape, ratios.size, float(np.median(base)), float(np.median(head)), ratio, low, high,
                   regressed=ratio > threshold and low > floor)


def report(verdicts: Sequence[Verdict], threshold: float, floor: float) -> str:
    """The table of verdicts, and the rule."""
    lines = [(f"{'shape':<22} {'pairs':>5} {'BASE s/epoch':>12} {'HEAD s/epoch':>12} {'HEAD/BASE':>9}  "
              f"{'95% interval':<14} verdict")]
    for v in verdicts:
        lines.append(f"{v.shape:<22} {v.pairs:>5} {v.base_seconds:>12.4f} {v.head_seconds:>12.4f} {v.ratio:>9.3f}  "
                     f"{f'[{v.low:.3f}, {v.high:.3f}]':<14} {'SLOWER' if v.regressed else 'ok'}")
    lines.append(f"(SLOWER: median HEAD/BASE above {threshold:g} and its interval above {floor:g})")
    return "\n".join(lines)


# -- the two trees ----------------------------------------------------------------------------

def git(repo: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


def resolve(repo: pathlib.Path, revision: str) -> str | None:
    """The commit a revision names, or None if this clone does not have it."""
    result = git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    return result.stdout.strip() if result.returncode == 0 else None


def is_shallow(repo: pathlib.Path) -> bool:
    return git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"


def same_package(repo: pathlib.Path, base: str, head: str) -> bool:
    """Whether fastnn/ is the same tree in both commits (its git tree hash)."""
    trees = [git(repo, "rev-parse", "--verify", "--quiet", f"{c}:fastnn").stdout.strip() for c in (base, head)]
    return bool(trees[0]) and trees[0] == trees[1]


def export(repo: pathlib.Path, commit: str, exports: pathlib.Path) -> pathlib.Path:
    """The commit's files under exports/<commit>/ (extracted once, then reused; the last
    KEEP_EXPORTS used are kept). git archive changes nothing in the repository."""
    dest = exports / commit
    if not (dest / "fastnn" / "__init__.py").is_file():
        exports.mkdir(parents=True, exist_ok=True)
        partial = exports / f"{commit}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        archive = subprocess.Popen(["git", "-C", str(repo), "archive", "--format=tar", commit],
                                   stdout=subprocess.PIPE)
        with tarfile.open(fileobj=archive.stdout, mode="r|") as tar:
            tar.extractall(partial, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        if archive.wait() != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise RuntimeError(f"git archive {commit} failed")
        shutil.rmtree(dest, ignore_errors=True)
        partial.rename(dest)
    now = time.time()
    os.utime(dest, (now, now))  # exact, not the file system's coarse clock: the prune below sorts by it
    for old in sorted((p for p in exports.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)[:-KEEP_EXPORTS]:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def is_checkout(revision: str) -> bool:
    """Whether a revision argument names a folder holding fastnn/ (used in place)."""
    return (pathlib.Path(revision) / "fastnn" / "__init__.py").is_file()


def tree_of(repo: pathlib.Path, revision: str) -> tuple[pathlib.Path, str] | None:
    """(folder holding fastnn/, label) of a revision or of a folder given as it is; None if the
    revision is not in this clone."""
    if is_checkout(revision):
        return pathlib.Path(revision).resolve(), f"{revision} (folder)"
    commit = resolve(repo, revision)
    if commit is None:
        return None
    return export(repo, commit, repo / EXPORTS), f"{commit[:10]} ({revision})"


# -- the worker -------------------------------------------------------------------------------

def worker(data: str) -> None:
    """In a tree's own process: warm every shape up, then, per line read (a shape's index),
    train a fresh model of it for EPOCHS_PER_ROUND epochs and print their seconds."""
    import inspect

    import fastnn

    try:
        from fastnn.data.datasets import load_mnist
    except ImportError:  # a commit from before fastnn/data/
        from fastnn.datasets import load_mnist

    mnist = load_mnist(os.path.join(data, "mnist"))
    X, y = fastnn.prepare(mnist.train_images), mnist.train_labels
    # Since MLP's pixels=False default, 0..255 images need pixels=True; earlier commits took uint8 as pixels.
    pixels = {"pixels": True} if "pixels" in inspect.signature(fastnn.MLP).parameters else {}

    def epochs(shape: Shape) -> list[float]:
        model = fastnn.MLP(list(shape.sizes), init="he", seed=0, **pixels)
        optimizer = fastnn.Adam(lr=0.001) if shape.optimizer == "adam" else fastnn.SGD(lr=0.1)
        return model.fit(X, y, epochs=EPOCHS_PER_ROUND, batch_size=64, optimizer=optimizer, threads=1).seconds

    for shape in SHAPES:
        epochs(shape)
    print("ready", os.path.abspath(fastnn.__file__), flush=True)
    for line in sys.stdin:
        print(" ".join(f"{s:.6f}" for s in epochs(SHAPES[int(line)])), flush=True)


def start_worker(tree: pathlib.Path, data: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(tree), "FASTNN_NATIVE": "0",
           "NUMBA_CACHE_DIR": str(tree / ".numba_cache" / "regression")}
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", "--data", data], cwd=tree,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


class WorkerError(RuntimeError):
    """A side's process could not train (a broken commit, or one this script cannot drive)."""

    def __init__(self, side: int, message: str):
        super().__init__(message)
        self.side = side  # 0: BASE, 1: HEAD


def wait_ready(proc: subprocess.Popen, tree: pathlib.Path, side: int) -> None:
    """Wait for a worker's warm-up; check that it imported fastnn from its own tree."""
    words = proc.stdout.readline().split()
    if not words or words[0] != "ready":
        raise WorkerError(side, f"the worker of {tree} failed to start (its error is above)")
    if not pathlib.Path(words[1]).is_relative_to(tree):
        raise WorkerError(side, f"the worker of {tree} imported fastnn from {words[1]}, not from its tree")


def timed_rounds(procs: Sequence[subprocess.Popen], rounds: int, budget: float) -> list[list[list[float]]]:
    """seconds[side][shape]: the epoch times of each side, in pairs; rounds alternate which side
    goes first, and stop early (after two at least) once ``budget`` seconds have passed."""
    seconds = [[[] for _ in SHAPES] for _ in procs]
    started = time.perf_counter()
    for r in range(rounds):
        if r >= 2 and time.perf_counter() - started > budget:
            print(f"time budget of {budget:g} s spent: {r} rounds of {rounds}", flush=True)
            break
        for i, _ in enumerate(SHAPES):
            for side in ((0, 1) if (r + i) % 2 == 0 else (1, 0)):
                seconds[side][i] += train(procs[side], side, i)
    return seconds


def train(proc: subprocess.Popen, side: int, shape: int) -> list[float]:
    """The epoch times of one shape's training by one side's worker."""
    try:
        proc.stdin.write(f"{shape}\n")
        proc.stdin.flush()
        epochs = [float(s) for s in proc.stdout.readline().split()]
    except (BrokenPipeError, ValueError):
        epochs = []
    if len(epochs) != EPOCHS_PER_ROUND:
        raise WorkerError(side, f"the worker of {SIDES[side]} stopped while training {SHAPES[shape].name} "
                                "(its error is above)")
    return epochs


def compare(trees: Sequence[pathlib.Path], data: str, rounds: int, budget: float) -> list[list[list[float]]]:
    started = time.perf_counter()
    procs = [start_worker(tree, data) for tree in trees]
    try:
        failures = []
        for side, (proc, tree) in enumerate(zip(procs, trees)):
            try:
                wait_ready(proc, tree, side)
            except WorkerError as error:
                failures.append(error)
        if failures:
            raise failures[-1]  # HEAD's failure if both failed: then the check itself is broken
        print(f"warm-up (loading MNIST, compiling or loading the kernels): {time.perf_counter() - started:.0f} s",
              flush=True)
        return timed_rounds(procs, rounds, budget)
    finally:
        for proc in procs:
            proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


# -- the command ------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", nargs="?", default="HEAD~1", help="revision (or folder) to compare against (HEAD~1)")
    parser.add_argument("head", nargs="?", default="HEAD", help="revision (or folder) under test (HEAD)")
    parser.add_argument("--rounds", type=int, default=12, help="rounds of two epochs per shape and side (12)")
    parser.add_argument("--budget", type=float, default=150.0,
                        help="seconds of timed rounds after which no new round starts (150)")
    parser.add_argument("--threshold", type=float, default=1.25, help="median slowdown that fails (1.25)")
    parser.add_argument("--floor", type=float, default=1.10,
                        help="the median's interval must lie above this to fail (1.10)")
    parser.add_argument("--repo", type=pathlib.Path, default=REPO, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.data)
        return 0
    if args.rounds < 1 or not 1 <= args.floor <= args.threshold:
        parser.error("--rounds must be at least 1 and 1 <= --floor <= --threshold")
    repo = args.repo.resolve()
    shallow = is_shallow(repo)
    commits = {name: resolve(repo, name) for name in (args.base, args.head) if not is_checkout(name)}
    for name, commit in commits.items():
        if commit is None and shallow:
            print(f"bench.regression: skipped: {name} is not in this shallow clone (git fetch --deepen=1 fetches it)")
            return SKIPPED
        if commit is None:
            print(f"bench.regression: error: unknown revision {name}", file=sys.stderr)
            return 1
    if len(commits) == 2 and same_package(repo, *commits.values()):
        print(f"bench.regression: skipped: fastnn/ is the same in {args.base} and {args.head}")
        return SKIPPED
    data = os.path.abspath(os.environ.get("FASTNN_DATA") or repo.parent / "shared" / "data")
    if not os.path.isdir(os.path.join(data, "mnist")):
        print(f"bench.regression: error: no MNIST in {data}/mnist (set FASTNN_DATA)", file=sys.stderr)
        return 1
    (base_tree, base_label), (head_tree, head_label) = tree_of(repo, args.base), tree_of(repo, args.head)
    print(f"bench.regression: BASE {base_label} against HEAD {head_label}: JIT kernels, one thread, batch 64, "
          f"{EPOCHS_PER_ROUND} epochs per round on MNIST", flush=True)
    started = time.perf_counter()
    try:
        seconds = compare([base_tree, head_tree], data, args.rounds, args.budget)
    except WorkerError as error:
        if error.side == 0:  # HEAD trains: a BASE that cannot is no verdict on HEAD
            print(f"bench.regression: skipped: BASE {base_label} cannot be timed: {error}")
            return SKIPPED
        print(f"bench.regression: error: {error}", file=sys.stderr)
        return 1
    verdicts = [judge(shape.name, seconds[0][i], seconds[1][i], args.threshold, args.floor)
                for i, shape in enumerate(SHAPES)]
    print(report(verdicts, args.threshold, args.floor))
    slower = [v.shape for v in verdicts if v.regressed]
    print(f"bench.regression: {'REGRESSION in ' + ', '.join(slower) if slower else 'no regression'} "
          f"({time.perf_counter() - started:.0f} s)")
    return REGRESSED if slower else PASSED


if __name__ == "__main__":
    if "--worker" in sys.argv and sys.path and pathlib.Path(sys.path[0]).resolve() == REPO / "bench":
        del sys.path[0]  # the worker imports fastnn from its own tree, and nothing from bench/
    sys.exit(main())
