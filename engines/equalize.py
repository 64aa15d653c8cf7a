"""Cross-layer equalization of depthwise -> pointwise convolution pairs, before INT8.

Why: TensorRT quantizes activations per tensor. The output of a depthwise
convolution can have channels of wildly different range (in the face detector one
channel reaches 398 while the median channel stays under 3), so one scale for the
tensor wipes out most channels. When a depthwise conv A feeds a conv B directly,
(or through ReLU/PReLU, which commute with a positive per-channel scale), scaling
A's output channel c by 1/s_c and B's input channel c by s_c leaves the network's
function unchanged (Nagel et al., "Data-Free Quantization", 2019). We choose
s_c = sqrt(a_c / w_c) from the calibration frames' activation range a_c and B's
weight range w_c, so both end up sqrt(a_c * w_c): neither side is sacrificed.
Only the INT8 model is equalized; the FP32 model ships as converted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PASS_THROUGH = {"Relu", "PRelu"}  # positively homogeneous: f(x / s) = f(x) / s


def _attr(node: Any, name: str, default: int) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def find_pairs(model: Any) -> list[tuple[Any, list[Any], Any]]:
    """(depthwise conv, pass-through ops, next conv) chains with single consumers."""
    inits = {i.name: i for i in model.graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in model.graph.output}
    pairs = []
    for a in model.graph.node:
        if a.op_type != "Conv" or a.input[1] not in inits:
            continue
        channels = inits[a.input[1]].dims[0]
        if _attr(a, "group", 1) != channels or channels == 1:
            continue
        chain: list[Any] = []
        tensor = a.output[0]
        while True:
            users = consumers.get(tensor, [])
            if tensor in outputs or len(users) != 1:
                break
            user = users[0]
            if user.op_type == "Conv" and _attr(user, "group", 1) == 1 and user.input[1] in inits:
                pairs.append((a, chain, user))
                break
            if user.op_type not in PASS_THROUGH or (
                user.op_type == "PRelu" and user.input[1] not in inits
            ):
                break
            chain.append(user)
            tensor = user.output[0]
    return pairs


def channel_ranges(
    model_path: Path, tensors: list[str], feeds: list[dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Per-channel max |x| of the named NCHW tensors over the calibration feeds."""
    if not tensors:  # session.run([]) would return every output instead of none
        return {}
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    model = onnx.shape_inference.infer_shapes(model)
    info = {v.name: v for v in model.graph.value_info}
    model.graph.output.extend(
        [info[t] for t in tensors if t not in {o.name for o in model.graph.output}]
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ranges = {t: np.zeros(0) for t in tensors}
    for feed in feeds:
        for t, v in zip(tensors, session.run(tensors, feed), strict=True):
            r = np.abs(v).max(axis=(0, 2, 3))
            ranges[t] = r if ranges[t].size == 0 else np.maximum(ranges[t], r)
    return ranges


def equalize(fp32_path: Path, out_path: Path, feeds: list[dict[str, np.ndarray]]) -> int:
    """Write the equalized model; returns how many conv pairs were rescaled."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(fp32_path))
    pairs = find_pairs(model)
    ranges = channel_ranges(fp32_path, [a.output[0] for a, _, _ in pairs], feeds)
    inits = {i.name: i for i in model.graph.initializer}

    def get(name: str) -> np.ndarray:
        return numpy_helper.to_array(inits[name]).copy()

    def put(name: str, value: np.ndarray) -> None:
        inits[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))

    for a, chain, b in pairs:
        act = ranges[a.output[0]]
        wb = get(b.input[1])  # [out, in, kh, kw]
        w_range = np.abs(wb).max(axis=(0, 2, 3))
        ok = (act > 1e-6) & (w_range > 1e-12)
        s = np.ones_like(act)
        s[ok] = np.sqrt(act[ok] / w_range[ok])
        put(a.input[1], get(a.input[1]) / s[:, None, None, None])
        if len(a.input) > 2:
            put(a.input[2], get(a.input[2]) / s)
        put(b.input[1], wb * s[None, :, None, None])
        # PReLU slopes are per channel and unchanged by the scale: nothing to do.
        del chain
    onnx.save(model, str(out_path))
    return len(pairs)
