"""Firmware service for an AI conference camera."""

import os

# One process, a thread per stage: the stages are the parallelism. A BLAS thread pool
# of its own per NumPy call only spins against the other stages (measured: the
# frontalization's small spline solve went from 2.3 to 135 ms per frame with the other
# core busy). Set before NumPy loads; an explicit setting in the environment wins.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

__version__ = "0.1.0"
