"""Checkpoint -> fused FP32 ONNX with a fixed tile input (``python -m engines.sr.export``).

The re-parameterized branches are folded first, so the ONNX graph is plain 3x3
convolutions, ReLU, Add and DepthToSpace: what TensorRT and the QDQ quantizer handle
best. The input is one square tile of luma / 255 - 0.5 (``SRNet.centre``), the output
the same at twice the size (see ``appliance.enhance.tiles``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from engines.sr.data import DEFAULT_OUT
from engines.sr.model import SRNet
from engines.sr.spec import INPUT, OPSET, OUTPUT, TILE


def load_fused(checkpoint: Path) -> tuple[SRNet, dict]:
    state = torch.load(checkpoint, weights_only=False, map_location="cpu")
    config = state["config"]
    model = SRNet(config["channels"], config["blocks"])
    model.load_state_dict(state["model"])
    model.eval()
    return model.fuse().centre(), state


def to_onnx(module: torch.nn.Module, out: Path) -> torch.Tensor:
    """Write ``module`` with the bundle's tile input; returns the input it traced with."""
    dummy = torch.rand(1, 1, TILE, TILE) - 0.5
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        module,
        (dummy,),
        str(out),
        input_names=[INPUT],
        output_names=[OUTPUT],
        opset_version=OPSET,
        # The TorchScript exporter writes plain Conv/Relu/DepthToSpace and turns fake
        # quantization into QuantizeLinear/DequantizeLinear pairs.
        dynamo=False,
    )
    return dummy


def export(checkpoint: Path, out: Path) -> dict:
    model, state = load_fused(checkpoint)
    dummy = to_onnx(model, out)
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = model(dummy).numpy()
    got = session.run(None, {INPUT: dummy.numpy()})[0]
    diff = float(np.abs(got - want).max())
    if diff > 1e-4:
        raise RuntimeError(f"ONNX export differs from PyTorch by {diff}")
    params = sum(int(p.numel()) for n, p in model.named_parameters() if ".fused." in n)
    return {"step": int(state["step"]), "parameters": params, "max_abs_diff": diff}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.sr.export", description=__doc__)
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_OUT / "checkpoint.pt")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT / "sr_x2.fp32.onnx")
    args = p.parse_args(argv)
    info = export(args.checkpoint, args.out)
    print(
        f"{args.out}: step {info['step']}, {info['parameters']} parameters, "
        f"matches PyTorch within {info['max_abs_diff']:.1e}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
