"""Model files: a versioned .npz that loads without executing code, written atomically.

Format (version 1): an uncompressed NumPy .npz (np.savez: a zip archive of stored NAME.npy members)
holding
  - ``params``: the flat parameter buffer (float32 or float64);
  - any further named arrays (optimizer state, for checkpoints);
  - ``meta``: UTF-8 JSON as a uint8 array: {"format": "fastnn-model", "version": 1,
    "fastnn": version, "model": {sizes, activation, output, dropout, init, seed, dtype},
    "rng": generator state, "training": {epochs_trained, position, optimizer}, "extra": {...},
    "sha256": checksum of every array's dtype, shape and bytes}. MLP.load checks each field.

Reading trusts nothing in the file (the checksum detects damage, not a forger): only a regular
file is opened; the zip's central directory, its members (unique NAME.npy names, stored, not
compressed) and their declared sizes are checked against the file's size, and each .npy header
(bounded length; plain numbers, no objects; shape times item size equal to the member's size)
before anything is allocated or read, so memory stays within the file's size. Each array is read
once. The metadata's length and nesting depth are bounded before it is parsed. Object arrays
(pickles) are refused, never executed. Every problem is a ModelFileError naming the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import reprlib
import secrets
import stat
import struct
import time
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
from numpy.lib import format as npy_format

from .errors import ModelFileError

try:
    import fcntl
except ImportError:  # not POSIX: saves take no lock, and stale temporary files are left alone
    fcntl = None

FORMAT = "fastnn-model"
VERSION = 1

MAX_MEMBERS = 64  # params, optimizer state and meta are 4
MAX_CENTRAL_DIRECTORY_BYTES = 64 * 1024  # far above what MAX_MEMBERS short names take
MAX_NPY_HEADER_BYTES = 1024  # np.save writes 128 bytes for the arrays stored here
MAX_DIMENSIONS = 32
MAX_META_BYTES = 8 * 1024 * 1024  # a history of tens of thousands of epochs
MAX_META_DEPTH = 32  # fastnn writes 6 levels
ARRAY_KINDS = "biuf"  # booleans, integers and floats of at most 8 bytes
MEMBER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\.npy")
READ_CHUNK = 1 << 20

# Temporary files of atomic_write: ".NAME." + 8 random characters + ".tmp" (tempfile's alphabet,
# so that temporary files of earlier fastnn versions, made by tempfile.mkstemp, match too).
TEMP_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"
STALE_TEMP_SECONDS = 60.0


def brief(value: Any, limit: int = 100) -> str:
    """A short one-line repr of a value read from a file, for messages: nested and long values
    are cut short (a hostile file may hold megabytes where a number belongs)."""
    shorten = reprlib.Repr()
    shorten.maxlevel, shorten.maxstring, shorten.maxlong, shorten.maxother = 3, limit, 40, limit
    shorten.maxlist = shorten.maxtuple = shorten.maxdict = shorten.maxset = 8
    text = shorten.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over each array's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


# -- writing ----------------------------------------------------------------------------------------

def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Call write(file) on a temporary file beside ``path``, fsync it, then rename it into place.

    A crash, a kill or a full disk part-way leaves the previous file at ``path`` untouched. The
    file gets the mode the umask gives new files (0666 & ~umask), as ``open`` would.

    The save holds an exclusive lock (flock) on its temporary file until the rename. A killed save
    leaves its temporary file behind, unlocked (the kernel drops a dead process's locks, even
    after kill -9); the next save to the same path deletes it (see remove_stale_temps).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    remove_stale_temps(path)
    fd, tmp = _create_temp(folder, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            _lock(f.fileno())
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)  # while still locked: no other save takes it for abandoned
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _create_temp(folder: Path, name: str) -> tuple[int, Path]:
    """A new temporary file for ``name`` in ``folder``, opened for writing, with mode 0666 less
    the umask (the kernel applies it; tempfile.mkstemp would give 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = folder / f".{name}.{''.join(secrets.choice(TEMP_ALPHABET) for _ in range(8))}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name for {folder / name}")


