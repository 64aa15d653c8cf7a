"""Assemble ``manifest.json`` (format 1) from a model spec and the build's figures."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

from appliance.runtime.bundle import FORMAT, MANIFEST, sha256_file
from engines import models
from engines.convert import OPSET
from engines.models import ModelSpec

MIN_ONNXRUNTIME = "1.16"  # opset 17 + per-channel QDQ (axis attribute) + IR 8
CONVERTERS = (
    "tensorflow-cpu",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "ai-edge-litert",
    "numpy",
    "opencv-python-headless",
)
# FP32 reference outputs are compared as max|got - stored| <= atol + rtol * max|stored|:
# room for another CPU's summation order (aarch64 under emulation: 1.4e-4 of a 122 logit).
FP32_TOLERANCE = {"atol": 1e-4, "rtol": 1e-4}


def reference_tolerance(spec: ModelSpec, built: float) -> dict[str, Any]:
    """How a machine judges that it runs the bundle's models as they were built.

    INT8 is judged by its accuracy gate, recomputed there: the gate metric between the
    INT8 outputs it computes and the FP32 outputs stored here, mean over the reference
    inputs, must meet the gate's threshold. Raw INT8 outputs legitimately differ between
    CPU classes (face detection logits by 15 on aarch64, the decoded box the same);
    what the gate measures must not. ``built`` is the figure on the building machine.
    """
    gate = spec.gate
    return {
        "fp32": FP32_TOLERANCE,
        "int8": {
            "metric": gate.metric,
            "threshold": gate.threshold,
            "higher_is_better": gate.higher_is_better,
            "against": "fp32",
            "built": built,
        },
    }


def converter_versions() -> dict[str, str]:
    found = {}
    for name in CONVERTERS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def build_manifest(
    spec: ModelSpec,
    bundle_dir: Path,
    wheel_sha256: str,
    conversion: dict[str, Any],
    int8: dict[str, Any],
    calibration: dict[str, Any],
    notes: list[str],
    shapes: dict[str, list[int]],
    reference_count: int,
    reference_gate: float,
) -> dict[str, Any]:
    roles = {".fp32.onnx": ("model", "fp32"), ".int8.onnx": ("model", "int8")}
    files = {}
    for path in sorted(bundle_dir.iterdir()):
        if path.name == MANIFEST:
            continue
        role, precision = next(
            (v for k, v in roles.items() if path.name.endswith(k)), ("reference", None)
        )
        entry: dict[str, Any] = {"sha256": sha256_file(path), "size": path.stat().st_size}
        entry["role"] = role
        if precision:
            entry["precision"] = precision
        files[path.name] = entry
    inp = spec.input
    lo, hi = inp.offset, inp.offset + 255 * inp.scale
    return {
        "format": FORMAT,
        "name": spec.name,
        "version": spec.version,
        "created": models.CREATED,
        "description": spec.title,
        "provenance": {
            "source": {
                "package": f"{models.SOURCE_PACKAGE}=={models.SOURCE_VERSION}",
                "wheel": models.SOURCE_WHEEL,
                "wheel_sha256": wheel_sha256,
                "member": spec.member,
                "tflite_sha256": spec.tflite_sha256,
                "licence": models.LICENCE,
            },
            "converters": converter_versions(),
            "recipe": "engines/ in the appliance repository (make engines)",
            "calibration": calibration,
            "notes": notes,
        },
        "compatibility": {
            "onnx_opset": OPSET,
            "onnx_ir_version": 8,
            "min_onnxruntime": MIN_ONNXRUNTIME,
            "tensorrt": ">=10.0: explicit quantization from the QDQ model; FP32 model -> FP16/FP32",
            "input_layout": "NCHW",
            "batch": 1,
        },
        "inputs": [
            {
                "name": inp.name,
                "shape": shapes[inp.name],
                "dtype": "float32",
                "layout": "NCHW",
                "color": "RGB",
                "scale": inp.scale,
                "offset": inp.offset,
                "range": [lo, round(hi, 6)],
                "roi": inp.roi,
            }
        ],
        "outputs": [
            {
                "name": o.name,
                "shape": shapes[o.name],
                "dtype": "float32",
                "description": o.description,
                "units": o.units,
            }
            for o in spec.outputs
        ],
        "postprocess": spec.postprocess,
        "files": files,
        "accuracy": {"conversion": conversion, "int8": int8},
        "reference": {
            "file": "reference.npz",
            "count": reference_count,
            "input_key": "input_rgb_u8",
            "tolerance": reference_tolerance(spec, reference_gate),
        },
    }


def write_manifest(bundle_dir: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (bundle_dir / MANIFEST).write_text(text, encoding="utf-8")
