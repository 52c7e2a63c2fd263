"""Examples as the kernels read them: sparse input rows, targets and loss weights."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..kernels.args import Data


@dataclass(frozen=True)
class SparseRows:
    """The non-zero entries of each input row (sorted columns), and the scale of their values:
    1/255 for uint8 pixels, 1 for anything else."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    scale: np.floating
    n_features: int
    halves: np.ndarray  # each row's first entry at or past one column (prepared.balanced_column)

    @property
    def n_rows(self) -> int:
        return self.indptr.size - 1

    def most_in_batch(self, batch_size: int) -> int:
        """An upper bound of the non-zero inputs of any batch_size rows."""
        per_row = int(np.diff(self.indptr).max()) if self.n_rows else 0
        return min(batch_size * per_row, int(self.indptr[-1]))

    @cached_property
    def column_counts(self) -> np.ndarray:
        """Non-zero inputs per column (kept: prepared rows serve many fits)."""
        return np.bincount(self.indices, minlength=self.n_features)

    def subset(self, rows: np.ndarray) -> "SparseRows":
        starts, stops = self.indptr[rows], self.indptr[rows + 1]
        take = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)]) if rows.size else np.zeros(0, int)
        indptr = np.concatenate([[0], np.cumsum(stops - starts)]).astype(np.int64)
        halves = indptr[:-1] + (self.halves[rows] - starts)
        return SparseRows(indptr, self.indices[take], self.values[take], self.scale, self.n_features, halves)


@dataclass(frozen=True)
class Examples:
    """Inputs, int32 labels (classification) or targets (regression, (n, k)), loss weights."""

    rows: SparseRows
    labels: np.ndarray
    targets: np.ndarray
    weights: np.ndarray

    def subset(self, rows: np.ndarray) -> "Examples":
        targets = self.targets[rows] if self.targets.shape[0] == self.labels.size else self.targets
        return Examples(self.rows.subset(rows), self.labels[rows], targets, self.weights[rows])

    def kernel_tuple(self):
        r = self.rows
        return Data(r.indptr, r.indices, r.values, r.scale, self.labels, self.targets, self.weights, r.halves)


def validation_rows(n: int, fraction: float, seed: int, option: str = "validation_split") -> tuple[np.ndarray,
                                                                                                      np.ndarray]:
    """(training rows, held-out rows) of n examples, each sorted: round(n * fraction) held out,
    drawn from ``seed`` alone, so that the API, the command line and a resumed run hold out the
    same examples for the same seed and fraction. ``option`` names the setting in errors."""
    from ..errors import DataError

    if not 0 < fraction < 1:
        raise DataError(f"{option} must be in (0, 1), got {fraction!r}")
    held = int(round(n * fraction))
    if held < 1 or held >= n:
        raise DataError(f"{option} {fraction} leaves no examples on one side of {n}")
    order = np.random.default_rng([seed, 0x5EED]).permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])