def _lock(fd: int) -> None:
    """Mark a temporary file as in use by a live save (best effort: a file system without locks
    leaves it to the age rule of remove_stale_temps)."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass


def remove_stale_temps(path: Path) -> None:
    """Delete the temporary files that killed saves to ``path`` left beside it.

    The rule: a file is deleted when its name is one of this path's temporary names
    (".NAME.XXXXXXXX.tmp", 8 characters of TEMP_ALPHABET: no other path's temporary file and no
    other file fastnn writes has such a name), it is a regular file, no process holds its lock
    (a live save holds it from just after creating the file until the rename), and it has not
    been modified for STALE_TEMP_SECONDS (a save creates its file and locks it microseconds
    apart; the margin also spares writers that take no lock, whose writes keep the file fresh).
    A concurrent save is therefore never broken. Best effort: a file that cannot be opened,
    locked or deleted (another user's, a file system without locks) is left alone.
    """
    if fcntl is None:
        return
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[{TEMP_ALPHABET}]{{8}}\.tmp")
    try:
        with os.scandir(folder) as entries:
            stale = [Path(entry.path) for entry in entries if pattern.fullmatch(entry.name)]
    except OSError:
        return
    for tmp in stale:
        _remove_if_abandoned(tmp)


def _remove_if_abandoned(tmp: Path) -> None:
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode) or time.time() - found.st_mtime < STALE_TEMP_SECONDS:
            return
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a live save holds it
        if os.path.samestat(found, os.lstat(tmp)):
            os.unlink(tmp)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_arrays(path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write ``arrays`` and ``meta`` (JSON-able) as a model file, atomically."""
    for name, a in arrays.items():
        if name == "meta" or not MEMBER_NAME.fullmatch(f"{name}.npy") or a.dtype.kind not in ARRAY_KINDS:
            raise ValueError(f"cannot store array {name!r}")
    meta = {"format": FORMAT, "version": VERSION, **meta, "sha256": checksum(arrays)}
    payload = dict(arrays, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    try:
        atomic_write(Path(path), lambda f: np.savez(f, **payload))
    except OSError as e:
        raise ModelFileError(f"could not save {path}: {e.strerror or e}") from e


# -- reading ----------------------------------------------------------------------------------------

def load_arrays(path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a model file: (arrays, metadata), the metadata's format, version and
    checksum checked. Every problem is a ModelFileError naming the file; memory stays within the
    file's size plus the parsed metadata."""
    path = Path(path)
    with _open_regular_file(path) as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
            raise ModelFileError(f"model file {path} is not a fastnn model (not an .npz archive)")
        try:
            _check_central_directory(f, size, path)
            with zipfile.ZipFile(f) as archive:
                members = _checked_members(archive, size, path)
                arrays = {info.filename[:-len(".npy")]: _read_array(archive, info, path) for info in members}
        except ModelFileError:
            raise
        except OSError as e:
            raise ModelFileError(f"could not read model file {path}: {e.strerror or e}") from e
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, KeyError, IndexError,
                struct.error, NotImplementedError, RuntimeError, OverflowError) as e:
            raise ModelFileError(f"model file {path} is not a readable fastnn model (truncated or corrupt)") from e
    meta = _parse_meta(arrays.pop("meta", None), path)
    version = meta.get("version")
    if type(version) is not int or version != VERSION:
        raise ModelFileError(f"model file {path} has format version {brief(version)}; "
                             f"this fastnn reads version {VERSION}")
    if meta.get("sha256") != checksum(arrays):
        raise ModelFileError(f"model file {path} fails its checksum: it was modified or damaged")
    return arrays, meta


def _open_regular_file(path: Path) -> BinaryIO:
    """``path`` opened for reading if it is a regular file (a symbolic link is followed): never a
    directory, and never a FIFO or device, whose reads could block or never end."""
    try:
        _require_regular_file(os.stat(path), path)
        # O_NONBLOCK: should a FIFO replace the file after the check, opening it does not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
                     | getattr(os, "O_BINARY", 0))
    except FileNotFoundError as e:
        raise ModelFileError(f"model file {path} does not exist") from e
    except OSError as e:
        raise ModelFileError(f"could not read model file {path}: {e.strerror or e}") from e
    try:
        _require_regular_file(os.fstat(fd), path)  # the file opened: it may have been swapped since
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _require_regular_file(found: os.stat_result, path: Path) -> None:
    if stat.S_ISDIR(found.st_mode):
        raise ModelFileError(f"model file {path} is a directory, not a model file")
    if not stat.S_ISREG(found.st_mode):
        raise ModelFileError(f"model file {path} is not a regular file (a FIFO, device or socket)")


def _check_central_directory(f: BinaryIO, size: int, path: Path) -> None:
    """Bound the zip's central directory before zipfile parses it into an object per entry.

    Its size is read from the end record found as zipfile finds it: at the very end, else the
    last signature in the final 64 KiB (a comment may follow), and from the zip64 end record when
    a zip64 locator precedes it. Without an end record zipfile refuses the file itself."""
    tail_size = min(size, 22 + (1 << 16))
    f.seek(size - tail_size)
    tail = f.read(tail_size)
    at = len(tail) - 22
    if not (at >= 0 and tail[at:at + 4] == b"PK\x05\x06" and tail[-2:] == b"\0\0"):
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or at + 22 > len(tail):
            return
    declared = struct.unpack_from("<I", tail, at + 12)[0]
    end_record = size - tail_size + at
    if end_record >= 20 + 56:
        f.seek(end_record - 20)
        if f.read(4) == b"PK\x06\x07":
            f.seek(end_record - 20 - 56)
            record = f.read(56)
            if record[:4] == b"PK\x06\x06":
                declared = struct.unpack_from("<Q", record, 40)[0]
    if declared > MAX_CENTRAL_DIRECTORY_BYTES:
        raise ModelFileError(f"model file {path} declares a zip directory of {declared:,} bytes: far more "
                             f"members than a fastnn model holds")


def _checked_members(archive: zipfile.ZipFile, size: int, path: Path) -> list[zipfile.ZipInfo]:
    """The archive's members, checked to be what np.savez writes (unique NAME.npy, stored) and
    to declare no more bytes than the file holds."""
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise ModelFileError(f"model file {path} holds {len(members):,} members; a fastnn model holds "
                             f"at most {MAX_MEMBERS}")
    seen = set()
    for info in members:
        name = info.filename
        if not MEMBER_NAME.fullmatch(name):
            raise ModelFileError(f"model file {path} holds an unexpected member {brief(name)}: a fastnn model "
                                 f"holds only NAME.npy arrays")
        if name in seen:
            raise ModelFileError(f"model file {path} holds two members named {name}")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise ModelFileError(f"model file {path}: its member {name} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ModelFileError(f"model file {path}: its member {name} is compressed; fastnn model files "
                                 f"are uncompressed archives (np.savez)")
        if info.file_size != info.compress_size or info.header_offset + info.compress_size > size:
            raise ModelFileError(f"model file {path}: its member {name} declares {info.file_size:,} bytes, "
                                 f"more than the file's {size:,} hold")
    declared = sum(info.file_size for info in members)
    if declared > size:
        raise ModelFileError(f"model file {path}: its members declare {declared:,} bytes in all, more than "
                             f"the file's {size:,}")
    return members


def _read_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One member's array: its .npy header checked, then its data read once, into the array."""
    with archive.open(info) as member:
        shape, fortran_order, dtype, header_size = _read_npy_header(member, info.filename, path)
        nbytes = _checked_array_size(shape, dtype, info, header_size, path)
        data = bytearray(nbytes)
        view, at = memoryview(data), 0
        while at < nbytes:
            got = member.readinto(view[at:at + READ_CHUNK])
            if not got:
                raise EOFError(f"{info.filename} ends early")
            at += got
        member.read(1)  # reaching its end makes zipfile check its CRC (BadZipFile if damaged)
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def _read_npy_header(member: BinaryIO, name: str, path: Path) -> tuple[tuple, bool, np.dtype, int]:
    """(shape, fortran_order, dtype, bytes before the data) of a .npy member. Its length is read
    and bounded first: numpy would read a header of any declared length before judging it."""
    magic = member.read(8)
    if len(magic) != 8 or magic[:6] != b"\x93NUMPY" or magic[6:] not in (b"\x01\x00", b"\x02\x00"):
        raise ModelFileError(f"model file {path}: its member {name} is not a .npy array (format 1 or 2)")
    length_format = "<H" if magic[6] == 1 else "<I"
    length_field = member.read(struct.calcsize(length_format))
    if len(length_field) != struct.calcsize(length_format):
        raise EOFError(f"{name} ends in its header")
    length = struct.unpack(length_format, length_field)[0]
    if length > MAX_NPY_HEADER_BYTES:
        raise ModelFileError(f"model file {path}: its member {name} has a .npy header of {length:,} bytes "
                             f"(at most {MAX_NPY_HEADER_BYTES:,})")
    header = member.read(length)
    if len(header) != length:
        raise EOFError(f"{name} ends in its header")
    read_header = npy_format.read_array_header_1_0 if magic[6] == 1 else npy_format.read_array_header_2_0
    try:
        shape, fortran_order, dtype = read_header(io.BytesIO(length_field + header),
                                                  max_header_size=MAX_NPY_HEADER_BYTES)
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError) as e:
        raise ModelFileError(f"model file {path}: its member {name} has a corrupt .npy header") from e
    return shape, fortran_order, dtype, len(magic) + len(length_field) + length


