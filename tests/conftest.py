"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data folder: $FASTNN_DATA, else ../shared/data next to the repo."""
    folder = Path(os.environ.get("FASTNN_DATA") or Path(__file__).parents[2] / "shared" / "data")
    if not folder.is_dir():
        pytest.skip(f"real data folder {folder} is missing (set FASTNN_DATA)")
    return folder


@pytest.fixture(scope="session")
def mnist(shared_data):
    """The real MNIST set (60,000 training and 10,000 test images), loaded once per session."""
    from fastnn.datasets import load_mnist

    return load_mnist(shared_data, download=False)


@pytest.fixture
def force_parallel(monkeypatch):
    """Make fit take the parallel kernel whatever the batch's size, to test that path."""
    import fastnn.model

    monkeypatch.setattr(fastnn.model, "PARALLEL_MIN_WORK", 0)
