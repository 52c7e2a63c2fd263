"""Side-by-side training speed of fastnn and other frameworks, in one run.

    python -m bench.compare [--widths 10,128,512] [--depths 1] [--layers "784,256,128,10;..."]
                            [--optimizer sgd,adam] [--batch 64,256] [--grid | --issue-table]
                            [--epochs-timed 5] [--rounds 1] [--budget 30] [--threads 2]
                            [--frameworks fastnn,numpy,...] [--json results.json]

Trains MLPs on MNIST (ReLU hidden layers, softmax + cross-entropy, float32) in every
framework, with the same thread count, initial weights, optimizer and batch size, and prints
one table: median seconds per epoch, test accuracy, time relative to fastnn, and the
dense-arithmetic floor measured on this machine in the same run (FLOPs of the layers' matrix
products over the best float32 GEMM rate; the CPU model and the GEMM rates are printed too).

What is trained is a list of cases, each a network, an optimizer and a batch size (every
combination of the options given):
  --widths 10,128,512   networks 784-H-10, one per width H (the default: 10,128,512);
  --depths 1,2          with --widths, that many hidden layers of width H (784-H-H-10 for 2);
  --layers "784,256,128,10;784,1024,1024,10"
                        networks given layer by layer (separated by ';' or spaces), instead
                        of --widths/--depths;
  --optimizer sgd,adam  sgd: plain SGD, lr 0.1 (the default); adam: Adam, lr 0.001, betas
                        (0.9, 0.999), eps 1e-8, no weight decay (fastnn.Adam()'s defaults,
                        = torch.optim.Adam's); the same rule in every framework;
  --batch 64,256        batch sizes (default 64);
  --grid                widths 10,128,512,1024,2048 x depths 1-3 x batches 32,64,256 x sgd,adam
                        (90 cases; --widths, --depths, --batch or --optimizer given with it
                        narrow that axis), frameworks fastnn,jax unless --frameworks says
                        otherwise; ends with a grid of JAX/fastnn time ratios (a row per
                        network and optimizer, a column per batch), their median and minimum.
                        Keep a trial short with --epochs-timed 1 and a small --budget (a case
                        still runs its warm-up epoch and one timed epoch);
  --issue-table         the 9 cases of issue 23's table (784-10-10 SGD 64, 784-128-10 SGD 64,
                        784-512-10 SGD 64, 784-128-10 SGD 256, 784-10-10 Adam 64,
                        784-128-10 Adam 64, 784-256-128-10 SGD 64, 784-256-128-10 Adam 64,
                        784-1024-1024-10 SGD 128), frameworks fastnn,jax,torch by default.
Up to 3 cases print as columns (the default 784-10-10, 784-128-10, 784-512-10 table); more,
and --grid or --issue-table, print one row per case: each framework's seconds per epoch, each
one's time over fastnn's, the dense floor over fastnn's time, and the test accuracies.

Issue 23's table (seconds per epoch, MNIST 60,000, 2 threads; fastnn, JAX, PyTorch, JAX/fastnn):

    FASTNN_DATA=../shared/data python -m bench.compare --issue-table --epochs-timed 5 --rounds 3

or, spelled out with the other options (every combination: 30 cases, a superset of those 9):

    python -m bench.compare --frameworks fastnn,jax,torch \\
        --layers "784,10,10;784,128,10;784,512,10;784,256,128,10;784,1024,1024,10" \\
        --optimizer sgd,adam --batch 64,128,256

the issue's grid, and a short trial of it:

    python -m bench.compare --grid --frameworks fastnn,jax
    python -m bench.compare --grid --epochs-timed 1 --budget 2 --widths 10,128 --depths 1,2

With --rounds N, every framework and case is measured N times over, round after round; each
round's ratios compare timings minutes apart rather than a whole run apart, and the table
gives the median over rounds of both the times and the ratios (on a shared machine whose
speed drifts, the ratio is then the steadier figure).
"""
import argparse
import datetime
import gzip
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass

