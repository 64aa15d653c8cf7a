"""One small inference interface; a backend per runtime (ONNX Runtime, TensorRT)."""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class BackendUnavailable(RuntimeError):
    """The runtime is not installed or has no device here; the message says which."""


class ModelError(RuntimeError):
    """A model cannot be loaded or was given inputs it cannot take."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> TensorSpec:
        return cls(str(entry["name"]), tuple(int(d) for d in entry["shape"]), entry["dtype"])


class Model(abc.ABC):
    """A loaded network. ``run`` is called from one pipeline thread at a time."""

    name: str
    precision: str  # "fp32", "fp16" or "int8": what actually runs
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @abc.abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Host arrays in, host arrays out, by tensor name."""

    def close(self) -> None:  # noqa: B027 - optional: backends holding device memory override
        """Free what the model holds; safe to call twice."""

    def check_feeds(self, feeds: dict[str, np.ndarray]) -> None:
        """Refuse wrong names, shapes or dtypes with a message, before the runtime does."""
        for spec in self.inputs:
            array = feeds.get(spec.name)
            if array is None:
                raise ModelError(f"{self.name}: missing input {spec.name!r}")
            if tuple(array.shape) != spec.shape or array.dtype != np.dtype(spec.dtype):
                raise ModelError(
                    f"{self.name}: input {spec.name!r} must be {spec.dtype}{list(spec.shape)}, "
                    f"got {array.dtype}{list(array.shape)}"
                )


class Backend(abc.ABC):
    name: str
    #: per model name, what ``load`` chose and why: ``precision``, ``ms`` per precision
    #: timed, ``refused`` (precision -> reason); shown in the daemon's status.
    choices: dict[str, dict[str, Any]]

    @abc.abstractmethod
    def load(self, bundle_dir: Path, precision: str = "auto") -> Model:
        """Load a verified bundle's model; ``auto`` picks the best precision here."""


def time_model(model: Model, runs: int, warmup: int = 1) -> float:
    """Median seconds per inference. Random inputs: all-zero ones run measurably faster
    on CPU kernels, which would flatter the figure."""
    rng = np.random.default_rng(0)
    feeds = {s.name: rng.random(s.shape).astype(np.dtype(s.dtype)) for s in model.inputs}
    for _ in range(warmup):  # the first runs allocate
        model.run(feeds)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        model.run(feeds)
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))
