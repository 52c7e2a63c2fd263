"""Tests of fastnn.data.datasets: IDX and CSV readers, MNIST lookup and download, bad-file corpus."""

from __future__ import annotations

import functools
import gzip
import http.server
import socket
import struct
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastnn.data import datasets
from fastnn.data.datasets import (MNIST_FILES, MNIST_SHA256, download_mnist, find_mnist, load_dataset,
                             load_mnist, read_csv, read_idx)
from fastnn.errors import DataError

BAD = Path(__file__).parent / "data" / "bad"
# Hypothesis tests reuse tmp_path across examples; each example overwrites its own file.
TMP_OK = [HealthCheck.function_scoped_fixture]


# --------------------------------------------------------------------------- helpers & fixtures

def idx_bytes(shape: tuple[int, ...], data: bytes, type_code: int = 0x08) -> bytes:
    """An IDX file's bytes: magic, big-endian dims, then data (not checked against the shape)."""
    dims = b"".join(struct.pack(">I", d) for d in shape)
    return bytes([0, 0, type_code, len(shape)]) + dims + data


def write(path: Path, content: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(content, mtime=0) if gz else content)
    return path


def closed_port_url() -> str:
    """A URL on a local port that nothing listens on (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """serve(folder) -> base URL of a local HTTP server for that folder (stopped after the test)."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(folder: Path, handler: type = _QuietHandler) -> str:
        srv = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No test touches the real cache or the internet: cache in tmp, default mirror unreachable."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("FASTNN_CACHE", str(cache))
    monkeypatch.setenv("FASTNN_MNIST_MIRROR", closed_port_url())
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    return cache


@pytest.fixture
def mnist_dir(shared_data: Path) -> Path:
    return shared_data / "mnist"