FRAMEWORK_NAMES = ["fastnn", "fastnn.array", "numpy", "torch", "torch.compile", "jax", "sklearn"]
LABELS = {
    "fastnn": "fastnn",
    "fastnn.array": "fastnn, array X",
    "numpy": "numpy reference",
    "torch": "torch eager",
    "torch.compile": "torch.compile",
    "jax": "jax jit+scan",
    "sklearn": "sklearn MLP",
}
STATUS_WIDTH = 60  # longer reasons are printed in full under the table
BUSY_CORES = 0.25  # other processes' average use above which a timing is flagged
WIDE_CASES = 3  # up to this many cases print as columns, more as rows

N_INPUTS, N_CLASSES = 784, 10
OPTIMIZERS = ("sgd", "adam")  # as bench.peers (not imported here: it imports numpy)
OPTIMIZER_TEXT = {"sgd": "SGD lr 0.1", "adam": "Adam lr 0.001 betas (0.9, 0.999) eps 1e-8"}
DEFAULT_WIDTHS, DEFAULT_DEPTHS, DEFAULT_OPTIMIZERS, DEFAULT_BATCHES = (10, 128, 512), (1,), ("sgd",), (64,)
GRID_WIDTHS, GRID_DEPTHS, GRID_OPTIMIZERS, GRID_BATCHES = (10, 128, 512, 1024, 2048), (1, 2, 3), ("sgd", "adam"), \
    (32, 64, 256)
GRID_FRAMEWORKS = ["fastnn", "jax"]
ISSUE_FRAMEWORKS = ["fastnn", "jax", "torch"]


@dataclass(frozen=True)
class Case:
    """One cell of the benchmark: a network, an optimizer and a batch size."""

    layers: tuple  # (784, hidden widths..., 10)
    optimizer: str = "sgd"
    batch: int = 64

    @property
    def hidden(self):
        return self.layers[1:-1]

    @property
    def network(self):
        return "-".join(str(n) for n in self.layers)

    @property
    def label(self):
        return f"{self.network} {self.optimizer} b{self.batch}"

    def __str__(self):
        return self.label


# Issue 23's table, row by row.
ISSUE_TABLE = [
    Case((784, 10, 10), "sgd", 64), Case((784, 128, 10), "sgd", 64), Case((784, 512, 10), "sgd", 64),
    Case((784, 128, 10), "sgd", 256), Case((784, 10, 10), "adam", 64), Case((784, 128, 10), "adam", 64),
    Case((784, 256, 128, 10), "sgd", 64), Case((784, 256, 128, 10), "adam", 64),
    Case((784, 1024, 1024, 10), "sgd", 128),
]


