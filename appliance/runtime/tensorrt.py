"""TensorRT 10 on the Jetson: engines built from the bundle's ONNX, cached on disk.

Written against the TensorRT 10 Python API and pycuda; neither exists on the
development machines, so this module has NOT been executed here (see the README).
INT8 uses explicit quantization: the bundle's QDQ model carries the scales, so no
calibrator runs on the device (TensorRT 10 deprecates implicit INT8 calibration).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from appliance.runtime.base import Backend, BackendUnavailable, Model, ModelError, TensorSpec
from appliance.runtime.bundle import load_verified, model_file, reference_mismatch

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path(os.environ.get("APPLIANCE_ENGINE_CACHE", "/var/cache/appliance/engines"))
WORKSPACE_BYTES = 1 << 30


def import_tensorrt() -> tuple[Any, Any]:
    """(tensorrt, pycuda.driver), or BackendUnavailable saying what is missing."""
    try:
        import pycuda.driver as cuda
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailable(f"TensorRT backend needs tensorrt and pycuda ({exc})") from exc
    except OSError as exc:  # libnvinfer / libcuda present but broken
        raise BackendUnavailable(f"TensorRT failed to load: {exc}") from exc
    if int(trt.__version__.split(".")[0]) < 10:
        raise BackendUnavailable(f"TensorRT {trt.__version__} found; 10 or newer is needed")
    return trt, cuda


def engine_key(model_sha256: str, trt_version: str, gpu_arch: str, precision: str) -> str:
    """Cache key: an engine is only valid for this exact model, TensorRT and GPU."""
    text = f"{model_sha256}|{trt_version}|{gpu_arch}|{precision}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class TensorRTModel(Model):
    """One execution context with device buffers bound once by tensor address."""

    def __init__(self, trt: Any, cuda: Any, engine: Any, name: str, precision: str) -> None:
        self._cuda = cuda
        self._engine = engine
        self._context = engine.create_execution_context()
        self._stream = cuda.Stream()
        self.name = name
        self.precision = precision
        self.inputs, self.outputs = [], []
        self._host: dict[str, np.ndarray] = {}
        self._device: dict[str, Any] = {}
        for i in range(engine.num_io_tensors):
            tensor = engine.get_tensor_name(i)
            shape = tuple(int(d) for d in engine.get_tensor_shape(tensor))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(tensor)))
            spec = TensorSpec(tensor, shape, dtype.name)
            is_input = engine.get_tensor_mode(tensor) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append(spec)
            self._host[tensor] = cuda.pagelocked_empty(shape, dtype)
            self._device[tensor] = cuda.mem_alloc(self._host[tensor].nbytes)
            self._context.set_tensor_address(tensor, int(self._device[tensor]))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.check_feeds(feeds)
        for spec in self.inputs:
            np.copyto(self._host[spec.name], feeds[spec.name])
            self._cuda.memcpy_htod_async(
                self._device[spec.name], self._host[spec.name], self._stream
            )
        return self._execute()

    def run_device(self, addresses: dict[str, int]) -> dict[str, np.ndarray]:
        """Zero-copy: read inputs where they already are on the GPU (e.g. the ``ptr`` of
        a jetson_utils ``cudaImage`` prepared in the model's layout), no host round trip.
        The addresses stay bound only for this call."""
        for spec in self.inputs:
            self._context.set_tensor_address(spec.name, int(addresses[spec.name]))
        try:
            return self._execute()
        finally:
            for spec in self.inputs:
                self._context.set_tensor_address(spec.name, int(self._device[spec.name]))

    def _execute(self) -> dict[str, np.ndarray]:
        if not self._context.execute_async_v3(self._stream.handle):
            raise ModelError(f"{self.name}: TensorRT execution failed")
        for spec in self.outputs:
            self._cuda.memcpy_dtoh_async(
                self._host[spec.name], self._device[spec.name], self._stream
            )
        self._stream.synchronize()
        return {spec.name: self._host[spec.name].copy() for spec in self.outputs}

    def close(self) -> None:
        for buffer in self._device.values():
            buffer.free()
        self._device.clear()


class TensorRTBackend(Backend):
    """Builds (once) and runs TensorRT engines.

    ``auto`` precision is INT8 when the bundle ships a QDQ model (explicit
    quantization, FP16 allowed for the layers it leaves in float) and that engine
    reproduces the bundle's reference outputs on this GPU, else FP16.
    """

    name = "tensorrt"

    def __init__(self, cache_dir: Path = DEFAULT_CACHE, device: int = 0) -> None:
        self._trt, self._cuda = import_tensorrt()
        self._cuda.init()
        self._gpu = self._cuda.Device(device)
        self._context = self._gpu.retain_primary_context()
        self._context.push()
        major, minor = self._gpu.compute_capability()
        self.gpu_arch = f"sm_{major}{minor}"
        self.version = str(self._trt.__version__)
        self.cache_dir = cache_dir
        self._logger = self._trt.Logger(self._trt.Logger.WARNING)
        self.choices: dict[str, dict[str, Any]] = {}

    def load(self, bundle_dir: Path, precision: str = "auto") -> Model:
        manifest = load_verified(bundle_dir)
        name = str(manifest["name"])
        if precision != "auto":
            self.choices[name] = {"precision": precision, "asked": precision}
            return self._engine(Path(bundle_dir), manifest, precision)
        if model_file(manifest, "int8") is None:
            self.choices[name] = {"precision": "fp16", "asked": "auto"}
            return self._engine(Path(bundle_dir), manifest, "fp16")
        int8 = self._engine(Path(bundle_dir), manifest, "int8")
        why = reference_mismatch(Path(bundle_dir), int8)
        if why is None:
            self.choices[name] = {"precision": "int8", "asked": "auto"}
            return int8
        int8.close()
        log.warning("%s: int8 refused on this GPU (%s); it runs fp16", name, why)
        self.choices[name] = {"precision": "fp16", "asked": "auto", "refused": {"int8": why}}
        return self._engine(Path(bundle_dir), manifest, "fp16")

    def _engine(self, bundle_dir: Path, manifest: dict[str, Any], precision: str) -> Model:
        """The cached engine for ``precision`` (built on first use, minutes)."""
        name = str(manifest["name"])
        source = model_file(manifest, "int8" if precision == "int8" else "fp32")
        if source is None:
            raise ModelError(f"{name}: the bundle has no model for {precision}")
        sha = str(manifest["files"][source]["sha256"])
        key = engine_key(sha, self.version, self.gpu_arch, precision)
        path = self.cache_dir / f"{name}-{key}.engine"
        runtime = self._trt.Runtime(self._logger)
        engine = None
        if path.is_file():
            engine = runtime.deserialize_cuda_engine(path.read_bytes())
            if engine is None:
                log.warning("%s: cached engine %s unusable; rebuilding", name, path.name)
        if engine is None:
            plan = self._build(bundle_dir / source, precision, name)
            _write_atomic(path, plan)
            engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise ModelError(f"{name}: TensorRT could not deserialize the engine it built")
        return TensorRTModel(self._trt, self._cuda, engine, name, precision)

    def _build(self, onnx_path: Path, precision: str, name: str) -> bytes:
        trt = self._trt
        log.info("%s: building a %s TensorRT engine for %s (minutes, once)", name, precision,
                 self.gpu_arch)  # fmt: skip
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError(f"{name}: TensorRT cannot parse {onnx_path.name}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # honour the Q/DQ nodes' scales
        timing_path = self.cache_dir / f"timing-{self.version}-{self.gpu_arch}.cache"
        timing_bytes = timing_path.read_bytes() if timing_path.is_file() else b""
        cache = config.create_timing_cache(timing_bytes)
        config.set_timing_cache(cache, ignore_mismatch=False)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ModelError(f"{name}: TensorRT failed to build the engine (see the log above)")
        _write_atomic(timing_path, bytes(memoryview(config.get_timing_cache().serialize())))
        return bytes(memoryview(plan))


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
