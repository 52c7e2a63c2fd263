"""Loading MNIST-style digit data: IDX files (raw or gzip), Kaggle-style CSV, and downloading MNIST.

Every problem with the data itself is reported as :class:`fastnn.errors.DataError`, with a
one-sentence message that names the file and says what is wrong.

Public API:

* :func:`read_idx` - one IDX file (uint8 only) -> ``np.ndarray`` of the header's shape.
* :func:`read_csv` - Kaggle "Digit Recognizer" CSV -> ``(X, y)`` (``y`` is None without labels).
* :class:`MNIST`, :func:`find_mnist`, :func:`load_mnist`, :func:`download_mnist`.
* :func:`load_dataset` - the one entry point behind the command line's ``--data PATH``.
* :func:`cache_dir` - where downloads go.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING, NamedTuple, Union

import numpy as np

from fastnn.data.checks import check_memory, regular_file
from fastnn.errors import DataError

if TYPE_CHECKING:  # pandas is imported lazily: its import is slow and most imports never need it
    import pandas as pd

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "MNIST",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MNIST_SHA256",
    "cache_dir",
    "download_mnist",
    "find_mnist",
    "load_dataset",
    "load_mnist",
    "read_csv",
    "read_idx",
]

# --------------------------------------------------------------------------- IDX files

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_TYPE_NAMES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short",
                   0x0C: "int", 0x0D: "float", 0x0E: "double"}
#: Largest decompressed payload accepted from a gzip IDX file (its true size is unknown up front).
MAX_GZIP_IDX_BYTES = 2**31
#: Most bytes one byte of a gzip (deflate) stream can decompress to: a header that declares more
#: data than its file size allows is refused before anything is read.
MAX_DEFLATE_RATIO = 1032
_FIRST_ALLOC = 64 << 20  # allocate at most this much before the data proves it exists
_READ_CHUNK = 4 << 20


def read_idx(path: PathLike, *, max_bytes: int = MAX_GZIP_IDX_BYTES) -> np.ndarray:
    """Read an IDX file (raw, or gzip-compressed, detected by its magic bytes) of unsigned bytes.

    Only a regular file is read. The header is checked before any large allocation: a raw
    file must hold exactly the bytes its header declares; a gzip file may declare at most
    ``max_bytes`` of data, and no more than MAX_DEFLATE_RATIO times its own size, and is
    decompressed in chunks (so a lying header fails when the stream ends). Either way the
    declared data must fit in the memory this process can still allocate.

    Returns a C-contiguous ``uint8`` array with the shape from the header.
    Raises :class:`DataError` for a missing, special, malformed, truncated or over-long file.
    """
    p = _existing_file(path, "IDX file")
    try:
        with p.open("rb") as raw:
            size = os.fstat(raw.fileno()).st_size
            if raw.read(2) == _GZIP_MAGIC:
                raw.seek(0)
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    return _read_idx_stream(stream, p, file_size=size, compressed=True, max_bytes=max_bytes)
            raw.seek(0)
            return _read_idx_stream(raw, p, file_size=size, compressed=False, max_bytes=max_bytes)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"IDX file {p} is a truncated or corrupt gzip file ({e}).") from e
    except OSError as e:
        raise DataError(f"IDX file {p} could not be read ({e}).") from e


def _read_idx_stream(stream: IO[bytes], p: Path, *, file_size: int, compressed: bool,
                     max_bytes: int) -> np.ndarray:
    """Check the header, then read exactly the declared data."""
    magic = stream.read(4)
    if len(magic) < 4:
        raise DataError(f"IDX file {p} is too short to hold an IDX header ({len(magic)} bytes).")
    if magic[0] != 0 or magic[1] != 0:
        raise DataError(f"IDX file {p} does not start with the IDX magic number "
                        f"(two zero bytes, a type code and a dimension count): got {magic.hex()}.")
    type_code, ndim = magic[2], magic[3]
    if type_code != 0x08:
        kind = _IDX_TYPE_NAMES.get(type_code, "unknown")
        raise DataError(f"IDX file {p} has type code 0x{type_code:02X} ({kind}), which is "
                        f"unsupported: only 0x08 (unsigned byte) can be read.")
    if not 1 <= ndim <= 4:
        raise DataError(f"IDX file {p} declares {ndim} dimensions, but only 1 to 4 are supported.")
    dim_bytes = stream.read(4 * ndim)
    if len(dim_bytes) < 4 * ndim:
        raise DataError(f"IDX file {p} ends inside its header (the dimension sizes are cut off).")
    shape = tuple(int.from_bytes(dim_bytes[4 * i:4 * i + 4], "big") for i in range(ndim))
    total = 1
    for d in shape:
        total *= d  # Python ints: no overflow for a header claiming terabytes

    if not compressed:  # the file size tells the truth before we allocate
        payload = file_size - 4 - 4 * ndim
        if total > payload:
            raise DataError(f"IDX file {p} is truncated: its header declares shape {shape} "
                            f"({total} bytes of data) but the file holds only {payload}.")
        if total < payload:
            raise DataError(f"IDX file {p} has {payload - total} trailing byte(s) after the "
                            f"{total} bytes of data that its header (shape {shape}) declares.")
    elif total > max_bytes:
        raise DataError(f"IDX file {p} declares shape {shape} ({total} bytes of data), more than "
                        f"the {max_bytes}-byte limit for a compressed IDX file.")
    elif total > MAX_DEFLATE_RATIO * file_size:
        raise DataError(f"IDX file {p} is truncated or corrupt: its header declares shape {shape} "
                        f"({total} bytes of data), more than a gzip file of {file_size} bytes can hold "
                        f"(at most {MAX_DEFLATE_RATIO} times its size).")
    check_memory(total, f"IDX file {p} (its header declares shape {shape}, {total:,} bytes)")

    data = _read_exactly(stream, total, p, shape)
    if stream.read(1):  # also makes gzip check its CRC, which happens only at end of stream
        raise DataError(f"IDX file {p} has trailing data after the {total} bytes that its "
                        f"header (shape {shape}) declares.")
    return data.reshape(shape)


def _read_exactly(stream: IO[bytes], total: int, p: Path, shape: tuple[int, ...]) -> np.ndarray:
    """Read ``total`` bytes in chunks into a buffer that grows only as the data really arrives.

    The buffer grows in place (realloc), so reading never holds two copies of the data.
    """
    filled = 0
    try:
        buf = np.empty(min(total, _FIRST_ALLOC), dtype=np.uint8)
        while filled < total:
            if filled == buf.size:
                buf.resize(min(total, 2 * buf.size), refcheck=False)
            with memoryview(buf) as whole, whole[filled:min(buf.size, filled + _READ_CHUNK)] as window:
                n = stream.readinto(window)  # type: ignore[attr-defined]
            if not n:
                raise DataError(f"IDX file {p} is truncated: its header declares shape {shape} "
                                f"({total} bytes of data) but the data ends after {filled} bytes.")
            filled += n
    except MemoryError:
        raise DataError(f"IDX file {p}: not enough memory to read the {total:,} bytes its header "
                        f"declares (shape {shape}); memory ran out after {filled:,}.") from None
    return buf


# --------------------------------------------------------------------------- CSV files

#: Longest header line of a CSV file (room for about 95,000 pixel columns).
MAX_CSV_HEADER_BYTES = 1 << 20
#: Most cells (rows x header columns) read from a gzip CSV file, whose decompressed size is
#: unknown up front: the same 2 GiB of uint8 as MAX_GZIP_IDX_BYTES.
MAX_GZIP_CSV_CELLS = 2**31
#: Longest data row, in bytes per header column ("255," takes 4): pandas holds a chunk of rows
#: as text, so this keeps that text a small multiple of the chunk's values.
MAX_CSV_BYTES_PER_CELL = 16
_INT_TEXT = re.compile(r"\s*[+-]?\d+\s*", re.ASCII)  # ASCII: int() rejects "\x1c1", which \s would pass
_TOKENIZE_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def read_csv(path: PathLike, *, chunksize: int = 10_000,
             max_cells: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a Kaggle "Digit Recognizer" CSV (``.csv`` or gzip ``.csv.gz``, detected by magic bytes).

    The header must be ``label,pixel0,...,pixel{n-1}`` (or, as in Kaggle's test.csv, just
    ``pixel0,...``), with ``n >= 1``, on one line of at most MAX_CSV_HEADER_BYTES. Every cell
    must be an integer in 0..255, and no row longer than MAX_CSV_BYTES_PER_CELL bytes per
    column. A gzip file may hold at most ``max_cells`` cells (default MAX_GZIP_CSV_CELLS),
    counted as its lines go by. Only a regular file is read. Its rows are parsed block by block
    straight into a growing ``uint8`` array (kernels/csv.py), so memory stays bounded by one
    block plus the uint8 result, which grows only while memory allows. A file with a line that
    is not plain digits and commas is read again by pandas, ``chunksize`` rows at a time, which
    takes what it can (spaces, quotes) and names the first bad cell.

    Returns ``(X, y)``: ``X`` is ``uint8`` of shape ``(rows, n)``; ``y`` is ``uint8`` of shape
    ``(rows,)``, or None when the file has no label column.
    Raises :class:`DataError` for a missing, special, malformed, out-of-range or over-long file.
    """
    if chunksize < 1:
        raise ValueError(f"chunksize must be at least 1, got {chunksize}")
    p = _existing_file(path, "CSV file")
    try:
        for careful in (False, True):
            with p.open("rb") as raw:
                compressed = raw.read(2) == _GZIP_MAGIC
                raw.seek(0)
                stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
                with stream:
                    columns = _csv_header(stream, p)
                    limit = (MAX_GZIP_CSV_CELLS if max_cells is None else max_cells) if compressed else None
                    max_line = MAX_CSV_BYTES_PER_CELL * len(columns) + 64
                    max_lines = None if limit is None else limit // len(columns)
                    if not careful:
                        values = _plain_csv_values(stream, p, columns, chunksize, max_line, max_lines, limit)
                        if values is not None:
                            return values
                        continue  # a line that is not plain digits: pandas reads it, or names what is wrong
                    rows = _BoundedLines(stream, p, max_line=max_line, max_lines=max_lines, first_line=2, limit=limit)
                    return _csv_values(rows, p, columns, chunksize)
        raise AssertionError("unreachable")  # pragma: no cover
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"CSV file {p} is a truncated or corrupt gzip file ({e}).") from e
    except OSError as e:
        raise DataError(f"CSV file {p} could not be read ({e}).") from e