def _ints(text, option):
    """"10,128" -> (10, 128); ValueError names the option."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{option} takes whole numbers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{option} takes numbers of at least 1, got {text!r}")
    return values


def parse_layers(text):
    """"784,256,128,10;784,10,10" (networks separated by ';' or spaces) -> [(784, 256, 128, 10), ...]."""
    networks = []
    for part in re.split(r"[;\s]+", text.strip()):
        if not part:
            continue
        layers = _ints(part, "--layers")
        if len(layers) < 3 or layers[0] != N_INPUTS or layers[-1] != N_CLASSES:
            raise ValueError(f"--layers: {part!r} must be {N_INPUTS}, at least one hidden width, {N_CLASSES}")
        networks.append(layers)
    if not networks:
        raise ValueError("--layers names no network")
    return networks


def build_cases(args):
    """Every combination of the networks, optimizers and batches the options give, in order."""
    if args.issue_table:
        given = [o for o, v in [("--layers", args.layers), ("--widths", args.widths), ("--depths", args.depths),
                                ("--optimizer", args.optimizer), ("--batch", args.batch),
                                ("--grid", args.grid or None)] if v is not None]
        if given:
            raise ValueError(f"--issue-table sets the cases itself; drop {', '.join(given)}")
        return list(ISSUE_TABLE)
    if args.layers is not None:
        given = [o for o, v in [("--widths", args.widths), ("--depths", args.depths),
                                ("--grid", args.grid or None)] if v is not None]
        if given:
            raise ValueError(f"--layers gives whole networks; drop {', '.join(given)}")
        networks = parse_layers(args.layers)
    else:
        widths = _ints(args.widths, "--widths") if args.widths is not None else \
            GRID_WIDTHS if args.grid else DEFAULT_WIDTHS
        depths = _ints(args.depths, "--depths") if args.depths is not None else \
            GRID_DEPTHS if args.grid else DEFAULT_DEPTHS
        networks = [(N_INPUTS,) + (w,) * d + (N_CLASSES,) for d in depths for w in widths]
    if args.optimizer is not None:
        optimizers = tuple(o.strip().lower() for o in args.optimizer.split(",") if o.strip())
        unknown = sorted(set(optimizers) - set(OPTIMIZERS))
        if unknown or not optimizers:
            raise ValueError(f"--optimizer: unknown {unknown or args.optimizer!r}; choose from {list(OPTIMIZERS)}")
    else:
        optimizers = GRID_OPTIMIZERS if args.grid else DEFAULT_OPTIMIZERS
    batches = _ints(args.batch, "--batch") if args.batch is not None else \
        GRID_BATCHES if args.grid else DEFAULT_BATCHES
    cases = [Case(n, o, b) for n in networks for o in optimizers for b in batches]
    return list(dict.fromkeys(cases))  # without repeats, in order


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n")[0])
    p.add_argument("--widths", help="hidden widths H of 784-H-10 networks, comma separated "
                   f"(default {','.join(map(str, DEFAULT_WIDTHS))})")
    p.add_argument("--depths", help="with --widths: numbers of hidden layers, all of width H (default 1)")
    p.add_argument("--layers", help='whole networks, e.g. "784,256,128,10;784,1024,1024,10" (";" or spaces '
                   "between networks)")
    p.add_argument("--optimizer", help="sgd (lr 0.1) and/or adam (lr 0.001), comma separated (default sgd)")
    p.add_argument("--batch", help="batch sizes, comma separated (default 64)")
    p.add_argument("--grid", action="store_true",
                   help="issue 23's grid: widths 10-2048 x 1-3 hidden layers x batches 32,64,256 x sgd,adam; "
                   "--widths/--depths/--batch/--optimizer narrow it")
    p.add_argument("--issue-table", action="store_true", help="issue 23's 9 cases (see the module docstring)")
    p.add_argument("--epochs-timed", type=int, default=5,
                   help="timed epochs after the warm-up one; the median is reported")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure everything this many times over; report medians over rounds")
    p.add_argument("--budget", type=float, default=30.0,
                   help="seconds of timed epochs per framework and case before stopping early")
    p.add_argument("--threads", type=int, default=2, help="threads for every framework")
    p.add_argument("--frameworks",
                   help="comma separated subset of: " + ",".join(FRAMEWORK_NAMES) + " (default all; "
                   f"{','.join(GRID_FRAMEWORKS)} with --grid, {','.join(ISSUE_FRAMEWORKS)} with --issue-table)")
    p.add_argument("--sklearn-all-widths", action="store_true",
                   help="also run scikit-learn for hidden layers wider than 10 (slow)")
    p.add_argument("--json", metavar="FILE", help="also save all results as JSON")
    args = p.parse_args(argv)
    if args.grid and args.issue_table:
        p.error("--grid and --issue-table are two different sets of cases; choose one")
    try:
        args.cases = build_cases(args)
    except ValueError as exc:
        p.error(str(exc))
    if args.frameworks is None:
        args.frameworks = GRID_FRAMEWORKS if args.grid else ISSUE_FRAMEWORKS if args.issue_table \
            else FRAMEWORK_NAMES
    else:
        args.frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = sorted(set(args.frameworks) - set(FRAMEWORK_NAMES))
    if unknown:
        p.error(f"unknown framework(s) {unknown}; choose from {FRAMEWORK_NAMES}")
    if args.epochs_timed < 1 or args.threads < 1 or args.rounds < 1:
        p.error("--epochs-timed, --threads and --rounds must be at least 1")
    if not args.budget > 0:
        p.error("--budget must be positive")
    return args


def set_thread_environment(threads):
    """Thread counts for libraries that read them once, at import: so before any import."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    xla = os.environ.get("XLA_FLAGS", "")
    if "intra_op_parallelism_threads" not in xla:  # not twice after a re-exec
        flags = f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}"
        os.environ["XLA_FLAGS"] = f"{xla} {flags}".strip()


