"""fastnn: fast, reproducible training of small dense neural networks on the CPU.

The public API. Importing it compiles nothing: the Numba kernels load (from the on-disk
cache after the first run) when a model first trains or predicts.
"""

from .errors import DataError, FastnnError, ModelFileError, TrainingDivergedError
from .model import MLP, History

__version__ = "0.1.0"

__all__ = ["MLP", "History", "FastnnError", "DataError", "ModelFileError", "TrainingDivergedError",
           "__version__"]
