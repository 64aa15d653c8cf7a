"""TFLite -> ONNX (opset 17, batch 1, NCHW input) with tf2onnx, plus two hand fixes.

Why NCHW: it is ONNX's and TensorRT's native convolution layout. Asking tf2onnx for
an NCHW input lets its transpose optimizer cancel the NHWC<->NCHW transposes it
would otherwise leave right after the input (and which would sit between the input
and the first Q/DQ pair in the INT8 model). On the Jetson, jetson_utils'
``cudaTensorNormMeanStd`` writes planar NCHW float straight from a ``cudaImage``.

Hand fix 1, ``Convolution2DTransposeBias`` (selfie segmentation): a MediaPipe
custom TFLite op = transposed convolution + bias. Its options are a raw C struct
``{int32 padding; int32 stride_w; int32 stride_h}`` (not flexbuffers, so tf2onnx
cannot read them): we read them from the flatbuffer ourselves and hand tf2onnx a
custom op handler that emits ONNX ``ConvTranspose`` with the bias as third input,
wrapped in NHWC<->NCHW transposes that tf2onnx's optimizer then removes.

Hand fix 2: tf2onnx's transpose optimizer does not know ``HardSwish`` (nor
``Sigmoid`` here), so transposes stay around every one of them; they are
elementwise, so a Transpose -> op -> inverse Transpose chain is just the op.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engines.models import ModelSpec

OPSET = 17
CUSTOM_OP = "Convolution2DTransposeBias"
_PADDING = {1: "SAME", 2: "VALID"}  # TfLitePadding


def custom_op_options(tflite_path: Path) -> dict[str, tuple[str, int, int]]:
    """Output tensor name -> (padding, stride_h, stride_w) for each custom op node."""
    from tf2onnx.tflite.Model import Model  # flatbuffer reader shipped with tf2onnx

    model = Model.GetRootAsModel(tflite_path.read_bytes(), 0)
    found: dict[str, tuple[str, int, int]] = {}
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex()).CustomCode()
            if code is None or code.decode() != CUSTOM_OP:
                continue
            padding, stride_w, stride_h = struct.unpack("<3i", op.CustomOptionsAsNumpy().tobytes())
            out_name = graph.Tensors(int(op.Outputs(0))).Name().decode()
            found[out_name] = (_PADDING[padding], stride_h, stride_w)
    return found


def _transpose_pads(size_in: int, size_out: int, kernel: int, stride: int, mode: str) -> list[int]:
    # TFLite's transpose conv crops pad_total = (in-1)*s + k - out from the full
    # output, floor half at the start: the same meaning as ONNX ConvTranspose pads.
    total = (size_in - 1) * stride + kernel - size_out
    if mode == "VALID" or total < 0:
        total = max(total, 0)
    return [total // 2, total - total // 2]


def make_transpose_conv_handler(
    options: dict[str, tuple[str, int, int]],
) -> Callable[..., None]:
    def handler(ctx: Any, node: Any, name: str, args: list[Any]) -> None:
        padding, stride_h, stride_w = options[node.output[0]]
        x, w, _bias = node.input
        _, kh, kw, _ = ctx.get_shape(w)  # TFLite kernel: [out, kh, kw, in]
        _, in_h, in_w, _ = ctx.get_shape(x)
        _, out_h, out_w, _ = ctx.get_shape(node.output[0])
        top, bottom = _transpose_pads(in_h, out_h, kh, stride_h, padding)
        left, right = _transpose_pads(in_w, out_w, kw, stride_w, padding)
        # The kernel is still a Cast of fp16 weights here; the Transpose to ONNX's
        # [in, out, kh, kw] is constant-folded with it by tf2onnx's optimizer.
        ctx.insert_new_node_on_input(node, "Transpose", w, input_index=1, perm=[3, 0, 1, 2])
        ctx.insert_new_node_on_input(node, "Transpose", x, input_index=0, perm=[0, 3, 1, 2])
        node.type = "ConvTranspose"
        node.attr.clear()
        node.set_attr("kernel_shape", [kh, kw])
        node.set_attr("strides", [stride_h, stride_w])
        node.set_attr("pads", [top, left, bottom, right])
        node.set_attr("dilations", [1, 1])
        out_shape = ctx.get_shape(node.output[0])
        dtype = ctx.get_dtype(node.output[0])
        back = ctx.insert_new_node_on_output("Transpose", node.output[0], perm=[0, 2, 3, 1])
        ctx.set_shape(node.output[0], [out_shape[i] for i in (0, 3, 1, 2)])
        ctx.set_shape(back.output[0], out_shape)
        ctx.set_dtype(back.output[0], dtype)

    return handler


def drop_noop_reshapes(model: Any) -> int:
    """Bypass Reshapes whose input already has the target shape (TFLite's squeezes)."""
    import onnx
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {
        v.name: [
            d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim
        ]
        for v in list(inferred.graph.value_info) + list(inferred.graph.input)
    }
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    rename: dict[str, str] = {}
    kept = []
    for node in model.graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
        shape = shapes.get(node.input[0]) if node.input else None
        target = consts.get(node.input[1]) if len(node.input) > 1 else None
        if (
            node.op_type == "Reshape"
            and shape is not None
            and target is not None
            and -1 not in shape
            and shape == target.tolist()
            and node.output[0] not in outputs
        ):
            rename[node.output[0]] = node.input[0]
            continue
        kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    used = {i for n in kept for i in n.input}
    unused = [i for i in model.graph.initializer if i.name not in used]
    for init in unused:
        model.graph.initializer.remove(init)
    return len(rename)


def merge_duplicates(model: Any) -> int:
    """Merge nodes with the same op, inputs and attributes, keeping the smallest name.

    tf2onnx has its own merge pass, but which duplicate survives depends on object
    ids: the face mesh's two identical MaxPools came out under either name, changing
    the file's sha256 run to run. Its pass is switched off and this one runs instead.
    """
    outputs = {o.name for o in model.graph.output}
    first: dict[bytes, Any] = {}
    rename: dict[str, str] = {}

    def resolve(name: str) -> str:
        while name in rename:
            name = rename[name]
        return name

    kept = []
    for node in model.graph.node:  # topological: duplicates of duplicates collapse too
        node.input[:] = [resolve(i) for i in node.input]
        probe = type(node)()
        probe.CopyFrom(node)
        probe.name = ""
        del probe.output[:]
        key = probe.SerializeToString(deterministic=True)
        if len(node.output) != 1 or outputs.intersection(node.output) or key not in first:
            first.setdefault(key, node)
            kept.append(node)
            continue
        keep = first[key]
        if node.name < keep.name:  # the smaller name survives, in the first one's place
            rename[keep.output[0]] = node.output[0]
            keep.name, keep.output[0] = node.name, node.output[0]
        else:
            rename[node.output[0]] = keep.output[0]
    for node in kept:
        node.input[:] = [resolve(i) for i in node.input]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return len(rename)


def canonical_order(model: Any) -> None:
    """Topological order with ties broken by node name: tf2onnx's order of independent
    nodes (two MaxPools reading one tensor in the face mesh) varies between runs."""
    import heapq

    nodes = {n.name: n for n in model.graph.node}
    producer = {o: n.name for n in model.graph.node for o in n.output}
    deps = {n.name: {producer[i] for i in n.input if i in producer} for n in model.graph.node}
    users: dict[str, list[str]] = {name: [] for name in nodes}
    for name, ds in deps.items():
        for d in ds:
            users[d].append(name)
    ready = [name for name, ds in deps.items() if not ds]
    heapq.heapify(ready)
    ordered = []
    while ready:
        name = heapq.heappop(ready)
        ordered.append(nodes[name])
        for user in users[name]:
            deps[user].discard(name)
            if not deps[user]:
                heapq.heappush(ready, user)
    del model.graph.node[:]
    model.graph.node.extend(ordered)


def canonical_initializers(model: Any) -> None:
    """Name each initializer after its first consumer and sort them: tf2onnx numbers
    the constants it folds in an order that varies between runs."""
    inits = {i.name: i for i in model.graph.initializer}
    rename: dict[str, str] = {}
    for node in model.graph.node:
        for k, name in enumerate(node.input):
            if name in inits and name not in rename:
                rename[name] = f"{node.name}/in{k}"
            if name in rename:
                node.input[k] = rename[name]
    for init in model.graph.initializer:
        init.name = rename.get(init.name, init.name)
    ordered = sorted(model.graph.initializer, key=lambda i: i.name)
    del model.graph.initializer[:]
    model.graph.initializer.extend(ordered)


def _patch_tf2onnx() -> None:
    """Let tf2onnx push transposes through HardSwish (elementwise, missing from its
    table), and switch off its duplicate merging (see merge_duplicates)."""
    from tf2onnx import optimizer
    from tf2onnx.optimizer.transpose_optimizer import TransposeOptimizer

    optimizer._optimizers.pop("merge_duplication", None)
    original = TransposeOptimizer._initialize_handlers
    if getattr(original, "_engines_patched", False):
        return

    def initialize(self: Any) -> None:
        original(self)
        for op in ("HardSwish", "HardSigmoid"):
            self._handler_map.setdefault(op, self._simple_through_handler)

    initialize._engines_patched = True  # type: ignore[attr-defined]
    TransposeOptimizer._initialize_handlers = initialize


def convert(spec: ModelSpec, tflite_path: Path, out_path: Path) -> dict[str, Any]:
    """Write the FP32 ONNX model; returns notes for the manifest's provenance.

    Runs in a child with PYTHONHASHSEED=0: tf2onnx walks sets of names, so with
    Python's per-process hash seed the initializer order (and the file's sha256)
    would change from one build to the next.
    """
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, "-m", "engines.convert", spec.name, str(tflite_path), str(out_path)]
    root = Path(__file__).resolve().parents[1]  # so `-m engines.convert` resolves from anywhere
    done = subprocess.run(cmd, env=env, cwd=root, check=True, stdout=subprocess.PIPE, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _convert_here(spec: ModelSpec, tflite_path: Path, out_path: Path) -> dict[str, Any]:
    import onnx
    import tf2onnx

    _patch_tf2onnx()
    options = custom_op_options(tflite_path)
    handlers: dict[str, tuple[Callable[..., None], list[Any]]] = {}
    if options:
        handlers[f"TFL_{CUSTOM_OP}"] = (make_transpose_conv_handler(options), [])
    model, _ = tf2onnx.convert.from_tflite(
        str(tflite_path),
        opset=OPSET,
        inputs_as_nchw=[spec.input.name],
        outputs_as_nchw=list(spec.nchw_outputs),
        custom_op_handlers=handlers,
    )
    unsupported = sorted({n.op_type for n in model.graph.node if n.op_type.startswith("TFL_")})
    if unsupported:
        raise RuntimeError(f"{spec.name}: ops left unconverted: {unsupported}")
    dropped = drop_noop_reshapes(model)
    merge_duplicates(model)
    canonical_order(model)
    canonical_initializers(model)
    model.doc_string = f"{spec.title}; converted from {Path(spec.member).name} by engines/"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(out_path))
    notes = [f"tf2onnx opset {OPSET}, NCHW input"]
    if options:
        notes.append(f"{CUSTOM_OP} -> ConvTranspose(+bias) by a custom handler: {options}")
    if dropped:
        # No count: how many tf2onnx leaves varies run to run, the result does not.
        notes.append("bypassed no-op Reshape nodes (TFLite squeezes)")
    return {"notes": notes}


if __name__ == "__main__":  # the child of convert()
    from engines.models import MODELS

    result = _convert_here(MODELS[sys.argv[1]], Path(sys.argv[2]), Path(sys.argv[3]))
    print(json.dumps(result))
