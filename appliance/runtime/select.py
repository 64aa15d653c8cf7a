"""Choose the inference backend once, at start-up, by probing what is installed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from appliance.runtime.base import Backend, BackendUnavailable

log = logging.getLogger(__name__)


def _tensorrt(threads: int) -> Backend:
    from appliance.runtime.tensorrt import TensorRTBackend

    return TensorRTBackend()


def _onnxruntime(threads: int) -> Backend:
    from appliance.runtime.onnx import OnnxRuntimeBackend

    return OnnxRuntimeBackend(threads=threads)


# In order of preference: TensorRT where a GPU and TensorRT exist, else ONNX Runtime.
CANDIDATES: dict[str, Callable[[int], Backend]] = {
    "tensorrt": _tensorrt,
    "onnxruntime": _onnxruntime,
}


def available_backends() -> tuple[list[Backend], dict[str, str]]:
    """Every backend that starts here, best first, and why each other one did not."""
    found: list[Backend] = []
    reasons: dict[str, str] = {}
    for name, make in CANDIDATES.items():
        try:
            found.append(make(1))
        except BackendUnavailable as exc:
            reasons[name] = str(exc)
        except Exception as exc:  # a broken driver must not stop the daemon from starting
            reasons[name] = f"failed to start: {exc!r}"
    return found, reasons


def choose_backend(preferred: str = "auto", threads: int = 1) -> Backend:
    """The backend to use: ``preferred`` by name, or the best available for ``auto``.

    ``threads``: CPU threads per network, for the CPU backend."""
    names = list(CANDIDATES) if preferred == "auto" else [preferred]
    reasons = []
    for name in names:
        if name not in CANDIDATES:
            raise BackendUnavailable(
                f"unknown inference backend {name!r} ({', '.join(CANDIDATES)})"
            )
        try:
            backend = CANDIDATES[name](threads)
        except BackendUnavailable as exc:
            reasons.append(str(exc))
            continue
        log.info("inference backend: %s", name)
        return backend
    raise BackendUnavailable("no inference backend: " + "; ".join(reasons))


def backend_for(config: Any) -> Backend:
    """The backend ``config.vision`` names (``backend``, ``threads``): every stage's
    networks run on it, so they share one choice and one log line."""
    section = getattr(config, "vision", None)
    return choose_backend(
        str(getattr(section, "backend", "auto")), int(getattr(section, "threads", 1))
    )
