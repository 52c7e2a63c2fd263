"""The exceptions fastnn raises for bad input: one place, so callers can catch them."""


class FastnnError(Exception):
    """Base class of every error fastnn raises on purpose."""


class DataError(FastnnError, ValueError):
    """Data that cannot be used: missing, corrupt, truncated, or of the wrong shape or values."""


class ModelFileError(FastnnError, ValueError):
    """A model file that cannot be loaded: missing, corrupt, tampered with, or of another version."""


class TrainingDivergedError(FastnnError, FloatingPointError):
    """The loss became NaN or infinite; the last good weights were kept."""


class WorkerStalledError(FastnnError, RuntimeError):
    """A training thread waited for the others with no progress for workers.PATIENCE_SECONDS;
    the weights from before the kernel call were kept."""
