"""Side-by-side training speed of fastnn and other frameworks, in one run.

    python -m bench.compare [--widths 10,128,512] [--epochs-timed 5] [--rounds 1]
                            [--threads 2] [--frameworks fastnn,numpy,...]
                            [--json results.json]

Trains 784-H-10 (ReLU, softmax + cross-entropy, SGD lr 0.1, batch 64,
float32) on MNIST in every framework, with the same thread count, and prints
one table: median seconds per epoch, test accuracy, time relative to fastnn,
and the dense-arithmetic floor measured on this machine in the same run.

With --rounds N, every framework and width is measured N times over, round after round; each
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
import statistics
import subprocess
import sys
from dataclasses import asdict

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


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n")[0])
    p.add_argument("--widths", default="10,128,512", help="hidden widths H, comma separated")
    p.add_argument("--epochs-timed", type=int, default=5,
                   help="timed epochs after the warm-up one; the median is reported")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure everything this many times over; report medians over rounds")
    p.add_argument("--budget", type=float, default=30.0,
                   help="seconds of timed epochs per framework and width before stopping early")
    p.add_argument("--threads", type=int, default=2, help="threads for every framework")
    p.add_argument("--frameworks", default=",".join(FRAMEWORK_NAMES),
                   help="comma separated subset of: " + ",".join(FRAMEWORK_NAMES))
    p.add_argument("--sklearn-all-widths", action="store_true",
                   help="also run scikit-learn for H > 10 (slow)")
    p.add_argument("--json", metavar="FILE", help="also save all results as JSON")
    args = p.parse_args(argv)
    args.widths = [int(w) for w in args.widths.split(",") if w.strip()]
    args.frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = sorted(set(args.frameworks) - set(FRAMEWORK_NAMES))
    if unknown:
        p.error(f"unknown framework(s) {unknown}; choose from {FRAMEWORK_NAMES}")
    if args.epochs_timed < 1 or args.threads < 1 or args.rounds < 1:
        p.error("--epochs-timed, --threads and --rounds must be at least 1")
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
    """results[framework][H] = peers.Result; frameworks outer so each is imported once."""
    import numpy as np

    train_x, train_y, test_x, test_y = (np.ascontiguousarray(a) for a in data)
    scaled = dict(train_xf=train_x.astype(np.float32) / 255, test_xf=test_x.astype(np.float32) / 255)
    results = {}
    for name in args.frameworks:
        results[name] = {}
        for hidden in args.widths:
            if name == "sklearn" and hidden > 10 and not args.sklearn_all_widths:
                results[name][hidden] = peers.Result(status="skipped, slow (--sklearn-all-widths)")
                continue
            print(f"  {LABELS[name]:16s} H={hidden:<4d} ...", end="", file=sys.stderr, flush=True)
            task = peers.Task(train_x, train_y, test_x, test_y, hidden=hidden,
                              threads=args.threads, epochs_timed=args.epochs_timed,
                              budget=args.budget, **scaled)
            res = peers.run(name, task)
            if res.status == "ok" and len(res.epoch_times) < args.epochs_timed:
                cut = f"only {len(res.epoch_times)} timed epochs (--budget {args.budget:g} s)"
                res.note = f"{res.note}; {cut}" if res.note else cut
            results[name][hidden] = res
            done = f"{res.seconds:.3f} s/epoch, acc {res.accuracy:.4f}" if res.status == "ok" else res.status
            print(f" {done}", file=sys.stderr, flush=True)
    return results


def merge_rounds(rounds, peers):
    """One result per framework and width from several rounds of run_all: median seconds, every
    timed epoch, the first round's warm-up, the last round's accuracy, and each round's ratio to
    fastnn's time in that round."""
    merged = {}
    for name, per_width in rounds[0].items():
        merged[name] = {}
        for h in per_width:
            runs = [r[name][h] for r in rounds]
            bad = [r for r in runs if r.status != "ok"]
            if bad:
                merged[name][h] = bad[0]
                continue
            base = [r.get("fastnn", {}).get(h) for r in rounds]
            merged[name][h] = peers.Result(
                seconds=statistics.median(r.seconds for r in runs),
                epoch_times=[t for r in runs for t in r.epoch_times],
                warmup_seconds=runs[0].warmup_seconds, accuracy=runs[-1].accuracy,
                others_cores=max(r.others_cores or 0 for r in runs), note=runs[0].note,
                round_ratios=[r.seconds / b.seconds for r, b in zip(runs, base)
                              if b is not None and b.status == "ok"])
    return merged


# --- output -------------------------------------------------------------------


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _status(per_width):
    """One status per framework: "ok", a shared reason, or reasons per width."""
    bad = {h: r.status for h, r in per_width.items() if r.status != "ok"}
    if not bad:
        return "ok"
    if len(bad) == len(per_width) and len(set(bad.values())) == 1:
        return next(iter(bad.values()))
    groups = {}
    for h, status in bad.items():
        groups.setdefault(status, []).append(str(h))
    return "; ".join(f"H={','.join(hs)}: {status}" for status, hs in groups.items())


