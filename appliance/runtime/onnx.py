"""ONNX Runtime on the CPU: the backend of every machine without TensorRT."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from appliance.runtime.base import (
    Backend,
    BackendUnavailable,
    Model,
    ModelError,
    TensorSpec,
    time_model,
)
from appliance.runtime.bundle import load_verified, model_file, reference_mismatch

log = logging.getLogger(__name__)

TIMING_RUNS = 10


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailable(f"onnxruntime is not installed ({exc})") from exc
    return onnxruntime


class OnnxModel(Model):
    def __init__(self, session: Any, name: str, precision: str) -> None:
        self._session = session
        self.name = name
        self.precision = precision
        self.inputs = [_spec(i) for i in session.get_inputs()]
        self.outputs = [_spec(o) for o in session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.check_feeds(feeds)
        values = self._session.run(self._output_names, feeds)
        return dict(zip(self._output_names, values, strict=True))


def _spec(arg: Any) -> TensorSpec:
    dtype = {"tensor(float)": "float32", "tensor(uint8)": "uint8"}.get(arg.type, arg.type)
    return TensorSpec(arg.name, tuple(int(d) for d in arg.shape), dtype)


class OnnxRuntimeBackend(Backend):
    """CPU sessions with a fixed thread count (the pipeline's threads share the cores).

    ``auto`` precision keeps the fastest precision whose reference outputs reproduce on
    this CPU. Both checks are needed: x86 CPUs without VNNI often run QDQ INT8 slower
    than FP32 (measured here for the face mesh), and integer kernels differ between CPU
    classes, so an INT8 model built on one machine can compute something else on
    another. FP32 is the fallback and is always kept.
    """

    name = "onnxruntime"

    def __init__(self, threads: int = 1) -> None:
        self._ort = import_onnxruntime()
        self.threads = threads
        self.version = str(self._ort.__version__)
        self.choices: dict[str, dict[str, Any]] = {}

    def _session(self, path: Path) -> Any:
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            return self._ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"{path.name}: onnxruntime cannot load it: {exc}") from exc

    def load(self, bundle_dir: Path, precision: str = "auto") -> Model:
        manifest = load_verified(bundle_dir)
        name = str(manifest["name"])
        choices = [p for p in ("fp32", "int8") if model_file(manifest, p)]
        if precision != "auto":
            if precision not in choices:
                raise ModelError(f"{name}: no {precision} model in the bundle ({choices})")
            choices = [precision]
        models = [
            OnnxModel(self._session(Path(bundle_dir) / str(model_file(manifest, p))), name, p)
            for p in choices
        ]
        if len(models) == 1:
            self.choices[name] = {"precision": models[0].precision, "asked": precision}
            return models[0]
        refused = {}
        for model in models[1:]:  # models[0] is FP32: the fallback, never refused
            why = reference_mismatch(Path(bundle_dir), model)
            if why is not None:
                refused[model.precision] = why
                log.warning(
                    "%s: %s refused on this CPU (%s); it runs fp32", name, model.precision, why
                )
        usable = [m for m in models if m.precision not in refused]
        timings = {m.precision: time_model(m, TIMING_RUNS) for m in usable}
        best = min(usable, key=lambda m: timings[m.precision])
        for model in models:
            if model is not best:
                model.close()
        ms = {p: round(t * 1000, 2) for p, t in timings.items()}
        self.choices[name] = {
            "precision": best.precision,
            "asked": "auto",
            "ms": ms,
            "refused": refused,
        }
        log.info(
            "%s: %s on this CPU (%s)",
            name,
            best.precision,
            ", ".join(f"{p} {t:.2f} ms" for p, t in ms.items()),
        )
        return best
