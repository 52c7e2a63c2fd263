"""bench.asv_history: which commits it benchmarks, and the asv commands it runs for each (asv
itself is not run here: the commands are recorded)."""

import pathlib
import subprocess

import pytest

from bench import asv_history, regression


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "init.defaultBranch=main",
                    *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """main: three commits of fastnn/__init__.py (V = 1, 2, 3), the second a merge of a side branch."""
    root = tmp_path / "repo"
    (root / "fastnn").mkdir(parents=True)
    git("init", "-q", cwd=root)
    (root / "fastnn" / "__init__.py").write_text("V = 1\n")
    git("add", ".", cwd=root)
    git("commit", "-q", "-m", "one", cwd=root)
    git("checkout", "-q", "-b", "side", cwd=root)
    (root / "side.txt").write_text("side\n")
    git("add", ".", cwd=root)
    git("commit", "-q", "-m", "side", cwd=root)
    git("checkout", "-q", "main", cwd=root)
    (root / "fastnn" / "__init__.py").write_text("V = 2\n")
    git("add", ".", cwd=root)
    git("commit", "-q", "-m", "two", cwd=root)
    git("merge", "-q", "--no-edit", "side", cwd=root)
    (root / "fastnn" / "__init__.py").write_text("V = 3\n")
    git("add", ".", cwd=root)
    git("commit", "-q", "-m", "three", cwd=root)
    monkeypatch.setattr(asv_history, "REPO", root)
    return root


@pytest.fixture
def commands(monkeypatch, tmp_path):
    """The asv commands run, with the ASV_PYTHONPATH of each; and bench.asv_offline's runs. The
    machine is described (~/.asv-machine.json)."""
    (tmp_path / ".asv-machine.json").write_text("{}")
    monkeypatch.setattr(asv_history.pathlib.Path, "home", lambda: tmp_path)
    calls = []
    monkeypatch.setattr(asv_history, "asv",
                        lambda *args, env=None: calls.append((args, (env or {}).get("ASV_PYTHONPATH"))) or 0)
    monkeypatch.setattr(asv_history.asv_offline, "main", lambda argv: calls.append(("offline", argv)) or 0)
    return calls


def test_last_commits_follow_first_parents_oldest_first(repo):
    commits = asv_history.last_commits(repo, "main", 3)
    assert commits == [regression.resolve(repo, rev) for rev in ("main~2", "main~1", "main")]
    assert regression.resolve(repo, "side") not in commits
    assert asv_history.last_commits(repo, "main", 10)[0] == regression.resolve(repo, "main~3")


def test_each_commit_runs_from_its_own_files_then_the_report(repo, commands):
    assert asv_history.main(["-n", "2", "--bench", "Import", "--show-stderr"]) == 0
    runs = [c for c in commands if c[0][0] == "run"]
    expected = [regression.resolve(repo, rev) for rev in ("main~1", "main")]
    assert [r[0] for r in runs] == [("run", "--python=same", "--set-commit-hash", commit, "--bench", "Import",
                                     "--show-stderr") for commit in expected]
    trees = [r[1] for r in runs]
    assert [(pathlib.Path(tree) / "fastnn" / "__init__.py").read_text() for tree in trees] == ["V = 2\n", "V = 3\n"]
    assert commands[-2:] == [(("publish",), None), ("offline", [])]


def test_no_publish_and_named_commits(repo, commands):
    assert asv_history.main(["--commits", "main~3", "--no-publish"]) == 0
    assert commands == [(("run", "--python=same", "--set-commit-hash", regression.resolve(repo, "main~3")),
                         str(repo / ".asv" / "commits" / regression.resolve(repo, "main~3")))]


def test_an_unknown_commit_is_an_error(repo, commands, capsys):
    assert asv_history.main(["--commits", "no-such-commit"]) == 1
    assert "error: unknown commit no-such-commit" in capsys.readouterr().err
    assert not [c for c in commands if c[0][0] == "run"]


def test_a_failed_run_fails_after_the_others(repo, monkeypatch, capsys):
    runs = []

    def asv(*args, env=None):
        runs.append(args)
        return 1 if args[0] == "run" and [a[0] for a in runs].count("run") == 1 else 0  # the first run fails
    monkeypatch.setattr(asv_history, "asv", asv)
    monkeypatch.setattr(asv_history.asv_offline, "main", lambda argv: 0)
    monkeypatch.setattr(asv_history.pathlib.Path, "home", lambda: repo)  # no machine file: asv machine runs first
    assert asv_history.main(["-n", "2"]) == 1
    assert [a[0] for a in runs] == ["machine", "run", "run", "publish"]
    assert f"asv run failed for {regression.resolve(repo, 'main~1')[:10]}" in capsys.readouterr().err