def _shorten(text, width=STATUS_WIDTH):
    return text if len(text) <= width else text[: width - 3] + "..."


def _align(rows, group_labels):
    """Left-align the first column, right-align numbers, centre each width's label over its 3 columns."""
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


def results_table(results, widths, floor_seconds):
    fastnn = results.get("fastnn", {})
    base = {h: fastnn[h].seconds if h in fastnn and fastnn[h].status == "ok" else None for h in widths}
    rows = [["framework"] + ["s/epoch", "test acc", "ratio"] * len(widths) + ["status"]]
    for name, per_width in results.items():
        row = [LABELS[name]]
        for h in widths:
            r = per_width[h]
            ratio = r.seconds / base[h] if r.seconds and base[h] else None
            if r.round_ratios:
                ratio = statistics.median(r.round_ratios)
            busy = "*" if (r.others_cores or 0) > BUSY_CORES else ""
            row += [_fmt(r.seconds, ".3f") + busy, _fmt(r.accuracy, ".4f"), _fmt(ratio, ".2f")]
        rows.append(row + [_shorten(_status(per_width))])
    row = ["dense floor"]
    for h in widths:
        frac = floor_seconds[h] / base[h] if base[h] else None
        row += [_fmt(floor_seconds[h], ".3f"), "", _fmt(frac, ".2f")]
    rows.append(row + ["ratio here = floor / fastnn time"])
    return _align(rows, [f" H={h} " for h in widths])


def warmup_table(results, widths):
    rows = [["first (warm-up) epoch, s"] + [f"H={h}" for h in widths]]
    for name, per_width in results.items():
        rows.append([LABELS[name]] + [_fmt(per_width[h].warmup_seconds, ".2f") for h in widths])
    sizes = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join([r[0].ljust(sizes[0])] + [c.rjust(s) for c, s in zip(r[1:], sizes[1:])])
            for r in rows]


def notes(results):
    """Full text of long statuses, and what each framework does differently."""
    out = []
    busy = [f"{LABELS[name]} H={h} ({r.others_cores:.1f})" for name, per_width in results.items()
            for h, r in per_width.items() if (r.others_cores or 0) > BUSY_CORES]
    if busy:
        out.append("* other processes kept cores busy during the timed epochs (average cores): "
                   + ", ".join(busy))
    for name, per_width in results.items():
        status = _status(per_width)
        if len(status) > STATUS_WIDTH:
            out.append(f"{LABELS[name]}: {status}")
        by_width = {h: r.note for h, r in per_width.items() if r.note}
        if len(by_width) == len(per_width) and len(set(by_width.values())) == 1:
            out.append(f"{LABELS[name]}: {next(iter(by_width.values()))}")
        else:
            out += [f"{LABELS[name]} H={h}: {note}" for h, note in by_width.items()]
    return out


def print_report(args, info, results):
    m = info["machine"]
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
    print(f"training: 784-H-10 ReLU, softmax+CE, SGD lr 0.1, batch 64 (last partial batch kept), "
          f"float32; 1 warm-up + {args.epochs_timed} timed epochs (fewer past --budget "
          f"{args.budget:g} s), median reported; test acc after them all; ratio = time / fastnn time (>1: fastnn faster)")
    print()
    for line in results_table(results, args.widths, info["floor_seconds"]):
        print(line)
    print()
    for line in warmup_table(results, args.widths):
        print(line)
    fastnn = results.get("fastnn", {})
    reach = [f"H={h}: {info['floor_seconds'][h] / fastnn[h].seconds:.1%}"
             for h in args.widths if h in fastnn and fastnn[h].status == "ok"]
    print()
    print("fastnn reaches of the dense floor: " + (", ".join(reach) if reach else "- (no fastnn time)"))
    if args.rounds > 1:
        print(f"{args.rounds} rounds; times and ratios above are medians over rounds. Each round's ratio "
              f"(time / fastnn's time in that round):")
        for name, per_width in results.items():
            if name != "fastnn":
                print(f"  {LABELS[name]:16s} " + "   ".join(
                    f"H={h}: " + " ".join(f"{x:.2f}" for x in r.round_ratios) for h, r in per_width.items()))
    extra = notes(results)
    if extra:
        print("notes:")
        for line in extra:
            print(f"  {line}")


def save_json(path, args, info, results):
    payload = dict(info, args=vars(args),
                   results={name: {str(h): asdict(r) for h, r in per_width.items()}
                            for name, per_width in results.items()})
    payload["floor_seconds"] = {str(h): s for h, s in info["floor_seconds"].items()}
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
    info["machine"] = machine.measure(args.threads, args.widths)
    info["machine"]["others_cores"] = machine.others_cores(start, machine.cpu_snapshot())
    data, info["data_source"] = load_mnist()
    info["n_train"], info["n_test"] = len(data[1]), len(data[3])
    info["flops_formula"] = machine.FLOPS_FORMULA
    info["floor_seconds"] = {
        h: machine.epoch_flops(info["n_train"], [784, h, 10]) / (info["machine"]["peak_gflops"] * 1e9)
        for h in args.widths}
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
