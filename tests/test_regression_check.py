"""bench.regression: its decision on synthetic paired timings, its rounds, and how it handles a
clone without the base commit. No benchmark runs here (the real check runs in .ci/run)."""

import io
import math
import subprocess

import numpy as np
import pytest

from bench import regression
from bench.regression import judge, median_interval, paired_ratios


def drifting_machine(rounds: int, seed: int = 0) -> np.ndarray:
    """Seconds per epoch of one shape on a machine whose speed moves by a third between rounds."""
    rng = np.random.default_rng(seed)
    return 0.1 * rng.uniform(0.75, 1.33, size=rounds)


def jitter(size: int, spread: float, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(1 - spread, 1 + spread, size=size)


# -- the median's interval --------------------------------------------------------------------

def binomial_below(n: int, k: int) -> float:
    """P(Binomial(n, 1/2) < k)."""
    return sum(math.comb(n, j) for j in range(k)) / 2**n


@pytest.mark.parametrize("n", [6, 7, 10, 16, 24, 30, 51, 100])
def test_median_interval_is_the_widest_order_statistics_pair_of_95_percent(n):
    values = np.arange(1.0, n + 1)[::-1]  # unsorted on purpose: value i is the i-th order statistic
    low, high = median_interval(values)
    k = int(low)
    assert high == n + 1 - k
    assert binomial_below(n, k) <= 0.025 < binomial_below(n, k + 1)  # coverage >= 95%, and the narrowest such


def test_median_interval_known_values():
    assert median_interval(np.arange(1.0, 31)) == (10.0, 21.0)  # the textbook ranks for n = 30
    assert median_interval(np.arange(1.0, 25)) == (7.0, 18.0)  # n = 24, the CI run's pairs per shape


def test_median_interval_of_few_values_is_their_range():
    assert median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0)
    assert median_interval([2.0]) == (2.0, 2.0)
    with pytest.raises(ValueError, match="no values"):
        median_interval([])


# -- the verdict -------------------------------------------------------------------------------

def test_a_clear_slowdown_on_a_drifting_machine_is_a_regression():
    base = drifting_machine(24)
    head = base * 1.4 * jitter(24, 0.05)
    # Unpaired, the two sides overlap: the slowest base epoch is slower than the fastest head one.
    assert base.max() > head.min()
    verdict = judge("784-10-10 sgd", base, head)
    assert verdict.regressed
    assert verdict.pairs == 24
    assert 1.33 < verdict.ratio < 1.47
    assert 1.10 < verdict.low <= verdict.ratio <= verdict.high
    assert verdict.base_seconds == pytest.approx(np.median(base))
    assert verdict.head_seconds == pytest.approx(np.median(head))


def test_noise_alone_is_no_regression():
    base = drifting_machine(24)
    verdict = judge("s", base, base * jitter(24, 0.2))
    assert not verdict.regressed
    assert 0.9 < verdict.ratio < 1.1


def test_a_slowdown_below_the_threshold_is_no_regression():
    base = drifting_machine(24)
    verdict = judge("s", base, base * 1.2 * jitter(24, 0.01))  # clear, but small
    assert verdict.low > 1.10
    assert not verdict.regressed


def test_a_large_median_within_the_noise_is_no_regression():
    # Median 1.3, but a third of the pairs at or below parity: the interval reaches below 1.10.
    ratios = np.array([0.8, 0.9, 1.0, 1.0, 1.05, 1.1, 1.3, 1.3, 1.4, 1.6, 1.8, 2.0, 1.3, 1.5, 1.7, 0.95])
    base = drifting_machine(ratios.size)
    verdict = judge("s", base, base * ratios)
    assert verdict.ratio == pytest.approx(1.3)
    assert verdict.low < 1.10
    assert not verdict.regressed


def test_a_speedup_is_no_regression():
    base = drifting_machine(24)
    verdict = judge("s", base, base * 0.6)
    assert verdict.ratio == pytest.approx(0.6)
    assert not verdict.regressed


def test_threshold_and_floor_are_the_callers():
    base = drifting_machine(24)
    head = base * 1.2 * jitter(24, 0.01)
    assert judge("s", base, head, threshold=1.15, floor=1.10).regressed
    assert not judge("s", base, head, threshold=1.15, floor=1.25).regressed


@pytest.mark.parametrize("base, head, message", [
    ([0.1, 0.2], [0.1], "one length"),
    ([], [], "one length"),
    ([0.1, 0.0], [0.1, 0.1], "positive and finite"),
    ([0.1, 0.1], [0.1, float("nan")], "positive and finite"),
])
def test_paired_ratios_refuse_unpaired_or_bad_timings(base, head, message):
    with pytest.raises(ValueError, match=message):
        paired_ratios(base, head)