def fake_mnist(folder: Path, n_train: int = 3, n_test: int = 2, *,
               n_train_labels: int | None = None, image_shape: tuple[int, int] = (28, 28),
               gz: bool = False) -> Path:
    """A tiny MNIST-like folder with deterministic content."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    counts = {"train": (n_train, n_train if n_train_labels is None else n_train_labels),
              "t10k": (n_test, n_test)}
    for prefix, (n_img, n_lab) in counts.items():
        images = rng.integers(0, 256, (n_img, *image_shape), dtype=np.uint8)
        labels = rng.integers(0, 10, n_lab, dtype=np.uint8)
        suffix = ".gz" if gz else ""
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            content = idx_bytes(arr.shape, arr.tobytes())
            write(folder / f"{prefix}-{kind}-ubyte{suffix}", content, gz)
    return folder


def assert_no_partial_files(folder: Path) -> None:
    leftovers = [p.name for p in folder.iterdir()] if folder.exists() else []
    assert not [n for n in leftovers if n.endswith(".part")], leftovers


# --------------------------------------------------------------------------- real MNIST

def test_load_mnist_from_fastnn_data(monkeypatch: pytest.MonkeyPatch, shared_data: Path,
                                     mnist_dir: Path) -> None:
    monkeypatch.setenv("FASTNN_DATA", str(shared_data))
    assert find_mnist() == mnist_dir
    m = load_mnist(download=False)

    assert m.train_images.shape == (60000, 784) and m.test_images.shape == (10000, 784)
    assert m.train_labels.shape == (60000,) and m.test_labels.shape == (10000,)
    for a in m:
        assert a.dtype == np.uint8 and a.flags.c_contiguous
    assert m.train_labels[0] == 5 and m.test_labels[0] == 7

    # Independent decoding with gzip + numpy: header sizes 16 (images) and 8 (labels).
    with gzip.open(mnist_dir / "train-images-idx3-ubyte.gz") as f:
        first = np.frombuffer(f.read(16 + 784)[16:], dtype=np.uint8)
    assert int(m.train_images[0].sum()) == int(first.sum(dtype=np.int64))
    assert np.array_equal(m.train_images[0], first)
    with gzip.open(mnist_dir / "t10k-labels-idx1-ubyte.gz") as f:
        assert np.array_equal(m.test_labels, np.frombuffer(f.read()[8:], dtype=np.uint8))
    assert set(np.unique(m.train_labels)) == set(range(10))


def test_explicit_path_may_be_the_parent_of_mnist(shared_data: Path, mnist_dir: Path) -> None:
    assert find_mnist(shared_data) == mnist_dir
    assert find_mnist(mnist_dir) == mnist_dir


def test_load_dataset_on_mnist_folder(mnist_dir: Path) -> None:
    X, y, X_test, y_test = load_dataset(mnist_dir)
    assert X.shape == (60000, 784) and y.shape == (60000,)
    assert X_test is not None and y_test is not None
    assert X_test.shape == (10000, 784) and y_test[:3].tolist() == [7, 2, 1]


def test_read_csv_on_real_kaggle_file(shared_data: Path) -> None:
    path = shared_data / "digit-recognizer" / "train.csv.gz"
    X, y = read_csv(path)
    assert X.shape == (42000, 784) and y is not None and y.shape == (42000,)
    assert X.dtype == np.uint8 and y.dtype == np.uint8 and X.flags.c_contiguous
    head = pd.read_csv(path, nrows=5)
    assert list(head.columns[:2]) == ["label", "pixel0"]
    assert np.array_equal(y[:5], head["label"].to_numpy())
    assert np.array_equal(X[:5], head.drop(columns="label").to_numpy())
    assert y.max() == 9 and X.max() == 255


# --------------------------------------------------------------------------- small MNIST folders

def test_fake_mnist_mixed_raw_and_gzip(tmp_path: Path) -> None:
    folder = fake_mnist(tmp_path / "d" / "mnist", n_train=3, n_test=2)
    # Gzip one file under its .gz name: both spellings are accepted side by side.
    raw = folder / "t10k-labels-idx1-ubyte"
    write(folder / "t10k-labels-idx1-ubyte.gz", raw.read_bytes(), gz=True)
    raw.unlink()
    m = load_mnist(tmp_path / "d", download=False)
    assert [a.shape for a in m] == [(3, 784), (3,), (2, 784), (2,)]
    images = read_idx(folder / "train-images-idx3-ubyte")
    assert images.shape == (3, 28, 28)
    assert np.array_equal(m.train_images, images.reshape(3, 784))


def test_fastnn_data_without_mnist_falls_back_to_cache(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path, isolated_env: Path) -> None:
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "empty"))
    fake_mnist(isolated_env / "mnist", gz=True)
    assert find_mnist() == isolated_env / "mnist"
    assert load_mnist(download=False).test_labels.shape == (2,)


def test_cache_dir_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FASTNN_CACHE", str(tmp_path / "a"))
    assert datasets.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("FASTNN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.cache_dir() == tmp_path / "xdg" / "fastnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert datasets.cache_dir() == Path.home() / ".cache" / "fastnn"


@pytest.mark.parametrize("kwargs, word", [
    ({"n_train": 3, "n_train_labels": 2}, "holds 2 labels"),
    ({"image_shape": (27, 28)}, "28, 28"),
])
def test_inconsistent_mnist_folder(tmp_path: Path, kwargs: dict, word: str) -> None:
    folder = fake_mnist(tmp_path / "m", **kwargs)
    with pytest.raises(DataError, match=word) as e:
        load_mnist(folder, download=False)
    assert str(folder) in str(e.value)


def test_explicit_folder_without_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found") as e:
        load_mnist(tmp_path, download=True)  # explicit path: no download attempted
    assert str(tmp_path) in str(e.value) and "FASTNN_DATA" in str(e.value)


def test_missing_paths_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    for call in (read_idx, read_csv, load_mnist, find_mnist, load_dataset):
        with pytest.raises(DataError, match="does not exist") as e:
            call(missing)
        assert str(missing) in str(e.value)
    with pytest.raises(DataError, match="folder"):
        read_idx(tmp_path)


def test_download_not_allowed(tmp_path: Path, isolated_env: Path) -> None:
    with pytest.raises(DataError, match="not allowed") as e:
        load_mnist(download=False)
    assert str(isolated_env / "mnist") in str(e.value) and "FASTNN_DATA" in str(e.value)


# --------------------------------------------------------------------------- downloads

def test_download_from_local_mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                    isolated_env: Path, serve: Callable[..., str],
                                    mnist_dir: Path) -> None:
    (tmp_path / "empty_mirror").mkdir()
    # The first mirror answers 404 for every file; the second one works and wins.
    monkeypatch.setenv("FASTNN_MNIST_MIRROR",
                       f"{serve(tmp_path / 'empty_mirror')} {serve(mnist_dir)}")
    m = load_mnist()
    assert m.train_images.shape == (60000, 784) and m.train_labels[0] == 5 and m.test_labels[0] == 7
    cached = isolated_env / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(n + ".gz" for n in MNIST_FILES)
    for name in MNIST_FILES:
        assert (cached / (name + ".gz")).read_bytes() == (mnist_dir / (name + ".gz")).read_bytes()
    # Second call: served from the cache, the (unreachable) mirror is not needed.
    again = load_mnist(mirrors=[closed_port_url()])
    assert np.array_equal(again.test_images, m.test_images)


def test_tampered_mirror_is_rejected(tmp_path: Path, isolated_env: Path,
                                     serve: Callable[..., str]) -> None:
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for name in MNIST_FILES:  # valid gzip and IDX, wrong content
        write(tampered / (name + ".gz"), idx_bytes((1,), b"\x07"), gz=True)
    with pytest.raises(DataError, match="checksum") as e:
        load_mnist(mirrors=(serve(tampered),))
    assert "FASTNN_DATA" in str(e.value)
    cached = isolated_env / "mnist"
    assert not any((cached / n).exists() or (cached / (n + ".gz")).exists() for n in MNIST_FILES)
    assert_no_partial_files(cached)


def test_unreachable_mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                            isolated_env: Path) -> None:
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "data"))
    url = closed_port_url()
    start = time.monotonic()
    with pytest.raises(DataError, match="downloading failed") as e:
        load_mnist(mirrors=[url], timeout=5)
    assert time.monotonic() - start < 5
    msg = str(e.value)
    assert str(tmp_path / "data" / "mnist") in msg and str(isolated_env / "mnist") in msg
    assert "FASTNN_DATA" in msg and url in msg
    assert_no_partial_files(isolated_env / "mnist")


class _TruncatingHandler(_QuietHandler):
    """Promises 100000 bytes, sends 10, and hangs up: an interrupted transfer."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"\x1f\x8b" + bytes(8))
        self.wfile.flush()
        self.close_connection = True


