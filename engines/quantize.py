"""FP32 ONNX -> INT8 QDQ, the way TensorRT 10 reads explicit quantization.

- QDQ format (QuantizeLinear/DequantizeLinear pairs in a float graph): TensorRT 10
  builds INT8 kernels from them and ignores its deprecated implicit calibrators.
- Symmetric int8 for activations and weights (zero point 0): TensorRT supports
  only symmetric quantization.
- Per-channel weights (axis = output channels), per-tensor activations.
- Weights in 7 bits (``reduce_range``, -64..64): on x86-64 without VNNI, ONNX Runtime
  runs int8 convolutions as uint8 x int8 with ``vpmaddubsw``, which adds two products
  in a saturating int16; 255 * 127 * 2 overflows it, 255 * 64 * 2 does not. With full
  8-bit weights the same bundle computed other outputs on AVX2-only CPUs than on VNNI
  ones (face detection regressors off by 60 px); with 7 bits they are bit-identical
  on both (AVX-512 VNNI host vs ``qemu-x86_64 -cpu Haswell``) and on aarch64. The
  gates cost it (face mesh NME 0.0081 -> 0.0085, iris 0.0115 -> 0.0149) but hold.
  TensorRT reads the same QDQ graph: 7-bit values are int8 values to it.
- Biases stay float (``QuantizeBias: False``): TensorRT folds a float bias into the
  INT8 convolution itself, and an int32 DequantizeLinear is no input it accepts.
- Depthwise -> pointwise pairs are equalized first (``engines.equalize``).
- MinMax calibration over real frames (``engines.calibration``), one tensor per frame.
- ``float_tail``: named nodes and everything downstream of them stay float (the
  detector's regression heads); TensorRT runs those layers in FP16.
- ``mixed_precision`` (``engines.sensitivity``): the layers left float and the
  calibration are chosen from the gate metric on the selection frames; TensorRT
  runs the float layers in FP16 too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engines.models import MixedPrecision

Progress = Callable[[str], None]
REDUCE_RANGE = True  # 7-bit weights: see the module docstring
Score = Callable[[Path], float]

#: Calibrations by name: ONNX Runtime ``CalibrationMethod`` member, its extra
#: options, and the manifest's description.
CALIBRATIONS: dict[str, tuple[str, dict[str, Any], str]] = {
    "minmax": ("MinMax", {}, "MinMax"),
    "percentile-99.9": (
        "Percentile",
        {"CalibPercentile": 99.9, "CalibTensorRangeSymmetric": True},
        "Percentile: 99.9th percentile of |x| per tensor",
    ),
    "percentile-99.99": (
        "Percentile",
        {"CalibPercentile": 99.99, "CalibTensorRangeSymmetric": True},
        "Percentile: 99.99th percentile of |x| per tensor",
    ),
}


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


def _quantize_static(
    prepared: Path,
    out: Path,
    reader: _Reader,
    exclude: list[str],
    calibration: str = "minmax",
    cache: Path | None = None,
) -> None:
    """One ``quantize_static`` run; ``cache`` keeps the calibrated ranges between runs."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    method, extra, _ = CALIBRATIONS[calibration]
    reader.rewind()
    quantize_static(
        str(prepared),
        str(out),
        reader,
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=REDUCE_RANGE,
        calibrate_method=CalibrationMethod[method],
        nodes_to_exclude=exclude,
        extra_options={
            "ActivationSymmetric": True,
            "WeightSymmetric": True,
            "QuantizeBias": False,
            **extra,
        },
        calibration_cache_path=None if cache is None else str(cache),
    )


