"""The entry kernels built ahead of time into one shared library: build.py makes it (``fastnn
build``), loader.py loads it and calls it, and falls back to Numba's JIT where it cannot serve a
call. A process that finds the library neither imports Numba nor compiles."""