def test_interrupted_transfer_leaves_no_file(tmp_path: Path, serve: Callable[..., str]) -> None:
    dest = tmp_path / "dl"
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        download_mnist(dest, mirrors=serve(tmp_path, _TruncatingHandler), timeout=5)
    assert list(dest.iterdir()) == []


def test_interrupt_during_verification_leaves_no_file(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path, mnist_dir: Path,
                                                      serve: Callable[..., str]) -> None:
    def interrupted(path: Path) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "_gunzip_sha256", interrupted)
    dest = tmp_path / "dl"
    with pytest.raises(KeyboardInterrupt):
        download_mnist(dest, mirrors=[serve(mnist_dir)])
    assert list(dest.iterdir()) == []


def test_checksums_match_shared_readme(shared_data: Path) -> None:
    readme = (shared_data / "README.md").read_text()
    for name, digest in MNIST_SHA256.items():
        assert f"{name}" in readme and digest in readme


# --------------------------------------------------------------------------- IDX corpus

TB = (2**20, 2**20, 2**20)
_GOOD = idx_bytes((2, 3), bytes(range(6)))
_GOOD_GZ = gzip.compress(_GOOD, mtime=0)

IDX_CASES = {
    # name: (file bytes, word the message must contain)
    "empty": (b"", "too short"),
    "bad_magic": (b"\x12\x34" + _GOOD[2:], "magic"),
    "unsupported_type": (idx_bytes((2,), bytes(8), type_code=0x0D), "unsupported"),
    "unknown_type": (idx_bytes((2,), bytes(2), type_code=0x42), "unsupported"),
    "zero_dims": (b"\x00\x00\x08\x00", "dimensions"),
    "five_dims": (idx_bytes((1, 1, 1, 1, 1), b"\x00"), "dimensions"),
    "header_cut": (_GOOD[:9], "header"),
    "terabytes_raw": (idx_bytes(TB, bytes(64)), "truncated"),
    "terabytes_gzip": (gzip.compress(idx_bytes(TB, bytes(64))), "limit"),
    "truncated_raw": (_GOOD[:-1], "truncated"),
    "truncated_data_gzip": (gzip.compress(_GOOD[:-1]), "truncated"),
    "large_claim_gzip": (gzip.compress(idx_bytes((10**8,), bytes(64))), "more than a gzip file of"),
    "claim_within_gzip_ratio": (gzip.compress(idx_bytes((20_000,), bytes(64))), "data ends after 64 bytes"),
    "trailing_raw": (_GOOD + b"\x00", "trailing"),
    "trailing_gzip": (gzip.compress(_GOOD + b"\x00"), "trailing"),
    "truncated_gzip": (_GOOD_GZ[:-6], "gzip"),
    "corrupt_gzip_crc": (_GOOD_GZ[:-8] + bytes(4) + _GOOD_GZ[-4:], "gzip"),
    "corrupt_gzip_method": (_GOOD_GZ[:2] + b"\x07" + _GOOD_GZ[3:], "gzip"),
    "corrupt_gzip_body": (_GOOD_GZ[:10] + b"\xff" * 8 + _GOOD_GZ[18:], "gzip"),
}


