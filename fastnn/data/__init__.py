"""Data on its way to the kernels: file readers and MNIST (datasets.py), the checks at the API's
boundary (checks.py), inputs converted once into sorted sparse rows (prepared.py), and the
examples as the kernels read them, with the validation split (examples.py)."""
