"""asv benchmarks for fastnn (see asv.conf.json at the repository root and README.md).

Modules follow numpy's benchmarks layout: ``common`` holds the shared helpers and constants,
each ``bench_*`` module holds classes with ``setup``, ``params``/``param_names`` and
``time_*``/``peakmem_*``/``track_*`` methods.
"""
