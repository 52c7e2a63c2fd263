"""Reading data files: the digits CSV reader."""

from __future__ import annotations

import os

from .common import Benchmark


class ReadCSV(Benchmark):
    """``fastnn.data.datasets.read_csv`` of the Kaggle digits CSV (train.csv.gz: 42,000 rows of 785
    cells, 77 MB of text), parsed in one pass by kernels/csv.py."""

    def setup(self):
        from fastnn.data.datasets import read_csv

        self.path = os.path.join(os.environ["FASTNN_DATA"], "digit-recognizer", "train.csv.gz")
        read_csv(self.path)  # its parser compiled or loaded outside the timing

    def time_read_csv(self):
        from fastnn.data.datasets import read_csv

        read_csv(self.path)
