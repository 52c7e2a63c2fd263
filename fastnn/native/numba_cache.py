"""Numba's on-disk cache of the kernels, read so that a corrupt file is a cache miss.

Numba unpickles a kernel's index file (.nbi) and data files (.nbc) as it finds them: an empty,
truncated or garbled one raises EOFError, UnpicklingError or whatever the garbage decodes to,
out of the kernel's first call. Here each such file counts as absent: the kernel compiles, and
Numba's save then writes a good file over the bad one. (Numba records no checksum: a file
altered in a way that still unpickles, inside its machine code, is not detected.)

loader.Kernel.jit(), which hands out the entry kernels' dispatchers, installs this on every
cached kernel of fastnn.kernels before the first of them compiles.
"""

from __future__ import annotations

import sys

from numba.core.caching import FunctionCache, IndexDataCacheFile
from numba.core.dispatcher import Dispatcher


class CheckedCacheFile(IndexDataCacheFile):
    """Numba's index and data files of one kernel, where a file that cannot be read is a miss."""

    def _load_index(self) -> dict:
        try:
            return super()._load_index()
        except Exception:  # unpickling garbage can raise nearly anything
            return {}  # as for no index: the save after compiling writes a new one

    def _load_data(self, name: str):
        try:
            return super()._load_data(name)
        except OSError:
            raise
        except Exception as error:
            # load() takes an OSError for a data file that went away: a miss.
            raise OSError(f"corrupt Numba cache file {self._data_path(name)}") from error


class CheckedFunctionCache(FunctionCache):
    """Numba's cache of one kernel's compiled code, through CheckedCacheFile; a cached result
    that unpickles but cannot be rebuilt is a miss too."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = CheckedCacheFile(cache_path=self._cache_path, filename_base=self._impl.filename_base,
                                            source_stamp=self._impl.locator.get_source_stamp())

    def _load_overload(self, sig, target_context):
        try:
            return super()._load_overload(sig, target_context)
        except Exception:
            return None  # compiled again, and saved over the bad entry (same key, same file)


def check_kernel_caches() -> None:
    """Give every cached kernel of the fastnn.kernels modules imported so far (the entry
    kernels and all they call) a CheckedFunctionCache; call before they compile."""
    for name, module in list(sys.modules.items()):
        if name.startswith("fastnn.kernels.") and module is not None:
            for value in list(vars(module).values()):
                if isinstance(value, Dispatcher) and type(getattr(value, "_cache", None)) is FunctionCache:
                    value._cache = CheckedFunctionCache(value.py_func)