def _checked_array_size(shape: tuple, dtype: np.dtype, info: zipfile.ZipInfo, header_size: int,
                        path: Path) -> int:
    """The array's size in bytes, computed from its header (Python integers: no overflow) and
    checked against the member's size before anything is allocated."""
    name = info.filename
    if dtype.hasobject:
        raise ModelFileError(f"model file {path} holds a pickled object; refused (it could run code)")
    if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None \
            or dtype.itemsize > 8:
        raise ModelFileError(f"model file {path}: its member {name} holds {brief(str(dtype))} values; "
                             f"fastnn stores plain numbers")
    if len(shape) > MAX_DIMENSIONS or not all(type(n) is int and n >= 0 for n in shape):
        raise ModelFileError(f"model file {path}: its member {name} has an invalid shape {brief(shape)}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != info.file_size - header_size:
        raise ModelFileError(f"model file {path}: its member {name} declares a {brief(shape)} array of "
                             f"{dtype} ({nbytes:,} bytes) but holds {max(info.file_size - header_size, 0):,} bytes")
    if name == "meta.npy" and nbytes > MAX_META_BYTES:
        raise ModelFileError(f"model file {path} has {nbytes:,} bytes of metadata (at most {MAX_META_BYTES:,})")
    return nbytes


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as int8
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[{]}")


def json_depth(text: bytes) -> int:
    """How deeply arrays and objects nest in JSON ``text``, counted without parsing it (the
    parser recurses once per level): the running count of brackets outside strings."""
    brackets = _JSON_STRING.sub(b'""', text).translate(_BRACKET_STEPS, _NOT_BRACKETS)
    return int(np.cumsum(np.frombuffer(brackets, dtype=np.int8), dtype=np.int64).max(initial=0))


def _parse_meta(raw: np.ndarray | None, path: Path) -> dict[str, Any]:
    """The metadata member: UTF-8 JSON of bounded depth, an object of this format."""
    if raw is None:
        raise ModelFileError(f"model file {path} has no metadata: not a fastnn model")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError(f"model file {path} has corrupt metadata (not UTF-8 bytes)")
    text = raw.tobytes()
    if json_depth(text) > MAX_META_DEPTH:
        raise ModelFileError(f"model file {path} has metadata nested more than {MAX_META_DEPTH} levels deep")
    try:
        meta = json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSONDecodeError, a 5,000-digit number
        raise ModelFileError(f"model file {path} has corrupt metadata") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"model file {path} is not a fastnn model")
    return meta
