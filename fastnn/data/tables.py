"""Tables as training data: read a CSV, TSV, Parquet or .npz file, and learn on the training rows
how any row of that table becomes the network's inputs and targets.

A ``TableEncoding`` is learnt once, on the training rows only, and kept in the model file: numeric
columns are scaled (standardised by default), string columns are one-hot encoded, and the target
column becomes class indices (classification) or standardised values (regression). evaluate,
predict and export apply the stored encoding again, so a model reads raw tables of its own kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, ModelFileError
from .labels import class_indices, class_names

SCALES = ("standard", "minmax", "pixels", "none")
TASKS = ("classification", "regression")
# Suffixes read as tables (through pandas), beside .npz arrays.
TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".tab", ".parquet", ".pq", ".npz")
# An integer target with at most this many distinct values is taken for classes; more is a
# quantity to regress (--task overrides).
MAX_INFERRED_CLASSES = 30
# A string column with more categories than this is refused: one input per category would make a
# huge, useless first layer (an identifier column, a free-text column).
MAX_CATEGORIES = 1000


def is_table(path: str | Path) -> bool:
    """Whether ``path`` names a file read as a table (by its suffix)."""
    return str(path).lower().endswith(TABLE_SUFFIXES)


def read_table(path: str | Path):
    """The file as a pandas DataFrame: .csv/.tsv (optionally gzipped), .parquet, or an .npz with
    arrays ``X`` (n, features) and ``y`` ((n,), or (n, k) for several targets), whose columns are
    named x0.. and y (y0.. for several). Its index numbers the rows from 0 (the row a message
    names is that number + 1, whatever rows a split takes). Raises DataError for a missing or
    unreadable file."""
    import pandas as pd

    from .checks import regular_file

    p = regular_file(path, "table")  # before opening: a FIFO would block
    name = p.name.lower()
    try:
        if name.endswith(".npz"):
            return _npz_frame(p)
        if name.endswith((".parquet", ".pq")):
            # A stored index is dropped: rows are numbered 0.. as in a CSV, which messages count by.
            return pd.read_parquet(p).reset_index(drop=True)
        separator = "\t" if name.endswith((".tsv", ".tsv.gz", ".tab")) else ","
        return pd.read_csv(p, sep=separator, compression="infer", skipinitialspace=True)
    except DataError:
        raise
    except ImportError as e:
        raise DataError(f"reading {p} needs a package that is not installed: {e}") from e
    except MemoryError as e:
        raise DataError(f"table {p} does not fit in memory") from e
    except Exception as e:  # pandas' and pyarrow's many parser errors: one clear line
        raise DataError(f"table {p} could not be read: {' '.join(str(e).split())}") from e


def _npz_frame(p: Path):
    import pandas as pd

    with np.load(p, allow_pickle=False) as npz:
        if "X" not in npz.files or "y" not in npz.files:
            raise DataError(f"{p} must hold arrays named X and y; it has {', '.join(npz.files) or 'none'}")
        X, y = npz["X"], npz["y"]
    if X.ndim != 2 or y.ndim not in (1, 2) or len(X) != len(y):
        raise DataError(f"{p}: X must be (n, features) and y (n,) or (n, k); they are {X.shape} and {y.shape}")
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    if y.ndim == 1:
        frame["y"] = y
    else:
        for j in range(y.shape[1]):
            frame[f"y{j}"] = y[:, j]
    return frame


def default_target(frame) -> str:
    """The target of a table read without --target: y of an .npz, or a column named label,
    target, class or y."""
    for name in ("y", "label", "target", "class", "Label", "Target", "Class"):
        if name in frame.columns:
            return name
    raise DataError(f"name the target column with --target (the columns are {_listed(frame.columns)})")


@dataclass
class TableEncoding:
    """How a table's rows become inputs and targets (learnt by ``learn`` on training rows).

    ``columns``: the feature columns in input order; ``categories``: for each string column, its
    categories (one input each, 1 where the cell equals it; a category unseen in training gives
    all zeros); ``offset``/``factor``: input j is (value - offset[j]) * factor[j];
    ``classes``: the class names (classification), or ``target_offset``/``target_factor`` for
    a standardised regression target."""

    target: str
    task: str
    columns: list[str]
    categories: dict[str, list[str]]
    scale: str
    offset: list[float]
    factor: list[float]
    classes: list = field(default_factory=list)
    target_offset: float = 0.0
    target_factor: float = 1.0

    # -- learning it -------------------------------------------------------------------------

    @classmethod
    def learn(cls, frame, target: str, *, task: str | None = None, scale: str = "standard") -> "TableEncoding":
        """The encoding of ``frame``'s rows (the training rows) with ``target`` as the target."""
        if target not in frame.columns:
            raise DataError(f"there is no column {target!r} to predict (the columns are {_listed(frame.columns)})")
        if scale not in SCALES:
            raise DataError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
        if task is not None and task not in TASKS:
            raise DataError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if len(frame) == 0:
            raise DataError("the table has no rows")
        columns = [str(c) for c in frame.columns if c != target]
        if not columns:
            raise DataError(f"the table has no feature columns beside the target {target!r}")
        y = frame[target]
        refuse_missing(y, target)
        task = task or inferred_task(y)
        categories = {c: _categories(frame[c], c) for c in columns if not _is_numeric(frame[c])}
        encoding = cls(target=str(target), task=task, columns=columns, categories=categories, scale=scale,
                       offset=[], factor=[])
        raw = encoding._raw_inputs(frame)
        encoding.offset, encoding.factor = _scaling(raw, encoding._scaled_inputs(), scale)
        if task == "classification":
            encoding.classes = class_names(y.to_numpy())
            if len(encoding.classes) < 2:
                raise DataError(f"the target {target!r} has a single class ({encoding.classes[0]!r}): nothing to learn")
        else:
            values = _numeric(y, target)
            encoding.target_offset = float(values.mean())
            spread = float(values.std())
            encoding.target_factor = 1.0 / spread if spread > 0 else 1.0
        return encoding

    # -- applying it -------------------------------------------------------------------------

    @property
    def n_inputs(self) -> int:
        return len(self.offset)

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.task == "classification" else 1

    def inputs(self, frame, dtype=np.float32) -> np.ndarray:
        """The encoded, scaled inputs of ``frame``'s rows, (n, n_inputs) of ``dtype``."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise DataError(f"the table lacks the column{'s' if len(missing) > 1 else ''} {_listed(missing)} "
                            "that the model was trained on")
        raw = self._raw_inputs(frame)
        with np.errstate(over="ignore", invalid="ignore"):
            X = ((raw - np.asarray(self.offset)) * np.asarray(self.factor)).astype(dtype)
        if not np.isfinite(X).all():
            row, j = np.argwhere(~np.isfinite(X))[0]
            raise DataError(f"column {self._input_column(j)!r} has a value too large for {np.dtype(dtype).name} "
                            f"at row {_row(frame, row)}")
        return X

    def targets(self, frame) -> np.ndarray:
        """Class indices (int32) or standardised values ((n, 1) float64) of the target column."""
        if self.target not in frame.columns:
            raise DataError(f"the table has no target column {self.target!r}")
        y = frame[self.target]
        refuse_missing(y, self.target)
        if self.task == "regression":
            return ((_numeric(y, self.target) - self.target_offset) * self.target_factor)[:, None]
        try:
            return class_indices(y.to_numpy(), self.classes, len(y), f"the target column {self.target!r}")
        except DataError:
            self._refuse_unknown_class(y)
            raise

    def _refuse_unknown_class(self, y) -> None:
        """DataError naming the first cell of ``y`` that is none of the classes, by its row."""
        for i, value in enumerate(y.to_numpy().tolist()):
            try:
                class_indices([value], self.classes, 1)
            except DataError:
                raise DataError(f"column {self.target!r} has the class {value!r} at row {_row(y, i)}, which is not "
                                f"one of the model's classes ({_listed(self.classes)})") from None

    def class_names(self, indices: np.ndarray) -> np.ndarray:
        """The class names of class indices."""
        return np.asarray(self.classes, dtype=object)[indices]

    def values(self, outputs: np.ndarray) -> np.ndarray:
        """Regression outputs in the target's own units."""
        return outputs[:, 0] / self.target_factor + self.target_offset

    def _raw_inputs(self, frame) -> np.ndarray:
        parts = []
        for c in self.columns:
            column = frame[c]
            refuse_missing(column, c)
            if c in self.categories:
                cells = column.astype(str).to_numpy()
                parts.append(np.stack([cells == k for k in self.categories[c]], axis=1).astype(np.float64))
            else:
                parts.append(_numeric(column, c)[:, None])
        return np.concatenate(parts, axis=1)

    def _scaled_inputs(self) -> np.ndarray:
        """Which inputs the scaling applies to: numbers, not one-hot categories."""
        return np.concatenate([np.full(len(self.categories[c]) if c in self.categories else 1, c not in self.categories)
                               for c in self.columns])

    def _input_column(self, j: int) -> str:
        for c in self.columns:
            width = len(self.categories[c]) if c in self.categories else 1
            if j < width:
                return c
            j -= width
        return "?"

    # -- in the model file -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, for the model file's metadata."""
        return {"target": self.target, "task": self.task, "columns": self.columns, "categories": self.categories,
                "scale": self.scale, "offset": self.offset, "factor": self.factor, "classes": self.classes,
                "target_offset": self.target_offset, "target_factor": self.target_factor}

    @classmethod
    def from_dict(cls, d: Any) -> "TableEncoding":
        """The encoding stored by to_dict; ModelFileError if it is damaged."""
        try:
            encoding = cls(**d)
            ok = (isinstance(encoding.target, str) and encoding.task in TASKS and encoding.scale in SCALES
                  and isinstance(encoding.columns, list) and all(isinstance(c, str) for c in encoding.columns)
                  and isinstance(encoding.categories, dict)
                  and all(c in encoding.columns and isinstance(k, list) and k and all(isinstance(s, str) for s in k)
                          for c, k in encoding.categories.items())
                  and isinstance(encoding.classes, list)
                  and all(isinstance(v, (str, bool)) or _finite(v) for v in encoding.classes)
                  and _distinct(encoding.classes)
                  and (len(encoding.classes) >= 2 if encoding.task == "classification" else not encoding.classes)
                  and isinstance(encoding.offset, list) and isinstance(encoding.factor, list)
                  and len(encoding.offset) == len(encoding.factor) == encoding._width()
                  and all(_finite(v) for v in (*encoding.offset, *encoding.factor, encoding.target_offset,
                                                encoding.target_factor))
                  and encoding.target_factor != 0)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ModelFileError("the model file's table encoding is damaged")
        return encoding

    def _width(self) -> int:
        return sum(len(self.categories[c]) if c in self.categories else 1 for c in self.columns)

    def describe(self) -> str:
        """Lines for `fastnn info`."""
        numeric = [c for c in self.columns if c not in self.categories]
        lines = [f"table target: {self.target} ({self.task}"
                 + (f", {len(self.classes)} classes: {_listed(self.classes)})" if self.classes else ")"),
                 f"numeric columns: {len(numeric)}, scaled: {self.scale}"]
        for c, names in self.categories.items():
            lines.append(f"one-hot column {c}: {_listed(names)}")
        return "\n".join(lines)


