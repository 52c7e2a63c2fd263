"""fastnn.prepare: inputs converted once give exactly what the arrays give, everywhere X goes."""

from dataclasses import replace

import numpy as np
import pytest

import fastnn
from fastnn import MLP, DataError, fit_many
from helpers import gaussian_problem, random_pixels


def trained(X, y, dtype="float32", pixels=True, **options):
    model = MLP([60, 12, 4], seed=2, dtype=dtype, pixels=pixels)
    model.fit(X, y, epochs=2, batch_size=32, **options)
    return model


@pytest.mark.parametrize("pixels", [True, False], ids=["pixels", "as-given"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pixels_prepared_once_train_and_predict_as_the_array(dtype, pixels):
    X, rng = random_pixels(600, 60, seed=5)
    y = rng.integers(0, 4, 600)
    prepared = fastnn.prepare(X)  # float32 scale: a float64 model gets its own
    from_array = trained(X, y, dtype, pixels, validation_split=0.2)
    assert np.array_equal(from_array.get_params(),
                          trained(prepared, y, dtype, pixels, validation_split=0.2).get_params())
    assert np.array_equal(from_array.predict_proba(X), from_array.predict_proba(prepared))
    assert from_array.evaluate(X, y) == from_array.evaluate(prepared, y)


def test_real_valued_inputs_and_fit_many():
    X, y = gaussian_problem(400, [60, 4], seed=1)
    prepared = fastnn.prepare(X, dtype="float64")
    singles = [MLP([60, 12, 4], seed=s, dtype="float64") for s in range(2)]
    many = [MLP([60, 12, 4], seed=s, dtype="float64") for s in range(2)]
    for model in singles:
        model.fit(X, y, epochs=1, batch_size=32)
    fit_many(many, prepared, y, epochs=1, batch_size=32)
    for single, other in zip(singles, many):
        assert np.array_equal(single.get_params(), other.get_params())


def test_prepared_inputs_are_a_copy():
    X, rng = random_pixels(50, 60, seed=7)
    prepared = fastnn.prepare(X)
    before = MLP([60, 4], seed=0).predict_proba(prepared)
    X[:] = 0
    assert np.array_equal(before, MLP([60, 4], seed=0).predict_proba(prepared))
    assert prepared.shape == (50, 60) and len(prepared) == 50


def test_bad_inputs_are_refused():
    X, rng = random_pixels(50, 60, seed=7)
    with pytest.raises(DataError, match="features per example"):
        MLP([30, 4]).fit(fastnn.prepare(X), rng.integers(0, 4, 50))
    with pytest.raises(DataError, match="NaN"):
        fastnn.prepare(np.full((3, 4), np.nan))
    with pytest.raises(DataError, match="2-D"):
        fastnn.prepare(np.zeros(5))
    with pytest.raises(ValueError, match="float32 or float64"):
        fastnn.prepare(X, dtype="int8")
    with pytest.raises(DataError, match="labels"):
        MLP([60, 4]).fit(fastnn.prepare(X), rng.integers(0, 4, 49))
    rows = fastnn.prepare(X).rows
    for bad in (replace(rows, indices=rows.indices + np.uint16(60)), replace(rows, indptr=rows.indptr[:-1]),
                replace(rows, values=rows.values.astype(np.float64)), replace(rows, halves=rows.halves + 1),
                replace(rows, halves=rows.halves[:-1])):
        with pytest.raises(DataError, match="fastnn.prepare"):
            fastnn.PreparedInputs(bad, np.dtype(np.float32))


def test_a_sweep_converts_each_input_array_once_per_dtype():
    from fastnn.sweeps import prepared

    X, _ = random_pixels(20, 60, seed=1)
    data = {"X": X, "X_val": None}
    first = prepared(data, "X", "float32")
    assert prepared(data, "X", "float32") is first
    assert prepared(data, "X", "float64") is not first and prepared(data, "X_val", "float32") is None
    assert np.array_equal(first.rows.indices, fastnn.prepare(X).rows.indices)


def test_row_filling_reads_a_strided_array_column_by_column():
    """fill_rows skips zero words only in a C-contiguous array: a strided view's data is not
    one run of words, so reading it word by word would land on other columns (or past its end)."""
    from fastnn.kernels.sparse import count_row_nonzeros, fill_rows

    X = (np.arange(4 * 32).reshape(4, 32) % 5 == 0).astype(np.uint8)[:, ::2]
    n, d = X.shape
    counts = np.zeros(n + 1, np.int64)
    count_row_nonzeros(np.zeros(16, np.int64), X, counts)
    indptr = np.cumsum(counts)
    indices, values = np.empty(indptr[-1], np.uint16), np.empty(indptr[-1], np.uint8)
    halves = np.empty(n, np.int64)
    fill_rows(np.zeros(16, np.int64), X, d // 2, indptr, indices, values, halves, np.empty(d, np.uint16),
              np.empty(d, np.uint8))
    assert indices.tolist() == np.concatenate([np.nonzero(row)[0] for row in X]).tolist()
    assert halves.tolist() == [a + np.count_nonzero(row[:d // 2]) for a, row in zip(indptr[:-1], X)]
    assert values.tolist() == X[X != 0].tolist()


def test_subsets_of_rows_keep_where_each_row_splits():
    """SparseRows.subset (validation splits, sweeps) carries each row's split entry along:
    the kernels read the entries on either side of it unchecked."""
    from fastnn.data.prepared import balanced_column

    X, _ = random_pixels(30, 60, seed=2)
    rows = fastnn.prepare(X).rows
    pick = np.array([5, 0, 29, 5, 12])
    sub = rows.subset(pick)
    split = balanced_column(X)
    assert sub.halves.tolist() == [a + np.count_nonzero(X[i, :split]) for a, i in zip(sub.indptr[:-1], pick)]
    fastnn.PreparedInputs(sub, np.dtype(np.float32))  # passes its checks


def test_the_split_column_shares_the_entries_of_the_first_rows():
    """Two workers each own the first layer's weight rows on one side of balanced_column."""
    from fastnn.data.prepared import SPLIT_SAMPLE_ROWS, SPLIT_SHARE, balanced_column

    X = np.zeros((4, 100), np.uint8)
    X[:, ::3] = 7  # 34 entries a row, columns 0, 3, ..., 99
    split = balanced_column(X)
    assert np.count_nonzero(X[:, :split]) >= SPLIT_SHARE * X.astype(bool).sum() > np.count_nonzero(X[:, :split - 1])
    late = np.zeros((SPLIT_SAMPLE_ROWS + 5, 10), np.uint8)
    late[-5:, 0] = 1  # past the rows it looks at
    assert balanced_column(late) == 5
    assert balanced_column(np.ones((3, 2))) == 1
    rows = fastnn.prepare(X).rows
    assert rows.halves.tolist() == [34 * i + (split + 2) // 3 for i in range(4)]


def test_an_array_fit_after_fit_is_converted_once_while_its_bytes_stay_the_same(monkeypatch):
    from fastnn.data import prepared as module

    X, rng = random_pixels(300, 60, seed=7)
    y = rng.integers(0, 4, 300)
    conversions = []
    convert = module._convert
    monkeypatch.setattr(module, "_convert", lambda *args: conversions.append(1) or convert(*args))
    # uint8 pixels stay bytes, and so keep their rows (as given, they become a float copy each fit)
    model, again = MLP([60, 12, 4], pixels=True, seed=2), MLP([60, 12, 4], pixels=True, seed=2)
    model.fit(X, y, epochs=1, batch_size=32)
    model.fit(X, y, epochs=1, batch_size=32)
    assert len(conversions) == 1
    again.fit(X.copy(), y, epochs=1, batch_size=32)  # another array: converted
    again.fit(X.copy(), y, epochs=1, batch_size=32)
    assert len(conversions) == 3
    assert np.array_equal(model.get_params(), again.get_params())

    X[5, 3] ^= 1  # one bit changed in place: converted again, trained on the new bytes
    X[[0, 1]] = X[[1, 0]]  # rows swapped: the same sum of bytes, another fingerprint
    model.fit(X, y, epochs=1, batch_size=32)
    again.fit(X.copy(), y, epochs=1, batch_size=32)
    assert len(conversions) == 5
    assert np.array_equal(model.get_params(), again.get_params())


def test_a_large_array_is_fingerprinted_in_two_halves_the_same_on_any_thread_count(monkeypatch):
    from fastnn.data import prepared as module

    X = np.random.default_rng(1).integers(0, 256, (module.FINGERPRINT_SPLIT_BYTES // 1000 + 1, 1000)).astype(np.uint8)
    two = module.fingerprint(X)
    monkeypatch.setattr(module, "default_threads", lambda: 1)
    assert module.fingerprint(X) == two and len(two) == 4  # two sums of each half
    for row in (0, X.shape[0] - 1):  # a change in either half is seen
        changed = X.copy()
        changed[row, 7] ^= 1
        assert module.fingerprint(changed) != two
    assert len(module.fingerprint(X[:10])) == 2  # small arrays: one part


def test_the_fingerprint_sees_each_byte_and_its_place():
    from fastnn.native.loader import kernel

    def fingerprint(data):
        out = np.zeros(2, dtype=np.uint64)
        kernel("input_fingerprint")(np.ascontiguousarray(data, dtype=np.uint8), out)
        return tuple(out)

    data = np.random.default_rng(0).integers(0, 256, 1003).astype(np.uint8)  # words and a tail
    seen = {fingerprint(data)}
    for i in (0, 7, 8, 500, 999, 1002):
        changed = data.copy()
        changed[i] ^= 0x10
        seen.add(fingerprint(changed))
    swapped = data.copy()
    swapped[[8, 16]] = swapped[[16, 8]]
    seen.add(fingerprint(swapped))
    assert len(seen) == 8 and fingerprint(data) == fingerprint(data.copy())
    assert fingerprint(np.zeros(5, np.uint8)) != fingerprint(np.zeros(6, np.uint8))