class _BoundedLines:
    """The rest of a byte stream, as pandas reads it, with its lines counted and measured as
    they go by: DataError once a line is longer than ``max_line`` bytes or there are more than
    ``max_lines`` lines (None: no bound). pandas passes the error on unchanged.

    Reads return at most ``max_line`` bytes, so a line inside one read is never too long; only
    the line that runs across reads needs counting.
    """

    def __init__(self, stream: IO[bytes], p: Path, *, max_line: int, max_lines: int | None,
                 first_line: int, limit: int | None) -> None:
        self.stream, self.p, self.max_line, self.max_lines = stream, p, max_line, max_lines
        self.first_line, self.limit = first_line, limit
        self.lines = 0  # newlines read so far
        self.open_line = 0  # bytes read since the last newline

    def read(self, size: int = -1) -> bytes:
        block = self.stream.read(self.max_line if size is None or size < 0 else min(size, self.max_line))
        first = block.find(b"\n")
        if first < 0:
            self.open_line += len(block)
        else:
            self.open_line += first
            self._check_line_length()
            self.lines += block.count(b"\n")
            self.open_line = len(block) - block.rfind(b"\n") - 1
            if self.max_lines is not None and self.lines > self.max_lines:
                raise DataError(_too_many_cells(self.p, self.max_lines, self.limit))
        self._check_line_length()
        return block

    def _check_line_length(self) -> None:
        if self.open_line > self.max_line:
            raise DataError(f"CSV file {self.p} has a line longer than {self.max_line:,} bytes (line "
                            f"{self.first_line + self.lines}); a row may take at most "
                            f"{MAX_CSV_BYTES_PER_CELL} bytes per column of the header.")

    def __iter__(self):  # pandas takes only iterable file objects as files, then calls read()
        raise TypeError("read() only")


