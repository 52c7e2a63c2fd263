"""Model files: a versioned .npz that loads without executing code, written atomically.

Format (version 1): an uncompressed NumPy .npz holding
  - ``params``: the flat parameter buffer (float32 or float64);
  - any further named arrays (optimizer state, for checkpoints);
  - ``meta``: UTF-8 JSON as a uint8 array: {"format": "fastnn-model", "version": 1,
    "fastnn": version, "model": {sizes, activation, init, seed, dtype}, "rng": generator state,
    "extra": {...}, "sha256": checksum of every array's dtype, shape and bytes}.
It is read with ``allow_pickle=False``: an object array (a pickle) is refused, never executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelFileError

FORMAT = "fastnn-model"
VERSION = 1


def checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over each array's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def atomic_write(path: Path, write) -> None:
    """Call write(file) on a temporary file beside ``path``, fsync it, then rename it into place.

    A crash, a kill or a full disk part-way leaves the previous file at ``path`` untouched.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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


def save_arrays(path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write ``arrays`` and ``meta`` (JSON-able) as a model file, atomically."""
    for name, a in arrays.items():
        if name == "meta" or a.dtype == object:
            raise ValueError(f"cannot store array {name!r}")
    meta = {"format": FORMAT, "version": VERSION, **meta, "sha256": checksum(arrays)}
    payload = dict(arrays, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    try:
        atomic_write(Path(path), lambda f: np.savez(f, **payload))
    except OSError as e:
        raise ModelFileError(f"could not save {path}: {e.strerror or e}") from e


def load_arrays(path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a model file; every problem is a ModelFileError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
            raise ModelFileError(f"model file {path} is not a fastnn model (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise ModelFileError(f"model file {path} holds a pickled object; refused (it could run code)") from e
        raise ModelFileError(f"model file {path} is corrupt: {e}") from e
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise ModelFileError(f"model file {path} is not a readable fastnn model (truncated or corrupt)") from e
    if "meta" not in arrays:
        raise ModelFileError(f"model file {path} has no metadata: not a fastnn model")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"model file {path} has corrupt metadata") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"model file {path} is not a fastnn model")
    if meta.get("version") != VERSION:
        raise ModelFileError(f"model file {path} has format version {meta.get('version')!r}; "
                             f"this fastnn reads version {VERSION}")
    if meta.get("sha256") != checksum(arrays):
        raise ModelFileError(f"model file {path} fails its checksum: it was modified or damaged")
    return arrays, meta