def test_report_lists_each_shape_and_its_verdict():
    base = drifting_machine(24)
    verdicts = [judge("784-10-10 sgd", base, base * 1.0), judge("784-128-10 adam", base, base * 1.5)]
    lines = regression.report(verdicts, 1.25, 1.10).splitlines()
    assert lines[1].split()[:2] == ["784-10-10", "sgd"] and lines[1].split()[-1] == "ok"
    assert lines[2].split()[-1] == "SLOWER" and "1.500" in lines[2] and "[1.500, 1.500]" in lines[2]
    assert "above 1.25" in lines[-1] and "above 1.1" in lines[-1]


# -- the rounds --------------------------------------------------------------------------------

class FakeWorker:
    """A worker process's pipes: records the shapes asked for, answers fixed epoch times."""

    def __init__(self, name, log, seconds):
        self.name, self.log, self.seconds = name, log, seconds
        self.stdin = self
        self.stdout = self

    def write(self, line):
        self.log.append((self.name, int(line)))

    def flush(self):
        pass

    def readline(self):
        return f"{self.seconds} {self.seconds * 1.01}\n"


def test_rounds_alternate_which_side_goes_first_and_pair_every_epoch():
    log = []
    workers = [FakeWorker("base", log, 0.1), FakeWorker("head", log, 0.3)]
    seconds = regression.timed_rounds(workers, rounds=2, budget=100)
    n = len(regression.SHAPES)
    assert log[:4] == [("base", 0), ("head", 0), ("head", 1), ("base", 1)]
    assert log[2 * n:2 * n + 2] == [("head", 0), ("base", 0)]  # the next round starts with the other side
    assert len(log) == 2 * 2 * n
    assert all(len(s) == 2 * regression.EPOCHS_PER_ROUND for side in seconds for s in side)
    assert seconds[1][0][:2] == [0.3, pytest.approx(0.303)]


def test_rounds_stop_at_the_budget_after_two(capsys):
    log = []
    seconds = regression.timed_rounds([FakeWorker("a", log, 0.1), FakeWorker("b", log, 0.1)], rounds=50, budget=0)
    assert len(seconds[0][0]) == 2 * regression.EPOCHS_PER_ROUND
    assert "2 rounds of 50" in capsys.readouterr().out


# -- the commits -------------------------------------------------------------------------------

