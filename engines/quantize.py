"""FP32 ONNX -> INT8 QDQ, the way TensorRT 10 reads explicit quantization.

- QDQ format (QuantizeLinear/DequantizeLinear pairs in a float graph): TensorRT 10
  builds INT8 kernels from them and ignores its deprecated implicit calibrators.
- Symmetric int8 for activations and weights (zero point 0): TensorRT supports
  only symmetric quantization.
- Per-channel weights (axis = output channels), per-tensor activations.
- Biases stay float (``QuantizeBias: False``): TensorRT folds a float bias into the
  INT8 convolution itself, and an int32 DequantizeLinear is no input it accepts.
- Depthwise -> pointwise pairs are equalized first (``engines.equalize``).
- MinMax calibration over real frames (``engines.calibration``), one tensor per frame.
- ``float_tail``: named nodes and everything downstream of them stay float (the
  detector's regression heads); TensorRT runs those layers in FP16.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Progress = Callable[[str], None]


class _Reader:
    """Feeds calibration tensors to ONNX Runtime, printing per-frame progress."""

    def __init__(self, input_name: str, tensors: list[np.ndarray], label: str, progress: Progress):
        self.input_name = input_name
        self.tensors = tensors
        self.label = label
        self.progress = progress
        self.index = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self.tensors):
            return None
        tensor = self.tensors[self.index]
        self.index += 1
        if self.index == len(self.tensors) or self.index % 8 == 0:
            self.progress(f"  calibrating {self.label}: frame {self.index}/{len(self.tensors)}")
        return {self.input_name: tensor}

    def rewind(self) -> None:
        self.index = 0


def tail_nodes(model: Any, starts: tuple[str, ...]) -> list[str]:
    """The named nodes and every node fed (transitively) by their outputs."""
    tail = set(starts)
    produced = {o for n in model.graph.node if n.name in tail for o in n.output}
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        if node.name not in tail and produced.intersection(node.input):
            tail.add(node.name)
            produced.update(node.output)
    missing = set(starts) - {n.name for n in model.graph.node}
    if missing:
        raise RuntimeError(f"float_tail names unknown nodes: {sorted(missing)}")
    return [n.name for n in model.graph.node if n.name in tail]


def quantize(
    fp32_path: Path,
    int8_path: Path,
    input_name: str,
    tensors: list[np.ndarray],
    float_tail: tuple[str, ...] = (),
    progress: Progress = print,
) -> dict[str, Any]:
    """Write the INT8 QDQ model; returns its settings for the manifest."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from engines.equalize import equalize

    prepared = int8_path.with_suffix(".prep.onnx")
    # ONNX shape inference only (shapes are static): ORT's graph optimizations would
    # rewrite ops (HardSwish into HardSigmoid*x) and add contrib opset imports.
    quant_pre_process(
        str(fp32_path), str(prepared), skip_optimization=True, skip_symbolic_shape=True
    )
    pairs = equalize(prepared, prepared, [{input_name: t} for t in tensors])
    progress(f"  equalized {pairs} depthwise->conv pairs")
    exclude = tail_nodes(onnx.load(str(prepared)), float_tail) if float_tail else []
    settings: dict[str, Any] = {
        "format": "QDQ",
        "activations": "int8 symmetric, per tensor",
        "weights": "int8 symmetric, per channel",
        "bias": "float",
        "cross_layer_equalization_pairs": pairs,
        "calibration": "MinMax",
        "frames": len(tensors),
        "float_nodes": exclude,
    }
    try:
        quantize_static(
            str(prepared),
            str(int8_path),
            _Reader(input_name, tensors, int8_path.name, progress),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=exclude,
            extra_options={
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "QuantizeBias": False,
            },
        )
    finally:
        prepared.unlink(missing_ok=True)
    return settings
