"""Benchmarks for fastnn: `python -m bench.compare` compares it with other frameworks.

Kept free of imports on purpose: bench.compare must set thread and BLAS
environment variables before numpy, torch or jax are first imported.
"""