def stratified_split(labels: np.ndarray | None, n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows), each sorted: about ``fraction`` of each class held out (of
    all rows when ``labels`` is None), drawn from ``seed`` alone; every class keeps at least one
    training row."""
    if not 0 < fraction < 1:
        raise DataError(f"the test split must be in (0, 1), got {fraction!r}")
    rng = np.random.default_rng([seed, 0x7E57])
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    held = []
    for rows in groups:
        k = min(int(round(rows.size * fraction)), rows.size - 1)
        held.append(rng.permutation(rows)[:k])
    test = np.sort(np.concatenate(held))
    if test.size == 0 or test.size == n:
        raise DataError(f"a test split of {fraction} leaves no rows on one side of {n}")
    return np.setdiff1d(np.arange(n), test), test


# -- helpers -------------------------------------------------------------------------------------

def _is_numeric(column) -> bool:
    """A column of numbers: numeric dtype, or text cells that all parse as numbers."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return True
    parsed = pd.to_numeric(column, errors="coerce")
    present = column.notna()
    return bool(present.any()) and bool(parsed[present].notna().mean() >= 0.5)


def _numeric(column, name: str) -> np.ndarray:
    """float64 values of a numeric column; DataError naming the first cell that is not a number."""
    import pandas as pd

    parsed = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(parsed))
    if bad.size:
        raise DataError(f"column {name!r} has a non-numeric value {column.iloc[bad[0]]!r} at row "
                        f"{_row(column, bad[0])}")
    return parsed