@pytest.mark.parametrize("case", list(IDX_CASES))
def test_bad_idx_files(tmp_path: Path, case: str) -> None:
    content, word = IDX_CASES[case]
    path = write(tmp_path / f"{case}.idx", content)
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(DataError, match=word) as e:
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(e.value)
    assert time.monotonic() - start < 2
    if case.startswith("terabytes"):
        assert peak < 1 << 20  # refused before allocating anything sizeable


@pytest.mark.parametrize("name, word", [
    ("bad_magic.idx", "magic"),
    ("terabyte_header.idx", "truncated"),
    ("truncated_data.idx.gz", "truncated"),
    ("truncated_stream.idx.gz", "gzip"),
    ("text_cell.csv", "non-integer"),
    ("missing_cell.csv", "missing"),
    ("out_of_range.csv", "outside the pixel range"),
    ("overclaiming.idx.gz", "can hold"),
    ("long_row.csv", "line longer than 96 bytes"),
])
def test_committed_bad_files(name: str, word: str) -> None:
    path = BAD / name
    assert path.stat().st_size < 1000
    reader = read_csv if name.endswith(".csv") else read_idx
    with pytest.raises(DataError, match=word) as e:
        reader(path)
    assert str(path) in str(e.value)


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path: Path) -> None:
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    gz_named_raw = write(tmp_path / "x.idx", idx_bytes(arr.shape, arr.tobytes()), gz=True)
    raw_named_gz = write(tmp_path / "y.gz", idx_bytes(arr.shape, arr.tobytes()))
    for path in (gz_named_raw, raw_named_gz):
        out = read_idx(path)
        assert out.dtype == np.uint8 and out.flags.c_contiguous and np.array_equal(out, arr)


def test_read_idx_empty_dimension(tmp_path: Path) -> None:
    assert read_idx(write(tmp_path / "e.idx", idx_bytes((0, 28, 28), b""))).shape == (0, 28, 28)


@settings(max_examples=40, deadline=None, suppress_health_check=TMP_OK)
@given(arr=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=4, max_side=6)),
       gz=st.booleans())
def test_read_idx_round_trip(tmp_path: Path, arr: np.ndarray, gz: bool) -> None:
    path = write(tmp_path / "r.idx", idx_bytes(arr.shape, arr.tobytes()), gz)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.flags.c_contiguous and out.shape == arr.shape
    assert np.array_equal(out, arr)


@settings(max_examples=150, deadline=None, suppress_health_check=TMP_OK)
@given(gz=st.booleans(), cut=st.integers(0, 40),
       flips=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 255)), max_size=3),
       extra=st.binary(max_size=4))
def test_read_idx_fuzz_only_data_errors(tmp_path: Path, gz: bool, cut: int,
                                        flips: list[tuple[int, int]], extra: bytes) -> None:
    content = bytearray(_GOOD_GZ if gz else _GOOD)
    for pos, value in flips:
        if pos < len(content):
            content[pos] = value
    content = content[:len(content) - cut] + extra if cut < len(content) else bytearray(extra)
    path = write(tmp_path / "f.idx", bytes(content))
    try:
        out = read_idx(path)
    except DataError as e:
        assert str(path) in str(e)
    else:
        assert out.dtype == np.uint8 and out.size == int(np.prod(out.shape))


