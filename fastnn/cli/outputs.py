"""The files `fastnn train` writes (--out, --metrics, the checkpoint): checked and locked before
it trains, so that no finished training is lost to an output problem, and two runs never write
the same file."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..errors import FastnnError

try:
    import fcntl
except ImportError:  # Windows has none: outputs are checked there, not locked
    fcntl = None


def checkpoint_path(config) -> str:
    """--checkpoint, else OUT.ckpt.npz beside --out, else fastnn-checkpoint.npz here."""
    if config["checkpoint"]:
        return config["checkpoint"]
    if config["out"]:
        out = Path(config["out"])
        return str(out.with_name(out.name.removesuffix(".npz") + ".ckpt.npz"))
    return str(Path("fastnn-checkpoint.npz").absolute())


def outputs(config) -> dict[str, str]:
    """The files this run writes, by option. The checkpoint counts when asked for (--checkpoint,
    --checkpoint-every) or beside --out; the default one (fastnn-checkpoint.npz, written only
    on Ctrl-C) does not, so that runs without files never exclude each other."""
    files = {f"--{name}": config[name] for name in ("out", "metrics") if config[name]}
    if config["checkpoint"] or config["checkpoint-every"] or config["out"]:
        files["--checkpoint"] = checkpoint_path(config)
    return files


@contextlib.contextmanager
def claimed(files: dict[str, str]):
    """Check that each file can be written (check_output) and lock it (lock_output) for the
    ``with`` block: a problem shows before training, not after it."""
    with contextlib.ExitStack() as locks:
        seen = set()
        for option, path in files.items():
            target = Path(path).absolute()
            if target in seen:
                continue
            seen.add(target)
            check_output(target, option)
            locks.enter_context(lock_output(target, option))
        yield


def check_output(target: Path, option: str) -> None:
    """FastnnError unless ``target`` is not a folder and its folder exists (created if missing)."""
    if target.is_dir():
        raise FastnnError(f"{option} {target} is a folder; give a file name")
    from .main import make_dir

    try:
        make_dir(target.parent)
    except FastnnError as e:
        raise FastnnError(f"{option} {target} cannot be written: {e}") from None


def lock_file(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


@contextlib.contextmanager
def lock_output(target: Path, option: str):
    """Hold an exclusive lock on ``target`` (flock on .NAME.lock beside it) for the ``with`` block.

    Creating the lock file also proves that the folder takes new files. A second run that wants
    the same file fails at once; the lock dies with its process, so it is never stale. The lock
    file is removed at the end, so an opener re-checks that it locked the file still in place.
    """
    lock = lock_file(target)
    fd = _open_locked(lock, target, option)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        pass  # the number is only for the other run's message
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # while still holding it: see above
        os.close(fd)


def _open_locked(lock: Path, target: Path, option: str) -> int:
    """A descriptor of ``lock`` holding its flock; FastnnError if the folder takes no files or
    another process holds it."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise FastnnError(f"{option} {target} cannot be written: its folder {target.parent} takes no "
                              f"new files ({e.strerror or e})") from None
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise FastnnError(f"{option} {target} is in use by another fastnn train{holder}, which holds "
                              f"{lock}: wait for it to end, or choose another {option}") from None
        except OSError:  # a file system without flock: write unlocked rather than not at all
            return fd
        if _still_in_place(fd, lock):
            return fd
        os.close(fd)  # its holder removed it between our open and our lock: lock the new one


def _still_in_place(fd: int, lock: Path) -> bool:
    try:
        now = os.stat(lock)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)


def _lock_holder(fd: int) -> str:
    """' (process N)', N read from the lock file; '' while it holds no number yet."""
    try:
        text = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (process {text})" if text.isdigit() else ""
