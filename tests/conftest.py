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