# --- data -------------------------------------------------------------------


def _read_idx(path, header, magic):
    """The uint8 payload of a gzip IDX file, after its big-endian header."""
    import numpy as np

    with gzip.open(path, "rb") as f:
        raw = f.read()
    if int.from_bytes(raw[:4], "big") != magic:
        raise ValueError(f"{path}: not an IDX file of the expected kind")
    return np.frombuffer(raw, dtype=np.uint8, offset=header)


def read_mnist(folder):
    """(train_images, train_labels, test_images, test_labels) from the gzip IDX files."""
    def images(name):
        return _read_idx(os.path.join(folder, name), 16, 2051).reshape(-1, 784)

    def labels(name):
        return _read_idx(os.path.join(folder, name), 8, 2049)

    return (images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz"),
            images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz"))


def load_mnist():
    """MNIST via fastnn.data.datasets when it exists, else the reader above; says which."""
    folder = os.path.join(os.environ.get("FASTNN_DATA", "/work/shared/data"), "mnist")
    try:
        from fastnn.data.datasets import load_mnist as fastnn_load_mnist
    except ImportError:
        return read_mnist(folder), f"bench reader, {folder} (fastnn.data.datasets not importable)"
    try:  # the folder, not its default search: that would try to download
        data = fastnn_load_mnist(folder, download=False)
        return tuple(data), f"fastnn.data.datasets.load_mnist({folder!r})"
    except Exception as exc:  # its loader is new; the benchmark should still run
        return read_mnist(folder), f"bench reader, {folder} (fastnn.data.datasets failed: {exc})"


# --- versions -----------------------------------------------------------------


def _git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _fastnn_version():
    """Package version plus the commit, and whether fastnn/ differs from it (it is being edited)."""
    try:
        version = importlib.metadata.version("fastnn")
    except importlib.metadata.PackageNotFoundError:
        version = "source tree"
    sha = _git("rev-parse", "--short", "HEAD")
    if sha:
        dirty = " + uncommitted changes" if _git("status", "--porcelain", "--", "fastnn") else ""
        version += f" (git {sha}{dirty})"
    return version


def versions(frameworks):
    """Installed versions, read from package metadata (imports nothing)."""
    dists = {"numpy": ["numpy"], "torch": ["torch"], "torch.compile": ["torch"],
             "jax": ["jax", "jaxlib"], "sklearn": ["scikit-learn"], "fastnn": ["numba"],
             "fastnn.array": ["numba"]}
    found = {"python": platform.python_version(), "fastnn": _fastnn_version()}
    for name in frameworks:
        for dist in dists[name]:
            try:
                found[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                found[dist] = "not installed"
    return found


# --- running ------------------------------------------------------------------


def run_all(args, data, peers):
    """results[framework][case] = peers.Result; frameworks outer so each is imported once."""
    import numpy as np

    train_x, train_y, test_x, test_y = (np.ascontiguousarray(a) for a in data)
    scaled = dict(train_xf=train_x.astype(np.float32) / 255, test_xf=test_x.astype(np.float32) / 255)
    results = {}
    for name in args.frameworks:
        results[name] = {}
        for case in args.cases:
            if name == "sklearn" and max(case.hidden) > 10 and not args.sklearn_all_widths:
                results[name][case] = peers.Result(status="skipped, slow (--sklearn-all-widths)")
                continue
            print(f"  {LABELS[name]:16s} {case.label:28s} ...", end="", file=sys.stderr, flush=True)
            task = peers.Task(train_x, train_y, test_x, test_y, layers=case.layers, optimizer=case.optimizer,
                              batch=case.batch, threads=args.threads, epochs_timed=args.epochs_timed,
                              budget=args.budget, **scaled)
            res = peers.run(name, task)
            if res.status == "ok" and len(res.epoch_times) < args.epochs_timed:
                cut = f"only {len(res.epoch_times)} timed epochs (--budget {args.budget:g} s)"
                res.note = f"{res.note}; {cut}" if res.note else cut
            results[name][case] = res
            done = f"{res.seconds:.3f} s/epoch, acc {res.accuracy:.4f}" if res.status == "ok" else res.status
            print(f" {done}", file=sys.stderr, flush=True)
    return results


def merge_rounds(rounds, peers):
    """One result per framework and case from several rounds of run_all: median seconds, every
    timed epoch, the first round's warm-up, the last round's accuracy, and each round's ratio to
    fastnn's time in that round."""
    merged = {}
    for name, per_case in rounds[0].items():
        merged[name] = {}
        for case in per_case:
            runs = [r[name][case] for r in rounds]
            bad = [r for r in runs if r.status != "ok"]
            if bad:
                merged[name][case] = bad[0]
                continue
            base = [r.get("fastnn", {}).get(case) for r in rounds]
            merged[name][case] = peers.Result(
                seconds=statistics.median(r.seconds for r in runs),
                epoch_times=[t for r in runs for t in r.epoch_times],
                warmup_seconds=runs[0].warmup_seconds, accuracy=runs[-1].accuracy,
                others_cores=max(r.others_cores or 0 for r in runs), note=runs[0].note,
                round_ratios=[r.seconds / b.seconds for r, b in zip(runs, base)
                              if b is not None and b.status == "ok"])
    return merged


def ratio(results, name, case):
    """Time of framework `name` over fastnn's on `case`: the median of the rounds' ratios when
    there were rounds, else of the two times; None when either did not run."""
    r = results.get(name, {}).get(case)
    if r is None or r.status != "ok" or not r.seconds:
        return None
    if r.round_ratios:
        return statistics.median(r.round_ratios)
    base = results.get("fastnn", {}).get(case)
    if base is None or base.status != "ok" or not base.seconds:
        return None
    return r.seconds / base.seconds


def floor_seconds(cases, n_train, peak_gflops, machine):
    """The dense floor of every case: its epoch's FLOPs (all layers) over the best GEMM rate."""
    return {case: machine.epoch_flops(n_train, case.layers) / (peak_gflops * 1e9) for case in cases}


def gemm_shapes(cases):
    """GEMMs to time besides the big square one: each case's first layer, (batch, 784, H1)."""
    return sorted({(case.batch, case.layers[0], case.layers[1]) for case in cases})


# --- output -------------------------------------------------------------------


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def case_labels(cases):
    """Column labels for the wide table: the network ("H=128" when every network is 784-H-10),
    plus the optimizer and the batch when they differ between cases (the training line says
    them otherwise)."""
    one_hidden = all(len(c.hidden) == 1 for c in cases)
    several_optimizers = len({c.optimizer for c in cases}) > 1
    several_batches = len({c.batch for c in cases}) > 1
    labels = {}
    for c in cases:
        parts = [f"H={c.hidden[0]}" if one_hidden else c.network]
        parts += [c.optimizer] if several_optimizers else []
        parts += [f"b{c.batch}"] if several_batches else []
        labels[c] = " ".join(parts)
    return labels


def _status(per_case, labels=None):
    """One status per framework: "ok", a shared reason, or reasons per case."""
    bad = {c: r.status for c, r in per_case.items() if r.status != "ok"}
    if not bad:
        return "ok"
    if len(bad) == len(per_case) and len(set(bad.values())) == 1:
        return next(iter(bad.values()))
    labels = labels or case_labels(list(per_case))
    groups = {}
    for c, status in bad.items():
        groups.setdefault(status, []).append(labels[c])
    return "; ".join(f"{', '.join(cs)}: {status}" for status, cs in groups.items())


def _shorten(text, width=STATUS_WIDTH):
    return text if len(text) <= width else text[: width - 3] + "..."


def _align(rows, group_labels):
    """Left-align the first column, right-align numbers, centre each case's label over its 3 columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for g, label in enumerate(group_labels):  # widen groups whose label is longer than their columns
        cols = range(1 + 3 * g, 4 + 3 * g)
        short = len(label) - (sum(widths[c] for c in cols) + 4)
        if short > 0:
            widths[cols[-1]] += short
    lines = []
    head = [" " * widths[0]]
    for g, label in enumerate(group_labels):
        span = sum(widths[c] for c in range(1 + 3 * g, 4 + 3 * g)) + 4
        head.append(label.center(span, "-") if label else " " * span)
    lines.append("  ".join(head).rstrip())
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [row[i].rjust(widths[i]) for i in range(1, len(row) - 1)]
        cells.append(row[-1])
        lines.append("  ".join(cells).rstrip())
    return lines


def _columns(rows):
    """Rows of cells as lines: the first column left-aligned, the others right-aligned."""
    sizes = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join([r[0].ljust(sizes[0])] + [c.rjust(s) for c, s in zip(r[1:], sizes[1:])]).rstrip()
            for r in rows]


def _busy(r):
    return "*" if (r.others_cores or 0) > BUSY_CORES else ""


def results_table(results, cases, floor):
    """The wide table: frameworks as rows, three columns (s/epoch, test acc, ratio) per case."""
    fastnn = results.get("fastnn", {})
    base = {c: fastnn[c].seconds if c in fastnn and fastnn[c].status == "ok" else None for c in cases}
    labels = case_labels(cases)
    rows = [["framework"] + ["s/epoch", "test acc", "ratio"] * len(cases) + ["status"]]
    for name, per_case in results.items():
        row = [LABELS[name]]
        for c in cases:
            r = per_case[c]
            row += [_fmt(r.seconds, ".3f") + _busy(r), _fmt(r.accuracy, ".4f"), _fmt(ratio(results, name, c), ".2f")]
        rows.append(row + [_shorten(_status(per_case, labels))])
    row = ["dense floor"]
    for c in cases:
        frac = floor[c] / base[c] if base[c] else None
        row += [_fmt(floor[c], ".3f"), "", _fmt(frac, ".2f")]
    rows.append(row + ["ratio here = floor / fastnn time"])
    return _align(rows, [f" {labels[c]} " for c in cases])


def case_table(results, cases, floor):
    """The long table: one row per case; each framework's s/epoch, each peer's time over
    fastnn's, the dense floor over fastnn's time, and each framework's test accuracy."""
    names = list(results)
    peers = [n for n in names if n != "fastnn"]
    fastnn = results.get("fastnn", {})
    rows = [["network, optimizer, batch"] + [f"{n} s" for n in names] + [f"{n}/fastnn" for n in peers]
            + ["floor/fastnn"] + [f"acc {n}" for n in names]]
    for c in cases:
        row = [c.label]
        row += [_fmt(results[n][c].seconds, ".3f") + _busy(results[n][c]) for n in names]
        row += [_fmt(ratio(results, n, c), ".2f") for n in peers]
        base = fastnn.get(c)
        ok = base is not None and base.status == "ok" and base.seconds
        row.append(_fmt(floor[c] / base.seconds if ok else None, ".2f"))
        row += [_fmt(results[n][c].accuracy, ".4f") for n in names]
        rows.append(row)
    return _columns(rows)


def warmup_table(results, cases, labels=None):
    labels = labels or case_labels(cases)
    rows = [["first (warm-up) epoch, s"] + [labels[c] for c in cases]]
    for name, per_case in results.items():
        rows.append([LABELS[name]] + [_fmt(per_case[c].warmup_seconds, ".2f") for c in cases])
    return _columns(rows)


def grid_table(results, cases, peer):
    """One row per network and optimizer, one column per batch; each cell peer's time over
    fastnn's (>1: fastnn faster)."""
    batches = list(dict.fromkeys(c.batch for c in cases))
    keys = list(dict.fromkeys((c.layers, c.optimizer) for c in cases))
    by_key = {(c.layers, c.optimizer, c.batch): c for c in cases}
    rows = [[f"{peer} / fastnn time"] + [f"b{b}" for b in batches]]
    for layers, optimizer in keys:
        cells = []
        for b in batches:
            c = by_key.get((layers, optimizer, b))
            cells.append(_fmt(ratio(results, peer, c) if c else None, ".2f"))
        rows.append([f"{Case(layers).network} {optimizer}"] + cells)
    return _columns(rows)


def grid_summary(results, cases, peer):
    """(median ratio, minimum ratio, its case) over the cases both ran; Nones if none did."""
    ratios = {c: ratio(results, peer, c) for c in cases}
    ratios = {c: r for c, r in ratios.items() if r is not None}
    if not ratios:
        return None, None, None
    low = min(ratios, key=ratios.get)
    return statistics.median(ratios.values()), ratios[low], low


def notes(results, cases, labels, every_status=False):
    """Full text of long statuses (every one that is not "ok" with every_status), and what each
    framework does differently."""
    out = []
    busy = [f"{LABELS[name]} {labels[c]} ({r.others_cores:.1f})" for name, per_case in results.items()
            for c, r in per_case.items() if (r.others_cores or 0) > BUSY_CORES]
    if busy:
        out.append("* other processes kept cores busy during the timed epochs (average cores): "
                   + ", ".join(busy))
    for name, per_case in results.items():
        status = _status(per_case, labels)
        if len(status) > STATUS_WIDTH or (every_status and status != "ok"):
            out.append(f"{LABELS[name]}: {status}")
        by_case = {c: r.note for c, r in per_case.items() if r.note}
        if len(by_case) == len(per_case) and len(set(by_case.values())) == 1:
            out.append(f"{LABELS[name]}: {next(iter(by_case.values()))}")
        else:
            out += [f"{LABELS[name]} {labels[c]}: {note}" for c, note in by_case.items()]
    return out


def training_line(args):
    """What was trained, in one line (the default run's line is the tutorial network's)."""
    cases = args.cases
    if all(len(c.hidden) == 1 for c in cases):
        network = "784-H-10 ReLU"
    else:
        network = "the networks below, ReLU hidden layers"
    optimizers = ", ".join(OPTIMIZER_TEXT[o] for o in dict.fromkeys(c.optimizer for c in cases))
    batches = "/".join(str(b) for b in dict.fromkeys(c.batch for c in cases))
    return (f"training: {network}, softmax+CE, {optimizers}, batch {batches} (last partial batch kept), "
            f"float32; 1 warm-up + {args.epochs_timed} timed epochs (fewer past --budget "
            f"{args.budget:g} s), median reported; test acc after them all; ratio = time / fastnn time "
            f"(>1: fastnn faster)")


def print_report(args, info, results):
    m = info["machine"]
    cases, floor = args.cases, info["floor_seconds"]
    wide = len(cases) <= WIDE_CASES and not args.grid and not args.issue_table
    labels = case_labels(cases) if wide else {c: c.label for c in cases}
    print(f"fastnn bench.compare  {info['date']}")
    print(f"threads: {args.threads}   cpu: {m['cpu']} ({m['cores']} cores)   "
          f"load avg before/after: {info['load_before']:.2f} / {info['load_after']:.2f}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    if max(info["load_before"], info["load_after"]) > 0.5:
        print("warning: other processes were running (load average above); multi-threaded "
              "timings suffer most when a core is taken")
    if info["reexec"]:
        print(f"note: re-executed with {' and '.join(info['reexec'])} unset (they slow numpy's BLAS)")
    print("numpy BLAS: " + "; ".join(m["blas"]))
    print("float32 GEMM GFLOP/s (numpy, best of repeats): "
          + ", ".join(f"{shape} {g:.1f}" for shape, g in m["gemm_gflops"].items()))
    print(f"memory read bandwidth (sum over 1 GiB float32, {args.threads} threads): {m['read_gbs']:.1f} GB/s"
          f"   (other processes used {m['others_cores']:.1f} cores while measuring)")
    print(f"dense floor = FLOPs / {m['peak_gflops']:.1f} GFLOP/s (best GEMM rate above); "
          f"FLOPs per epoch = {info['flops_formula']}; kernels that skip zero pixels do less work")
    print(f"thread settings: torch.set_num_threads, numpy/sklearn threadpool_limits, fastnn threads=, "
          f"jax XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} (XLA may size its pool by cores)")
    print(f"data: {info['data_source']}; {info['n_train']} train / {info['n_test']} test")
    print(training_line(args))
    print()
    if wide:
        for line in results_table(results, cases, floor):
            print(line)
        print()
        for line in warmup_table(results, cases, labels):
            print(line)
        fastnn = results.get("fastnn", {})
        reach = [f"{labels[c]}: {floor[c] / fastnn[c].seconds:.1%}"
                 for c in cases if c in fastnn and fastnn[c].status == "ok"]
        print()
        print("fastnn reaches of the dense floor: " + (", ".join(reach) if reach else "- (no fastnn time)"))
    else:
        for line in case_table(results, cases, floor):
            print(line)
        if not args.grid:
            print()
            for line in _columns([["first (warm-up) epoch, s"] + list(results)] + [
                    [c.label] + [_fmt(results[n][c].warmup_seconds, ".2f") for n in results] for c in cases]):
                print(line)
    if args.rounds > 1:
        if not wide:
            print()
        print(f"{args.rounds} rounds; times and ratios above are medians over rounds. Each round's ratio "
              f"(time / fastnn's time in that round):")
        for name, per_case in results.items():
            if name == "fastnn":
                continue
            if wide:
                print(f"  {LABELS[name]:16s} " + "   ".join(
                    f"{labels[c]}: " + " ".join(f"{x:.2f}" for x in r.round_ratios) for c, r in per_case.items()))
            else:
                for c, r in per_case.items():
                    print(f"  {LABELS[name]:16s} {c.label:28s} " + " ".join(f"{x:.2f}" for x in r.round_ratios))
    extra = notes(results, cases, labels, every_status=not wide)
    if extra:
        print("notes:")
        for line in extra:
            print(f"  {line}")
    if args.grid:
        for peer in [n for n in results if n != "fastnn"]:
            print()
            for line in grid_table(results, cases, peer):
                print(line)
            median, low, where = grid_summary(results, cases, peer)
            if median is None:
                print(f"{peer} / fastnn: no case where both ran")
            else:
                print(f"{peer} / fastnn over {sum(ratio(results, peer, c) is not None for c in cases)} cases: "
                      f"median {median:.2f}, minimum {low:.2f} at {where.label}")


def save_json(path, args, info, results):
    options = dict(vars(args), cases=[dict(asdict(c), label=c.label) for c in args.cases])
    payload = dict(info, args=options,
                   results={name: {c.label: asdict(r) for c, r in per_case.items()}
                            for name, per_case in results.items()})
    payload["floor_seconds"] = {c.label: s for c, s in info["floor_seconds"].items()}
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)


def main(argv=None):
    args = parse_args(argv)
    set_thread_environment(args.threads)
    # Imported only now: thread variables above must be in place first.
    from bench import machine

    reexec = machine.reexec_without_openblas_overrides("bench.compare")
    from bench import peers

    info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "versions": versions(args.frameworks), "reexec": reexec,
            "load_before": os.getloadavg()[0]}
    print("measuring the machine ...", file=sys.stderr, flush=True)
    start = machine.cpu_snapshot()
    info["machine"] = machine.measure(args.threads, gemm_shapes(args.cases))
    info["machine"]["others_cores"] = machine.others_cores(start, machine.cpu_snapshot())
    data, info["data_source"] = load_mnist()
    info["n_train"], info["n_test"] = len(data[1]), len(data[3])
    info["flops_formula"] = machine.FLOPS_FORMULA
    info["floor_seconds"] = floor_seconds(args.cases, info["n_train"], info["machine"]["peak_gflops"], machine)
    print("training ...", file=sys.stderr, flush=True)
    rounds = []
    for r in range(args.rounds):
        if args.rounds > 1:
            print(f"round {r + 1} of {args.rounds}", file=sys.stderr, flush=True)
        rounds.append(run_all(args, data, peers))
    results = rounds[0] if args.rounds == 1 else merge_rounds(rounds, peers)
    info["load_after"] = os.getloadavg()[0]
    print_report(args, info, results)
    if args.json:
        save_json(args.json, args, info, results)
        print(f"saved {args.json}")


if __name__ == "__main__":
    main()
