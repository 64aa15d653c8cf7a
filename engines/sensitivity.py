"""Mixed precision: which layers of an INT8 model stay float, chosen on the selection split.

Some models lose accuracy all along the network when quantized (selfie segmentation:
MobileNetV3 with hard-swish and squeeze-excite, mask IoU 0.926 fully INT8 for a 0.95
gate). Leaving a few layers float fixes that where it is cheap, but *which* layers
must not be picked by looking at the gate's evaluation frames. The method:

1. **Layers**: every node ONNX Runtime's QDQ quantizer would quantize, with a
   convolution and the activation TensorRT fuses into it (``Relu``, ``Sigmoid``...,
   when it is the convolution's only consumer) counted as one layer: leaving the
   convolution float alone would still quantize the tensor between the two.
2. **Sensitivity**: calibrate once (ranges cached), then for each layer build the
   INT8 model with only that layer left float and measure the gate metric against
   FP32 on the **selection** frames (``engines.calibration``: disjoint from, and not
   next to, the calibration and the evaluation frames). The gain over the fully INT8
   model ranks the layers (ties: graph order).
3. **Greedy**: walk the ranking (at most ``2 * cap`` entries), keep a layer float when
   it improves the selection figure of the layers kept so far, stop when the target
   (a margin past the gate) is met or ``cap`` layers are float (``cap``: a share of
   the convolution layers).
4. **Calibration**: steps 2-3 run for each candidate calibration; the one meeting the
   target with the fewest float layers wins (then the better selection figure).

The gate itself is measured once, afterwards, on the held-out evaluation frames.
TensorRT builds the float layers in FP16: the runtime sets both the INT8 and the FP16
builder flags. Everything is deterministic (CPU, one thread, fixed order), so the
same inputs give the same choice and the same bundle bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Progress = Callable[[str], None]
#: Build the INT8 model at ``path`` with ``nodes`` left float.
Quantizer = Callable[[list[str], Path], None]
#: The gate metric of the INT8 model at ``path`` vs FP32, on the selection frames.
Score = Callable[[Path], float]

CONVOLUTIONS = {"Conv", "ConvTranspose"}
# Activations TensorRT fuses into the convolution before them.
FUSED_ACTIVATIONS = {"Relu", "Sigmoid", "Clip", "LeakyRelu", "HardSigmoid", "Tanh"}


def _r(value: float) -> float:
    return float(f"{value:.6g}")


def quantizable_ops() -> set[str]:
    """The op types ``quantize_static`` quantizes by default (QDQ format)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return set(QDQRegistry) | set(QLinearOpsRegistry)


def layers(model: Any, ops: set[str]) -> list[list[str]]:
    """The model's quantizable layers in graph order, each as its node names."""
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    taken: set[str] = set()
    found: list[list[str]] = []
    for node in model.graph.node:
        if node.op_type not in ops or node.name in taken:
            continue
        layer = [node.name]
        if node.op_type in CONVOLUTIONS:
            users = consumers.get(node.output[0], [])
            if len(users) == 1 and users[0].op_type in FUSED_ACTIVATIONS & ops:
                layer.append(users[0].name)
        taken.update(layer)
        found.append(layer)
    return found


def conv_layers(model: Any) -> int:
    return sum(n.op_type in CONVOLUTIONS for n in model.graph.node)


@dataclass
class Search:
    """One calibration's ranking and greedy choice (figures on the selection split)."""

    calibration: str
    baseline: float  # the fully INT8 model
    ranking: list[tuple[list[str], float]] = field(default_factory=list)  # (layer, gain)
    chosen: list[tuple[list[str], float, float]] = field(default_factory=list)  # +value
    value: float = 0.0  # with the chosen layers float
    reached: bool = False

    def nodes(self) -> list[str]:
        return [n for layer, _, _ in self.chosen for n in layer]

    def summary(self, top: int = 0) -> dict[str, Any]:
        out: dict[str, Any] = {
            "calibration": self.calibration,
            "int8": _r(self.baseline),
            "float_layers": [
                {"nodes": layer, "gain_alone": _r(gain), "value": _r(value)}
                for layer, gain, value in self.chosen
            ],
            "value": _r(self.value),
            "target_met": self.reached,
        }
        if top:
            out["ranking"] = [
                {"nodes": layer, "gain_alone": _r(gain)} for layer, gain in self.ranking[:top]
            ]
        return out


def search(
    calibration: str,
    candidates: Sequence[list[str]],
    quantize: Quantizer,
    score: Score,
    target: float,
    cap: int,
    higher_is_better: bool,
    workdir: Path,
    progress: Progress = print,
) -> Search:
    """Rank ``candidates`` by their gain alone, then leave the best float greedily."""
    sign = 1.0 if higher_is_better else -1.0
    trial = workdir / "trial.onnx"

    def measure(nodes: list[str]) -> float:
        quantize(nodes, trial)
        return score(trial)

    def met(value: float) -> bool:
        return sign * (value - target) >= 0

    result = Search(calibration, measure([]))
    progress(f"  [{calibration}] fully INT8 on the selection split: {result.baseline:.4f}")
    gains = []
    for k, layer in enumerate(candidates):
        gains.append(sign * (measure(layer) - result.baseline))
        if (k + 1) % 20 == 0 or k + 1 == len(candidates):
            progress(f"  [{calibration}] sensitivity: {k + 1}/{len(candidates)} layers")
    order = sorted(range(len(candidates)), key=lambda i: (-gains[i], i))
    result.ranking = [(list(candidates[i]), gains[i]) for i in order]
    value = result.baseline
    for layer, gain in result.ranking[: 2 * cap]:
        if met(value) or len(result.chosen) >= cap or gain <= 0:
            break
        tried = measure([*result.nodes(), *layer])
        keep = sign * (tried - value) > 0
        progress(
            f"  [{calibration}] float {'+'.join(layer)} (alone {gain:+.4f}): "
            f"{tried:.4f} {'kept' if keep else 'dropped'}"
        )
        if keep:
            result.chosen.append((layer, gain, tried))
            value = tried
    result.value, result.reached = value, met(value)
    return result


def best(searches: Sequence[Search], higher_is_better: bool) -> Search:
    """Target met with the fewest float layers, then the better figure; else the best."""
    sign = 1.0 if higher_is_better else -1.0

    def key(s: Search) -> tuple[int, float, float]:
        if s.reached:
            return (0, len(s.chosen), -sign * s.value)
        return (1, -sign * s.value, len(s.chosen))

    return min(searches, key=key)  # min keeps the first of equals: the given order
