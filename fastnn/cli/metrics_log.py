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
    """The rows of a log written by write(); DataError naming the file for anything else."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise DataError(f"metrics log {p} does not exist")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"metrics log {p} could not be read: {getattr(e, 'strerror', None) or e}")
    try:
        if _is_jsonl(p):
            raw = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            raw = list(csv.DictReader(io.StringIO(text)))
            if raw and set(raw[0]) != set(FIELDS):
                raise ValueError(f"its columns are not {','.join(FIELDS)}")
        rows = [{k: (None if row.get(k) in (None, "") else float(row[k])) for k in FIELDS} for row in raw]
    except (ValueError, TypeError, AttributeError) as e:
        raise DataError(f"metrics log {p} is not a fastnn metrics log: {e}")
    if not rows:
        raise DataError(f"metrics log {p} has no epochs")
    if any(row["epoch"] is None or row["loss"] is None for row in rows):
        raise DataError(f"metrics log {p} has rows without an epoch or a loss")
    return rows