def refuse_missing(column, name: str) -> None:
    """DataError naming the first empty (NaN, None) cell of ``column`` by its row."""
    missing = np.flatnonzero(column.isna().to_numpy())
    if missing.size:
        raise DataError(f"column {name!r} has a missing value at row {_row(column, missing[0])} "
                        f"({missing.size} missing in all); fill or drop them first")


def _row(rows, position: int) -> int:
    """The row number (from 1) of the cell at ``position`` of a column or frame: its index label
    + 1, which counts rows in the table read even after a split (read_table numbers them from
    0), else its position + 1 for an index of other labels."""
    label = rows.index[position]
    if isinstance(label, (int, np.integer)) and not isinstance(label, (bool, np.bool_)):
        return int(label) + 1
    return int(position) + 1


def inferred_task(y) -> str:
    """Classes for text or bool targets and for integers with few distinct values; else
    regression. DataError for a missing value (a class of its own, or no number)."""
    refuse_missing(y, str(y.name))
    if not _is_numeric(y):
        return "classification"
    values = _numeric(y, str(y.name))
    if np.all(values == np.round(values)) and np.unique(values).size <= MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"


def _categories(column, name: str) -> list[str]:
    refuse_missing(column, name)  # else NaN would be a category (or, in pandas 3, unsortable among strings)
    names = sorted(set(column.astype(str)))
    if len(names) > MAX_CATEGORIES:
        raise DataError(f"column {name!r} has {len(names):,} distinct text values: more than {MAX_CATEGORIES} "
                        "categories to one-hot encode (drop it, or give it as numbers)")
    return names


def _scaling(raw: np.ndarray, scaled: np.ndarray, scale: str) -> tuple[list[float], list[float]]:
    offset, factor = np.zeros(raw.shape[1]), np.ones(raw.shape[1])
    if scale == "standard":
        mean, std = raw.mean(axis=0), raw.std(axis=0)
        offset, factor = mean, np.where(std > 0, 1 / np.where(std > 0, std, 1), 1.0)
    elif scale == "minmax":
        low, span = raw.min(axis=0), np.ptp(raw, axis=0)
        offset, factor = low, np.where(span > 0, 1 / np.where(span > 0, span, 1), 1.0)
    elif scale == "pixels":
        factor = np.full(raw.shape[1], 1 / 255)
    offset = np.where(scaled, offset, 0.0)
    factor = np.where(scaled, factor, 1.0)
    return [float(v) for v in offset], [float(v) for v in factor]


def _distinct(classes: list) -> bool:
    """No two class names alike, as labels match them (1 and 1.0 are one class)."""
    return len({(isinstance(c, str), isinstance(c, bool), c) for c in classes}) == len(classes)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _listed(names, limit: int = 12) -> str:
    names = [str(n) for n in names]
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