def quantize(
    fp32_path: Path,
    int8_path: Path,
    input_name: str,
    tensors: list[np.ndarray],
    float_tail: tuple[str, ...] = (),
    progress: Progress = print,
    mixed: MixedPrecision | None = None,
    score: Score | None = None,
    higher_is_better: bool = True,
    selection_inputs: int = 0,
) -> dict[str, Any]:
    """Write the INT8 QDQ model; returns its settings for the manifest.

    With ``mixed``, ``score(path)`` is the gate metric of an INT8 model on the
    selection frames (never the evaluation ones); see ``engines.sensitivity``.
    """
    import onnx
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
        "weights": "int8 symmetric, per channel, 7-bit range (-64..64: no int16 "
        "saturation in x86 AVX2 integer kernels)",
        "bias": "float",
        "cross_layer_equalization_pairs": pairs,
        "calibration": "MinMax",
        "frames": len(tensors),
        "float_nodes": exclude,
    }
    reader = _Reader(input_name, tensors, int8_path.name, progress)
    try:
        if mixed is None:
            _quantize_static(prepared, int8_path, reader, exclude)
            return settings
        if score is None:
            raise ValueError("mixed precision needs a score on the selection frames")
        with tempfile.TemporaryDirectory(prefix="engines-sensitivity-") as tmp:
            chosen, report = _mixed(
                prepared, Path(tmp), reader, exclude, mixed, score, higher_is_better, progress
            )
            _quantize_static(
                prepared,
                int8_path,
                reader,
                exclude + chosen.nodes(),
                chosen.calibration,
                Path(tmp) / f"{chosen.calibration}.json",
            )
        final = score(int8_path)
        if final != chosen.value:  # the same bytes as the trial that chose them
            raise RuntimeError(f"selection figure {final} != {chosen.value} in the search")
    finally:
        prepared.unlink(missing_ok=True)
    report["selection_inputs"] = selection_inputs
    settings["calibration"] = CALIBRATIONS[chosen.calibration][2]
    settings["float_nodes"] = exclude + chosen.nodes()
    settings["mixed_precision"] = report
    return settings


def _mixed(
    prepared: Path,
    tmp: Path,
    reader: _Reader,
    exclude: list[str],
    mixed: MixedPrecision,
    score: Score,
    higher_is_better: bool,
    progress: Progress,
) -> tuple[Any, dict[str, Any]]:
    """Run the sensitivity search for each candidate calibration; the best and a report."""
    import onnx

    from engines import sensitivity

    model = onnx.load(str(prepared))
    convs = sensitivity.conv_layers(model)
    cap = int(mixed.max_float_fraction * convs)
    candidates = [
        layer
        for layer in sensitivity.layers(model, sensitivity.quantizable_ops())
        if not set(layer) & set(exclude)
    ]
    progress(
        f"  sensitivity of {len(candidates)} layers on the selection split, target "
        f"{mixed.target}, at most {cap} of {convs} convolution layers float"
    )
    searches = []
    for name in mixed.calibrations:
        cache = tmp / f"{name}.json"

        def build(nodes: list[str], out: Path, name: str = name, cache: Path = cache) -> None:
            _quantize_static(prepared, out, reader, exclude + nodes, name, cache)

        found = sensitivity.search(
            name, candidates, build, score, mixed.target, cap, higher_is_better, tmp, progress
        )
        progress(
            f"  [{name}] {len(found.chosen)} layer(s) float: {found.value:.4f} "
            f"({'target met' if found.reached else 'target missed'})"
        )
        searches.append(found)
    chosen = sensitivity.best(searches, higher_is_better)
    progress(f"  chosen: {chosen.calibration}, float {[layer for layer, _, _ in chosen.chosen]}")
    report = {
        "method": (
            "layer sensitivity on the selection split (engines/sensitivity.py): each layer "
            "(a convolution with its fused activation, or one other quantized op) left "
            "float alone, ranked by the gate metric's gain vs the fully INT8 model; the "
            "best kept float greedily until the target is met or the cap reached; per "
            "candidate calibration, the one needing the fewest float layers chosen. The "
            "evaluation (gate) frames play no part. TensorRT runs the float layers in FP16 "
            "(INT8 and FP16 builder flags both set)."
        ),
        "target": mixed.target,
        "max_float_layers": cap,
        "convolution_layers": convs,
        "layers": len(candidates),
        "chosen": chosen.summary(top=8),
        "candidates": [s.summary() for s in searches],
    }
    return chosen, report