def _too_many_cells(p: Path, max_rows: int, limit: int | None) -> str:
    return (f"CSV file {p} decompresses to more than {max_rows:,} rows, over the limit of {limit:,} "
            f"cells (rows x columns) for a compressed CSV file (fastnn.data.datasets.MAX_GZIP_CSV_CELLS).")


def _csv_values(rows: _BoundedLines, p: Path, columns: list[str],
                chunksize: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse the data rows after the header into (X, y), checking every chunk."""
    import pandas as pd  # lazy: keeps `import fastnn` fast

    has_label = columns[0] == "label"
    n_pixels = len(columns) - has_label
    max_rows = rows.max_lines
    start = min(chunksize, 4096)  # small first guess: a big chunksize must not cost a small file
    X = np.zeros((start, n_pixels), dtype=np.uint8)
    y = np.zeros(start, dtype=np.uint8) if has_label else None
    n = 0
    try:
        with pd.read_csv(rows, header=None, chunksize=chunksize) as reader:
            for chunk in reader:
                values = _checked_chunk(chunk, p, columns, first_row=n + 1)
                k = len(values)
                if max_rows is not None and n + k > max_rows:  # a last line without a newline
                    raise DataError(_too_many_cells(p, max_rows, rows.limit))
                if n + k > len(X):  # grow geometrically; resize reallocates in place when it can
                    cap = max(2 * len(X), n + k)
                    cap = cap if max_rows is None else min(cap, max_rows)
                    check_memory((cap - len(X)) * (n_pixels + has_label),
                                 f"CSV file {p} beyond its first {n:,} rows")
                    X.resize((cap, n_pixels), refcheck=False)
                    if y is not None:
                        y.resize(cap, refcheck=False)
                X[n:n + k] = values[:, int(has_label):]
                if y is not None:
                    y[n:n + k] = values[:, 0]
                n += k
    except pd.errors.EmptyDataError:
        pass  # header only: reported below as "no data rows"
    except pd.errors.ParserError as e:
        raise DataError(_parser_error_message(p, len(columns), e, lines_before=1)) from e
    except UnicodeDecodeError as e:
        raise DataError(f"CSV file {p} is not UTF-8 text ({e.reason}).") from e
    except MemoryError:
        raise DataError(f"CSV file {p}: not enough memory to load it ({n:,} rows so far).") from None
    if n == 0:
        raise DataError(f"CSV file {p} has a header but no data rows.")
    X.resize((n, n_pixels), refcheck=False)
    if y is not None:
        y.resize(n, refcheck=False)
    return X, y


_CSV_BLOCK_BYTES = 1 << 22  # decompressed bytes per read of the one-pass parser


def _plain_csv_values(stream: IO[bytes], p: Path, columns: list[str], chunksize: int, max_line: int,
                      max_rows: int | None, limit: int | None) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The data rows after the header as (X, y), parsed a block of bytes at a time by
    kernels/csv.py into arrays that start at ``chunksize`` rows (at most 4,096) and grow as
    _csv_values' do; None at the first line that is not plain digits and commas, or when there
    is no data row (read_csv then reads the file with pandas, which says what is wrong)."""
    from ..kernels.codes import NOT_PLAIN
    from ..native.loader import kernel

    parse = kernel("parse_csv_rows")
    has_label = columns[0] == "label"
    n_pixels = len(columns) - has_label
    buf = bytearray(_CSV_BLOCK_BYTES + max_line + 1)
    view = np.frombuffer(buf, dtype=np.uint8)
    rows = min(chunksize, 4096) if max_rows is None else min(chunksize, 4096, max_rows)
    X = np.zeros((rows, n_pixels), dtype=np.uint8)
    y = np.zeros(rows if has_label else 0, dtype=np.uint8)
    out = np.zeros(3, dtype=np.int64)
    n, held, ended = 0, 0, False
    try:
        while not ended:
            got = stream.readinto(memoryview(buf)[held:held + _CSV_BLOCK_BYTES])
            ended, held = got == 0, held + got
            if ended and held and buf[held - 1] != 10:  # a last line without its newline
                buf[held] = 10
                held += 1
            start = 0
            while True:  # the block's complete lines, growing X and y as they fill
                parse(view[start:held], held - start, X, y, n, out)
                n, start = n + int(out[0]), start + int(out[1])
                if out[2] == NOT_PLAIN:
                    return None
                if n < len(X) or start == held:
                    break
                if max_rows is not None and n >= max_rows:
                    raise DataError(_too_many_cells(p, max_rows, limit))
                cap = 2 * len(X) if max_rows is None else min(2 * len(X), max_rows)
                check_memory((cap - len(X)) * (n_pixels + has_label), f"CSV file {p} beyond its first {n:,} rows")
                X.resize((cap, n_pixels), refcheck=False)
                if has_label:
                    y.resize(cap, refcheck=False)
            held -= start
            if held > max_line:
                return None  # longer than a plain row can be
            buf[:held] = buf[start:start + held]
    except MemoryError:
        raise DataError(f"CSV file {p}: not enough memory to load it ({n:,} rows so far).") from None
    if n == 0:
        return None
    X.resize((n, n_pixels), refcheck=False)
    if has_label:
        y.resize(n, refcheck=False)
    return X, (y if has_label else None)


def _csv_header(stream: IO[bytes], p: Path) -> list[str]:
    """Read and check the header line (the stream is left at the first data row); return its
    column names."""
    line = stream.readline(MAX_CSV_HEADER_BYTES + 1)
    if not line:
        raise DataError(f"CSV file {p} is empty.")
    if len(line) > MAX_CSV_HEADER_BYTES and not line.endswith(b"\n"):
        raise DataError(f"CSV file {p} has a header line longer than {MAX_CSV_HEADER_BYTES:,} bytes "
                        f"(the limit, about 95,000 pixel columns).")
    try:
        text = line.decode("utf-8-sig").strip()
    except UnicodeDecodeError as e:
        raise DataError(f"CSV file {p} has a header line that is not UTF-8 text.") from e
    columns = [c.strip().strip('"') for c in text.split(",")]
    if columns[0] not in ("label", "pixel0"):
        raise DataError(f"CSV file {p} has no valid header: expected 'label,pixel0,pixel1,...' "
                        f"but the first line starts with {text[:40]!r}.")
    pixels = columns[1:] if columns[0] == "label" else columns
    if not pixels:
        raise DataError(f"CSV file {p} has a label column but no pixel columns in its header.")
    for i, name in enumerate(pixels):
        if name != f"pixel{i}":
            raise DataError(f"CSV file {p} has the header column {name!r} where 'pixel{i}' was "
                            f"expected (the header must be label,pixel0,pixel1,...).")
    return columns


def _checked_chunk(chunk: pd.DataFrame, p: Path, columns: list[str], first_row: int) -> np.ndarray:
    """Return the chunk as int64 after checking its width, cell types and the 0..255 range."""
    if chunk.shape[1] != len(columns):
        # The width comes from the first data row; later rows that differ raise ParserError or
        # show up as missing cells.
        raise DataError(f"CSV file {p} has {chunk.shape[1]} cells in data row {first_row} but "
                        f"its header has {len(columns)} columns.")
    if all(dt == np.int64 for dt in chunk.dtypes):  # fast path: pandas parsed every cell as int
        values = chunk.to_numpy(dtype=np.int64)
        if values.min() >= 0 and values.max() <= 255:
            return values
    _raise_first_bad_cell(chunk, p, columns, first_row)
    raise AssertionError("unreachable")  # pragma: no cover


def _raise_first_bad_cell(chunk: pd.DataFrame, p: Path, columns: list[str], first_row: int) -> None:
    """Report the first bad cell, row by row: missing first, then non-integer, then out of range.

    The order matters because one missing cell turns its whole column into floats.
    """
    def fail(mask: np.ndarray, what: str) -> None:
        hits = np.argwhere(mask)  # row-major, so the first hit is the earliest row
        if len(hits):
            i, j = (int(k) for k in hits[0])
            where = f"in column '{columns[j]}' of data row {first_row + i}"
            value = chunk.iloc[i, j]
            if isinstance(value, np.generic):  # show 1.5, not np.float64(1.5)
                value = value.item()
            if what == "missing":
                raise DataError(f"CSV file {p} has a missing cell {where}.")
            if what == "non-integer":
                raise DataError(f"CSV file {p} has the non-integer value {value!r} {where}.")
            kind = "label" if columns[j] == "label" else "pixel"
            raise DataError(f"CSV file {p} has the value {int(value)} {where}, outside the "
                            f"{kind} range 0 to 255.")

    fail(chunk.isna().to_numpy(), "missing")
    fail(np.column_stack([_non_integer_mask(col) for _, col in chunk.items()]), "non-integer")
    fail(np.column_stack([_out_of_range_mask(col) for _, col in chunk.items()]), "range")
    # Every cell is an in-range integer, yet pandas did not parse the chunk as int64.
    raise DataError(f"CSV file {p} has cells that are not plain integers in data rows "
                    f"{first_row} to {first_row + len(chunk) - 1}.")


def _non_integer_mask(col: pd.Series) -> np.ndarray:
    """True where a (non-missing) cell is not an integer."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(col):
        return np.ones(len(col), dtype=bool)
    if pd.api.types.is_integer_dtype(col):
        return np.zeros(len(col), dtype=bool)
    if pd.api.types.is_float_dtype(col):
        v = col.to_numpy()
        fractional = v != np.floor(v)
        # All integral: the column was still written as floats ("2.0"), so every cell is suspect.
        return fractional if fractional.any() else np.ones(len(col), dtype=bool)
    return col.map(_is_non_integer_cell).to_numpy(dtype=bool)


def _is_non_integer_cell(v: object) -> bool:
    if isinstance(v, str):
        return _INT_TEXT.fullmatch(v) is None
    return not isinstance(v, int) or isinstance(v, bool)


def _out_of_range_mask(col: pd.Series) -> np.ndarray:
    """True where an integer cell is outside 0..255 (cells are known to be integers here)."""
    import pandas as pd

    if pd.api.types.is_integer_dtype(col):
        return ((col < 0) | (col > 255)).to_numpy(dtype=bool)
    return col.map(lambda v: not 0 <= int(v) <= 255).to_numpy(dtype=bool)


def _parser_error_message(p: Path, n_columns: int, e: Exception, lines_before: int) -> str:
    """Turn pandas' tokenizer error into one sentence about the file (pandas counts its lines
    after the ``lines_before`` it did not see)."""
    m = _TOKENIZE_ERROR.search(str(e))
    if m:
        expected, line, saw = (int(g) for g in m.groups())
        line += lines_before
        if expected != n_columns:  # pandas took its width from a short first data row
            return (f"CSV file {p} has {expected} cells in data row 1 but its header has "
                    f"{n_columns} columns.")
        return (f"CSV file {p} has {saw} cells on line {line} but its header has "
                f"{n_columns} columns.")
    detail = str(e).replace("Error tokenizing data. C error: ", "").strip()
    return f"CSV file {p} could not be parsed as CSV ({detail})."


# --------------------------------------------------------------------------- MNIST

#: The four MNIST IDX files, without the ``.gz`` suffix.
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
#: SHA-256 of the DECOMPRESSED files, as published with the data (and by the public mirrors).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: Base URLs that serve the four ``.gz`` files; tried in order, the first that works wins.
#: Override with ``mirrors=`` or the environment variable ``FASTNN_MNIST_MIRROR``
#: (one or more URLs separated by spaces or commas).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_MAX_DOWNLOAD_BYTES = 64 << 20  # largest MNIST file is 47 MB decompressed: stops a runaway server
_HELP = ("set FASTNN_DATA to a folder whose mnist/ subfolder holds the four IDX files "
         "(train-images-idx3-ubyte[.gz] etc.), or pass that folder as the path")


class MNIST(NamedTuple):
    """The MNIST train and test sets: images ``uint8 (n, 784)``, labels ``uint8 (n,)``."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def cache_dir() -> Path:
    """fastnn's cache folder.

    ``$FASTNN_CACHE`` if set, else ``$XDG_CACHE_HOME/fastnn``, else ``~/.cache/fastnn``.
    """
    if os.environ.get("FASTNN_CACHE"):
        return Path(os.environ["FASTNN_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "fastnn"


def find_mnist(path: PathLike | None = None) -> Path:
    """Return the folder that holds the four MNIST IDX files (each as ``name`` or ``name.gz``).

    With ``path``: only that folder or its ``mnist/`` subfolder is searched (a wrong explicit
    path is an error, never silently replaced). Without: ``$FASTNN_DATA/mnist``, then
    ``cache_dir()/mnist``. Raises :class:`DataError` listing every place searched.
    """
    places = _mnist_places(path)
    found = _first_complete(places)
    if found is None:
        raise DataError(_not_found_message(places, path))
    return found


def load_mnist(path: PathLike | None = None, *, download: bool = True,
               mirrors: tuple[str, ...] | list[str] | str | None = None,
               timeout: float = 30.0) -> MNIST:
    """Load MNIST, found as in :func:`find_mnist`; images flattened to ``uint8 (n, 784)``.

    When no ``path`` is given, nothing is found and ``download`` is true, the files are
    downloaded into ``cache_dir()/mnist`` first (see :func:`download_mnist`).
    Raises :class:`DataError` that says where it looked, why a download failed, and how to
    provide the files.
    """
    places = _mnist_places(path)
    folder = _first_complete(places)
    if folder is None:
        if path is not None or not download:
            raise DataError(_not_found_message(places, path))
        try:
            folder = download_mnist(mirrors=mirrors, timeout=timeout)
        except DataError as e:
            raise DataError(_not_found_message(places, path, download_error=str(e))) from e
    return _load_mnist_folder(folder)


def download_mnist(dest: PathLike | None = None, *,
                   mirrors: tuple[str, ...] | list[str] | str | None = None,
                   timeout: float = 30.0) -> Path:
    """Download the four MNIST ``.gz`` files into ``dest`` (default ``cache_dir()/mnist``).

    Files already present are kept. Each file is written to a temporary file in ``dest``,
    its decompressed SHA-256 checked against :data:`MNIST_SHA256`, fsynced, then renamed into
    place, so a failed or interrupted download never leaves a partial file under the final
    name. Returns ``dest``; raises :class:`DataError` when a file cannot be had from any mirror.
    """
    folder = Path(dest) if dest is not None else cache_dir() / "mnist"
    bases = _mirror_list(mirrors)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"Cannot create the download folder {folder} ({e}).") from e
    for name in MNIST_FILES:
        if _idx_file(folder, name) is None:
            _download_one(name, folder, bases, timeout)
    return folder


def _mirror_list(mirrors: tuple[str, ...] | list[str] | str | None) -> tuple[str, ...]:
    """Explicit mirrors, else ``$FASTNN_MNIST_MIRROR``, else :data:`MNIST_MIRRORS`."""
    if mirrors is None:
        mirrors = os.environ.get("FASTNN_MNIST_MIRROR") or MNIST_MIRRORS
    if isinstance(mirrors, str):
        mirrors = re.split(r"[\s,]+", mirrors.strip())
    bases = tuple(m for m in mirrors if m)
    if not bases:
        raise DataError("No MNIST download mirror is configured (the mirror list is empty).")
    return bases


def _download_one(name: str, folder: Path, bases: tuple[str, ...], timeout: float) -> None:
    """Fetch ``name.gz`` from the first mirror that delivers a verified copy."""
    import http.client  # lazy: only downloads need the network stack

    failures = []
    for base in bases:
        url = base.rstrip("/") + "/" + name + ".gz"
        try:
            _fetch_verified(url, folder / (name + ".gz"), MNIST_SHA256[name], timeout)
            return
        except (_DownloadFailed, OSError, http.client.HTTPException, EOFError, zlib.error,
                ValueError) as e:
            failures.append(f"{url}: {e}")
    raise DataError(f"Downloading {name}.gz failed from every mirror ({'; '.join(failures)}).")


class _DownloadFailed(Exception):
    """A mirror delivered something unusable (too big, wrong checksum)."""


def _fetch_verified(url: str, final: Path, sha256: str, timeout: float) -> None:
    """Download ``url`` to a temporary file next to ``final``; verify, fsync, rename into place."""
    import tempfile
    import urllib.request

    fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                _copy_bounded(resp, out)
            out.flush()
            digest = _gunzip_sha256(tmp)
            if digest != sha256:
                raise _DownloadFailed(f"SHA-256 checksum mismatch of the decompressed file "
                                      f"(got {digest[:16]}..., expected {sha256[:16]}...)")
            os.fsync(out.fileno())
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:  # includes KeyboardInterrupt: never leave the .part file behind
        tmp.unlink(missing_ok=True)
        raise


def _copy_bounded(src: IO[bytes], dst: IO[bytes]) -> None:
    """Copy at most ``_MAX_DOWNLOAD_BYTES``, so a misbehaving server cannot fill the disk."""
    copied = 0
    while chunk := src.read(1 << 20):
        copied += len(chunk)
        if copied > _MAX_DOWNLOAD_BYTES:
            raise _DownloadFailed(f"the server sent more than {_MAX_DOWNLOAD_BYTES} bytes")
        dst.write(chunk)


def _gunzip_sha256(path: Path) -> str:
    """SHA-256 of a gzip file's decompressed content, streamed and bounded."""
    h = hashlib.sha256()
    seen = 0
    with gzip.open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            seen += len(chunk)
            if seen > _MAX_DOWNLOAD_BYTES:
                raise _DownloadFailed(
                    f"the file decompresses to more than {_MAX_DOWNLOAD_BYTES} bytes")
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable; not possible on every platform, so failures are ignored."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _mnist_places(path: PathLike | None) -> list[Path]:
    """The folders to search, in order."""
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise DataError(f"MNIST folder {p} does not exist.")
        if not p.is_dir():
            raise DataError(f"MNIST path {p} is a file, not a folder holding the four IDX files.")
        return [p, p / "mnist"]
    places = []
    if os.environ.get("FASTNN_DATA"):
        places.append(Path(os.environ["FASTNN_DATA"]) / "mnist")
    places.append(cache_dir() / "mnist")
    return places


def _idx_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` or ``folder/name.gz``, whichever is a regular file (plain first); else
    whichever exists, so that read_idx says what it is (a FIFO, a folder) rather than missing."""
    candidates = (folder / name, folder / (name + ".gz"))
    for test in (Path.is_file, Path.exists):
        found = next((c for c in candidates if test(c)), None)
        if found is not None:
            return found
    return None


def _first_complete(places: list[Path]) -> Path | None:
    """The first folder that holds all four files."""
    for folder in places:
        if all(_idx_file(folder, name) is not None for name in MNIST_FILES):
            return folder
    return None


def _not_found_message(places: list[Path], path: PathLike | None,
                       download_error: str | None = None) -> str:
    """One sentence: where we looked, why downloading did not help, and what to do."""
    looked = ", ".join(str(p) for p in places)
    if download_error is not None:
        why = f"and downloading failed ({download_error.rstrip('.')})"
    elif path is not None:
        why = "(no download is attempted for an explicit path)"
    else:
        why = "and downloading was not allowed"
    if path is None and not os.environ.get("FASTNN_DATA"):
        looked += " (FASTNN_DATA is not set)"
    return f"The MNIST IDX files were not found in {looked} {why}; to fix this, {_HELP}."


def _load_mnist_folder(folder: Path) -> MNIST:
    """Read and cross-check the four files of a complete folder."""
    parts = []
    for images_name, labels_name in (MNIST_FILES[0:2], MNIST_FILES[2:4]):
        images_path = _idx_file(folder, images_name)
        labels_path = _idx_file(folder, labels_name)
        assert images_path is not None and labels_path is not None  # checked by _first_complete
        images = read_idx(images_path)
        labels = read_idx(labels_path)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(f"MNIST image file {images_path} has shape {images.shape}, "
                            f"but MNIST images must be (n, 28, 28).")
        if labels.ndim != 1:
            raise DataError(f"MNIST label file {labels_path} has shape {labels.shape}, "
                            f"but MNIST labels must be one-dimensional.")
        if len(labels) != len(images):
            raise DataError(f"MNIST label file {labels_path} holds {len(labels)} labels but "
                            f"the image file {images_path} holds {len(images)} images.")
        if len(labels) and labels.max() > 9:
            raise DataError(f"MNIST label file {labels_path} holds the label {labels.max()}, "
                            f"but MNIST labels are 0 to 9.")
        parts += [images.reshape(len(images), 28 * 28), labels]
    return MNIST(*parts)


# --------------------------------------------------------------------------- one entry point

def load_dataset(
    path: PathLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Load labeled data for the command line's ``--data PATH``.

    * a folder of MNIST IDX files (or a folder with an ``mnist/`` subfolder) ->
      ``(X_train, y_train, X_test, y_test)``, never downloading;
    * a ``.csv`` / ``.csv.gz`` file with a label column -> ``(X, y, None, None)``.

    Images are ``uint8 (n, n_pixels)``, labels ``uint8 (n,)``.
    """
    p = Path(path)
    if p.name.lower().endswith((".csv", ".csv.gz")):  # a file by its name: a folder or FIFO is an error
        X, y = read_csv(p)
        if y is None:
            raise DataError(f"CSV file {p} has no label column, so it cannot be used for training.")
        return X, y, None, None
    if p.is_dir():
        m = load_mnist(p, download=False)
        return m.train_images, m.train_labels, m.test_images, m.test_labels
    regular_file(p, "Data path")  # missing, or not a regular file: say so
    raise DataError(f"Data path {p} is neither a folder of MNIST IDX files "
                    f"nor a .csv/.csv.gz file.")


# --------------------------------------------------------------------------- helpers

def _existing_file(path: PathLike, kind: str) -> Path:
    """``path`` as a Path, or DataError if it is missing or not a regular file (checked before
    anything opens it: opening a FIFO blocks)."""
    return regular_file(path, kind)
