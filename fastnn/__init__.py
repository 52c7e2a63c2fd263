"""fastnn: fast, reproducible training of small dense neural networks on the CPU.

The public API. Importing it compiles nothing: the Numba kernels load (from the on-disk
cache after the first run) when a model first trains or predicts.
"""

from . import schedules
from .errors import DataError, FastnnError, ModelFileError, TrainingDivergedError, WorkerStalledError
from .many import fit_many
from .model import MLP
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from .lbfgs import LBFGS
from .data.prepared import PreparedInputs, prepare
from .sweeps import sweep
from .training import EarlyStopping, History

__version__ = "0.1.0"

__all__ = ["MLP", "fit_many", "prepare", "PreparedInputs", "History", "EarlyStopping", "Optimizer", "SGD", "RMSprop",
           "Adam", "AdamW", "LBFGS", "schedules", "sweep", "FastnnError", "DataError", "ModelFileError", "TrainingDivergedError",
           "WorkerStalledError", "__version__"]
