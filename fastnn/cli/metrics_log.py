"""The per-epoch metrics log of `fastnn train --metrics FILE`: CSV (.csv) or JSON lines (.jsonl).

One row per epoch: epoch (counted over the whole training, across resumes), loss, accuracy,
val_loss, val_accuracy (empty / null without validation data), lr (at the epoch's end),
seconds, examples_per_second. The whole log is rewritten atomically after each epoch, so a
kill never leaves half a line and a resumed run continues it without duplicates.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from ..errors import DataError

#: Longest line read from a metrics log (a row written by write() takes about 200 bytes).
MAX_LINE_BYTES = 64 << 10
FIELDS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds", "examples_per_second"]


def _is_jsonl(path) -> bool:
    return str(path).lower().endswith((".jsonl", ".json"))


def _clean(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def render(rows: list[dict], jsonl: bool) -> str:
    if jsonl:
        return "".join(json.dumps({k: _clean(row.get(k)) for k in FIELDS}) + "\n" for row in rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if _clean(row.get(k)) is None else row[k] for k in FIELDS})
    return out.getvalue()


def write(path, rows: list[dict]) -> None:
    from ..io import atomic_write

    text = render(rows, _is_jsonl(path)).encode()
    try:
        atomic_write(Path(path), lambda f: f.write(text))
    except OSError as e:
        raise DataError(f"could not write the metrics log {path}: {e.strerror or e}") from e


def read(path) -> list[dict]:
    """The rows of a log written by write(); DataError naming the file for anything else.

    Only a regular file is read (a FIFO would block), each line at most MAX_LINE_BYTES, and a
    JSON line must be one flat object: nesting deep enough to exhaust Python's recursion is
    reported with its line number."""
    from ..data.checks import regular_file

    p = regular_file(path, "metrics log")
    try:
        lines = _lines(p)
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"metrics log {p} could not be read: {getattr(e, 'strerror', None) or e}")
    try:
        if _is_jsonl(p):
            raw = [_json_object(line, number) for number, line in enumerate(lines, 1) if line.strip()]
        else:
            raw = list(csv.DictReader(lines))
            if raw and set(raw[0]) != set(FIELDS):
                raise ValueError(f"its columns are not {','.join(FIELDS)}")
        rows = [{k: (None if row.get(k) in (None, "") else float(row[k])) for k in FIELDS} for row in raw]
    except (ValueError, TypeError, AttributeError, csv.Error) as e:
        raise DataError(f"metrics log {p} is not a fastnn metrics log: {e}")
    if not rows:
        raise DataError(f"metrics log {p} has no epochs")
    if any(row["epoch"] is None or row["loss"] is None for row in rows):
        raise DataError(f"metrics log {p} has rows without an epoch or a loss")
    return rows


def stored_rows(history, epochs_trained: int) -> list[dict]:
    """The rows a model file's history holds of its epochs_trained epochs: numbered epochs whose
    metrics are numbers or null. Anything else (a crafted file) is left out."""
    if not isinstance(history, list):
        return []
    return [row for row in history if isinstance(row, dict) and type(row.get("epoch")) is int
            and 0 < row["epoch"] <= epochs_trained and type(row.get("loss")) in (int, float)
            and all(row.get(k) is None or type(row[k]) in (int, float) for k in FIELDS)]


def _lines(p: Path) -> list[str]:
    """The file's lines (UTF-8, without their line ends); DataError for one over MAX_LINE_BYTES,
    found before more of it is read."""
    lines = []
    with p.open("rb") as f:
        while line := f.readline(MAX_LINE_BYTES + 1):
            if len(line.rstrip(b"\r\n")) > MAX_LINE_BYTES:
                raise DataError(f"metrics log {p} is not a fastnn metrics log: line {len(lines) + 1} "
                                f"is longer than {MAX_LINE_BYTES:,} bytes")
            lines.append(line.decode().rstrip("\r\n"))
    return lines


def _json_object(line: str, number: int) -> dict:
    """One JSON line as a dict; ValueError naming the line for anything else."""
    try:
        row = json.loads(line)
    except RecursionError:
        raise ValueError(f"line {number} nests arrays or objects too deeply") from None
    except ValueError as e:
        raise ValueError(f"line {number} is not JSON ({e})") from None
    if not isinstance(row, dict):
        raise ValueError(f"line {number} is not a JSON object")
    return row