# --------------------------------------------------------------------------- CSV

def test_read_csv_small_grows_across_chunks(tmp_path: Path) -> None:
    rows = [[i % 10, i, 255 - i] for i in range(7)]
    text = "label,pixel0,pixel1\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    path = write(tmp_path / "t.csv", text.encode())
    X, y = read_csv(path, chunksize=2)
    assert X.dtype == np.uint8 and X.shape == (7, 2) and X.flags.c_contiguous and X.flags.owndata
    assert y is not None and y.tolist() == [r[0] for r in rows]
    assert X.tolist() == [r[1:] for r in rows]
    # Same content gzip-compressed under a plain .csv name: detected by magic bytes.
    Xg, yg = read_csv(write(tmp_path / "g.csv", text.encode(), gz=True))
    assert np.array_equal(Xg, X) and np.array_equal(yg, y)


def test_read_csv_without_labels(tmp_path: Path) -> None:
    path = write(tmp_path / "test.csv", b"pixel0,pixel1,pixel2\n0,1,2\n3,4,5\n")
    X, y = read_csv(path)
    assert y is None and X.tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(DataError, match="no label column"):
        load_dataset(path)


def test_load_dataset_csv(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv.gz", b"label,pixel0\n4,9\n", gz=True)
    X, y, X_test, y_test = load_dataset(path)
    assert X.tolist() == [[9]] and y.tolist() == [4] and X_test is None and y_test is None
    with pytest.raises(DataError, match="neither"):
        load_dataset(write(tmp_path / "d.txt", b"label,pixel0\n4,9\n"))


H = "label,pixel0,pixel1,pixel2\n"
CSV_CASES = {
    # name: (file bytes, word the message must contain)
    "empty": (b"", "empty"),
    "header_only": (H.encode(), "no data rows"),
    "header_then_blank_lines": ((H + "\n\n").encode(), "no data rows"),
    "no_header": (b"1,0,0,0\n2,0,0,0\n", "no valid header"),
    "missing_column_in_header": (b"label,pixel0,pixel2\n1,0,0\n", "'pixel1'"),
    "duplicate_column": (b"label,pixel0,pixel0\n1,0,0\n", "'pixel1'"),
    "label_only": (b"label\n1\n", "no pixel columns"),
    "missing_cell": ((H + "1,0,0,0\n2,0,0\n").encode(), "missing cell"),
    "empty_cell": ((H + "1,0,,0\n").encode(), "missing cell"),
    "short_first_row": ((H + "1,0,0\n2,0,0,0\n").encode(), "cells"),
    "extra_column": ((H + "1,0,0,0\n2,0,0,0,9\n").encode(), "cells"),
    "extra_first_row": ((H + "1,0,0,0,9\n2,0,0,0\n").encode(), "cells"),
    "trailing_comma": ((H + "1,0,0,0,\n").encode(), "cells"),
    "text": ((H + "1,0,abc,0\n").encode(), "non-integer value 'abc'"),
    "bool": ((H + "1,0,True,0\n").encode(), "non-integer"),
    "float": ((H + "1,0,1.5,0\n").encode(), "non-integer value 1.5"),
    "integral_float": ((H + "1,0,2.0,0\n").encode(), "non-integer"),
    "value_256": ((H + "1,0,256,0\n").encode(), "value 256 in column 'pixel1'"),
    "value_minus_1": ((H + "1,0,0,-1\n").encode(), "value -1 in column 'pixel2'"),
    "label_256": ((H + "256,0,0,0\n").encode(), "outside the label range"),
    "huge_integer": ((H + "1,0,99999999999999999999999,0\n").encode(), "outside the pixel range"),
    "not_utf8": ((H + "1,0,\xff,0\n").encode("latin-1"), "UTF-8"),
    "truncated_gzip": (gzip.compress((H + "1,0,0,0\n" * 50).encode())[:-12], "gzip"),
    "late_bad_row": ((H + "1,0,0,0\n" * 4 + "1,0,300,0\n").encode(), "data row 5"),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_bad_csv_files(tmp_path: Path, case: str) -> None:
    content, word = CSV_CASES[case]
    path = write(tmp_path / f"{case}.csv", content)
    with pytest.raises(DataError, match=word) as e:
        read_csv(path, chunksize=2)  # small chunks: errors in later chunks are found too
    assert str(path) in str(e.value)


@settings(max_examples=60, deadline=None, suppress_health_check=TMP_OK)
@given(data=st.binary(max_size=8), pos=st.integers(0, 40))
@example(data=b"\x1c", pos=29)  # "\x1c0": Unicode whitespace to re's \s, not to int() (found by this test)
def test_read_csv_fuzz_only_data_errors(tmp_path: Path, data: bytes, pos: int) -> None:
    good = (H + "1,0,12,255\n3,4,5,6\n").encode()
    path = write(tmp_path / "f.csv", good[:pos] + data + good[pos:])
    try:
        X, y = read_csv(path)
    except DataError as e:
        assert str(path) in str(e)
    else:
        assert X.dtype == np.uint8 and X.shape[1] == 3 and y is not None and len(y) == len(X)


def test_import_does_not_load_pandas() -> None:
    import subprocess
    import sys

    code = "import sys, fastnn.data.datasets; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"



CSV_TEXTS = {
    "labels": "label,pixel0,pixel1,pixel2\n3,0,255,7\n9,10,0,1\n",
    "no labels": "pixel0,pixel1\n0,1\n255,254\n",
    "crlf": "label,pixel0,pixel1\r\n1,2,3\r\n4,5,6\r\n",
    "no last newline": "label,pixel0,pixel1\n1,2,3\n4,5,6",
    "leading zeros": "label,pixel0,pixel1\n001,007,255\n0,00,010\n",
    # not plain digits and commas: read again by pandas
    "spaces": "label,pixel0,pixel1\n1, 2,3\n4,5 ,6\n",
    "quoted cells": 'label,pixel0,pixel1\n"1","2",3\n4,5,6\n',
    "blank line": "label,pixel0,pixel1\n1,2,3\n\n4,5,6\n",
}


@pytest.mark.parametrize("text", CSV_TEXTS.values(), ids=CSV_TEXTS.keys())
def test_the_one_pass_parser_reads_what_pandas_reads(tmp_path: Path, monkeypatch, text: str) -> None:
    import fastnn.data.datasets as datasets

    path = write(tmp_path / "d.csv", text.encode())
    X, y = read_csv(path)
    monkeypatch.setattr(datasets, "_plain_csv_values", lambda *args: None)  # pandas alone
    X_pandas, y_pandas = read_csv(path)
    assert X.dtype == np.uint8 and X.flags.c_contiguous and np.array_equal(X, X_pandas)
    assert (y is None and y_pandas is None) or (y.dtype == np.uint8 and np.array_equal(y, y_pandas))


def test_rows_across_the_parsers_blocks_and_growth(tmp_path: Path, monkeypatch) -> None:
    import fastnn.data.datasets as datasets

    rows = np.random.default_rng(0).integers(0, 256, (300, 5))
    text = "label,pixel0,pixel1,pixel2,pixel3\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    monkeypatch.setattr(datasets, "_CSV_BLOCK_BYTES", 7)  # rows cut across reads, and X grown 3 -> 6 -> ...
    for gz in (False, True):
        X, y = read_csv(write(tmp_path / f"d{gz}.csv", text.encode(), gz=gz), chunksize=3)
        assert X.tolist() == rows[:, 1:].tolist() and y.tolist() == rows[:, 0].tolist()


def test_the_parser_stays_inside_its_arrays() -> None:
    """kernels/csv.py has no index checks: it stops where X, y or the buffer ends, whatever it is told."""
    from fastnn.native.loader import kernel

    buf = np.frombuffer(bytearray(b"1,2,3\n4,5,6\n7,8,9\n"), dtype=np.uint8).copy()
    X, y, out = np.zeros((3, 2), np.uint8), np.zeros(2, np.uint8), np.zeros(3, np.int64)
    kernel("parse_csv_rows")(buf, 10_000, X, y, 0, out)  # y has room for two rows, the buffer is shorter
    assert out.tolist() == [2, 12, 0] and y.tolist() == [1, 4] and X[:2].tolist() == [[2, 3], [5, 6]]
    assert X[2].tolist() == [0, 0]
