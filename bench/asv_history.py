"""An asv history of the last commits, each benchmarked from its own files, then the report.

    python -m bench.asv_history                          # the last 3 commits of main, every benchmark
    python -m bench.asv_history -n 5 --bench PredictProba
    python -m bench.asv_history --commits 6e21d3e 56bd82a --bench "Import|PredictProba"

For each commit, oldest first: its files are exported with ``git archive`` into
.asv/commits/<commit>/ (as bench.regression does; nothing is installed, the repository is not
touched), then

    ASV_PYTHONPATH=.asv/commits/<commit> FASTNN_NATIVE=0 asv run --python=same --set-commit-hash <commit>

asv passes ASV_PYTHONPATH to its benchmark processes as PYTHONPATH, so they import that
commit's fastnn, and ``--set-commit-hash`` makes asv keep the results (without it, asv saves no
``--python=same`` run; it never saves ``--quick`` ones). The kernels run on the JIT, compiled by
the first benchmark process of each commit (a minute or two here) and then loaded from
.asv/numba_cache/<hash of the sources>. Last, ``asv publish`` and bench.asv_offline write the
report, viewed with ``asv preview``. The benchmarks themselves are the working tree's
(bench/benchmarks/), as with any asv run.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time
from typing import Sequence

from bench import asv_offline, regression

REPO = pathlib.Path(__file__).resolve().parents[1]


def asv(*args: str, env: dict | None = None) -> int:
    """Run an asv command from the repository root (where asv.conf.json is); its exit status."""
    print("$", "asv", *args, flush=True)
    return subprocess.run([sys.executable, "-m", "asv", *args], cwd=REPO, env=env, check=False).returncode


def last_commits(repo: pathlib.Path, branch: str, n: int) -> list[str]:
    """The last n commits of branch along first parents (the line asv draws), oldest first."""
    result = regression.git(repo, "rev-list", "--first-parent", f"--max-count={n}", branch)
    if result.returncode != 0:
        raise SystemExit(f"bench.asv_history: error: {result.stderr.strip()}")
    return result.stdout.split()[::-1]


def benchmark(commit: str, asv_args: Sequence[str]) -> int:
    """asv run of one commit's exported files, its results kept under that commit."""
    tree = regression.export(REPO, commit, REPO / regression.EXPORTS)
    env = {**os.environ, "ASV_PYTHONPATH": str(tree), "FASTNN_NATIVE": "0"}
    return asv("run", "--python=same", "--set-commit-hash", commit, *asv_args, env=env)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=3, help="how many of the last commits of main (3)")
    parser.add_argument("--commits", nargs="+", metavar="REV", help="these commits instead, in this order")
    parser.add_argument("--bench", help="asv's --bench: a regular expression of the benchmarks to run")
    parser.add_argument("--no-publish", action="store_true", help="only record results")
    args, asv_args = parser.parse_known_args(argv)  # other options go to asv run (e.g. --show-stderr)
    if args.bench:
        asv_args = ["--bench", args.bench, *asv_args]
    if not (pathlib.Path.home() / ".asv-machine.json").exists() and asv("machine", "--yes") != 0:
        return 1
    commits = [regression.resolve(REPO, rev) or rev for rev in args.commits] if args.commits else \
        last_commits(REPO, "main", args.n)
    failed = []
    for commit in commits:
        started = time.perf_counter()
        if regression.resolve(REPO, commit) is None:
            print(f"bench.asv_history: error: unknown commit {commit}", file=sys.stderr)
            return 1
        if benchmark(commit, asv_args) != 0:
            failed.append(commit[:10])
        print(f"bench.asv_history: {commit[:10]} took {time.perf_counter() - started:.0f} s", flush=True)
    if not args.no_publish:
        if asv("publish") != 0:
            return 1
        asv_offline.main([])
    if failed:
        print(f"bench.asv_history: asv run failed for {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