def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "init.defaultBranch=main",
                    *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A repository of three commits: fastnn/ v1; a README change; fastnn/ v2."""
    root = tmp_path / "repo"
    (root / "fastnn").mkdir(parents=True)
    git("init", "-q", cwd=root)
    for message, path, text in [("one", "fastnn/__init__.py", "V = 1\n"), ("docs", "README.md", "docs\n"),
                                ("two", "fastnn/__init__.py", "V = 2\n")]:
        (root / path).write_text(text)
        git("add", ".", cwd=root)
        git("commit", "-q", "-m", message, cwd=root)
    return root


def test_a_shallow_clone_without_the_base_skips(repo, tmp_path, capsys):
    clone = tmp_path / "clone"
    git("clone", "-q", "--depth", "1", f"file://{repo}", str(clone), cwd=tmp_path)
    assert regression.main(["HEAD~1", "HEAD", "--repo", str(clone)]) == 0
    out = capsys.readouterr().out
    assert "skipped: HEAD~1 is not in this shallow clone" in out
    assert not (clone / ".asv").exists()


def test_an_unknown_revision_of_a_full_clone_is_an_error(repo, capsys):
    assert regression.main(["no-such-branch", "HEAD", "--repo", str(repo)]) == 1
    assert "error: unknown revision no-such-branch" in capsys.readouterr().err


def test_commits_with_the_same_package_skip(repo, capsys):
    assert regression.main(["HEAD~2", "HEAD~1", "--repo", str(repo)]) == 0
    assert "skipped: fastnn/ is the same in HEAD~2 and HEAD~1" in capsys.readouterr().out


def test_bad_options_are_refused(repo):
    with pytest.raises(SystemExit) as exit_:
        regression.main(["--floor", "1.5", "--threshold", "1.2", "--repo", str(repo)])
    assert exit_.value.code == 2


def test_export_extracts_a_commit_once_and_keeps_the_latest(repo, tmp_path, monkeypatch):
    exports = tmp_path / "exports"
    commits = [regression.resolve(repo, f"HEAD~{i}") for i in (2, 1, 0)]
    first = regression.export(repo, commits[0], exports)
    assert (first / "fastnn" / "__init__.py").read_text() == "V = 1\n"
    assert not (first / "README.md").exists()
    (first / "fastnn" / "marker").write_text("kept")
    assert regression.export(repo, commits[0], exports) == first  # reused, not extracted again
    assert (first / "fastnn" / "marker").exists()
    monkeypatch.setattr(regression, "KEEP_EXPORTS", 2)
    for commit in commits[1:]:
        regression.export(repo, commit, exports)
    assert sorted(p.name for p in exports.iterdir()) == sorted(commits[1:])
    assert (exports / commits[2] / "fastnn" / "__init__.py").read_text() == "V = 2\n"
    assert git_status_is_clean(repo)


def git_status_is_clean(repo) -> bool:
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
    return status.stdout == ""


def test_a_folder_is_used_in_place(repo):
    tree, label = regression.tree_of(repo, str(repo))
    assert tree == repo.resolve() and label.endswith("(folder)")
    assert regression.tree_of(repo, "no-such-branch") is None


class DeadWorker(FakeWorker):
    def readline(self):
        return ""  # the process ended (a crash, a divergence)


def test_a_worker_that_stops_is_an_error_naming_its_side():
    log = []
    workers = [FakeWorker("base", log, 0.1), DeadWorker("head", log, 0.1)]
    stopped = "the worker of HEAD stopped while training 784-10-10 sgd"
    with pytest.raises(regression.WorkerError, match=stopped) as error:
        regression.timed_rounds(workers, rounds=3, budget=100)
    assert error.value.side == 1


def test_missing_data_is_an_error(repo, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "nowhere"))
    assert regression.main(["HEAD~1", "HEAD", "--repo", str(repo)]) == 1
    assert f"error: no MNIST in {tmp_path / 'nowhere'}/mnist (set FASTNN_DATA)" in capsys.readouterr().err


class StartingWorker:
    """A worker process as compare() sees it while it starts: ready (from its tree) or dead."""

    def __init__(self, tree, ready):
        self.stdout = io.StringIO(f"ready {tree}/fastnn/__init__.py\n" if ready else "")
        self.stdin = io.StringIO()

    def wait(self, timeout=None):
        return 0


@pytest.mark.parametrize("ready, failed_side", [((False, True), 0), ((True, False), 1), ((False, False), 1)])
def test_a_side_that_cannot_start_is_reported_heads_first(tmp_path, monkeypatch, ready, failed_side):
    trees = [tmp_path / "base", tmp_path / "head"]
    workers = iter(StartingWorker(tree, r) for tree, r in zip(trees, ready))
    monkeypatch.setattr(regression, "start_worker", lambda tree, data: next(workers))
    with pytest.raises(regression.WorkerError, match="failed to start") as error:
        regression.compare(trees, "data", rounds=1, budget=10)
    assert error.value.side == failed_side


def test_a_worker_importing_another_fastnn_is_refused(tmp_path, monkeypatch):
    workers = iter([StartingWorker(tmp_path / "base", True), StartingWorker(tmp_path / "elsewhere", True)])
    monkeypatch.setattr(regression, "start_worker", lambda tree, data: next(workers))
    with pytest.raises(regression.WorkerError, match="imported fastnn from .*elsewhere.*not from its tree"):
        regression.compare([tmp_path / "base", tmp_path / "head"], "data", rounds=1, budget=10)


@pytest.fixture
def data(tmp_path, monkeypatch):
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "data"))


@pytest.mark.parametrize("side, status, stream, message", [
    (0, 0, "out", "skipped: BASE "), (1, 1, "err", "error: the worker of HEAD"),
])
def test_a_base_that_cannot_train_skips_a_head_that_cannot_fails(repo, data, monkeypatch, capsys,
                                                                 side, status, stream, message):
    def compare(trees, data, rounds, budget):
        assert [(tree / "fastnn" / "__init__.py").read_text() for tree in trees] == ["V = 1\n", "V = 2\n"]
        raise regression.WorkerError(side, f"the worker of {regression.SIDES[side]} stopped")
    monkeypatch.setattr(regression, "compare", compare)
    assert regression.main(["HEAD~1", "HEAD", "--repo", str(repo)]) == status
    assert message in getattr(capsys.readouterr(), stream)


def test_the_verdict_decides_the_exit_status(repo, data, monkeypatch, capsys):
    base = list(drifting_machine(4))
    slower = {"784-128-10 adam"}

    def compare(trees, data, rounds, budget):  # seconds[side][shape]; the shapes in ``slower`` take 1.5x
        return [[base for _ in regression.SHAPES],
                [[t * (1.5 if shape.name in slower else 1.0) for t in base] for shape in regression.SHAPES]]
    monkeypatch.setattr(regression, "compare", compare)
    assert regression.main(["HEAD~1", "HEAD", "--repo", str(repo)]) == 1
    out = capsys.readouterr().out
    assert "bench.regression: REGRESSION in 784-128-10 adam (" in out
    slower.clear()
    assert regression.main(["HEAD~1", "HEAD", "--repo", str(repo)]) == 0
    assert "bench.regression: no regression (" in capsys.readouterr().out
