"""Exported SR network -> a verified model bundle like the others (``engines/bundles/sr_x2``).

``python -m engines.sr.bundle`` (``make sr-bundle``): exports the FP32 ONNX, makes the
INT8 QDQ model by quantization-aware fine-tuning (``engines.sr.qat``: post-training
quantization loses over 1 dB here), gates INT8 on Set5 (at most ``MAX_INT8_LOSS_DB`` below FP32),
stores reference tiles with their outputs and writes the manifest with the training data
and its licences. An INT8 model that fails the gate is not shipped (FP32 only).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from appliance.runtime.bundle import MANIFEST, prepare_input, sha256_file
from engines.sr.data import Degradation, face_frames
from engines.sr.evaluate import load_set, onnx_upscaler, pair, psnr
from engines.sr.imresize import bgr_to_y, imresize, to_uint8
from engines.sr.spec import INPUT, MARGIN, OFFSET, OUTPUT, TILE, last_phase, phase_fields

NAME = "sr_x2"
VERSION = "1.5.0"
MAX_INT8_LOSS_DB = 0.15
REFERENCE_TILES = 1  # each output is a 288x288 float32 plane: 330 kB per precision
TOLERANCE = {"fp32": {"atol": 1e-4, "rtol": 1e-4}, "int8": {"atol": 1e-3, "rtol": 0.02}}
TRAINING_DATA = {
    "yang91": "T91 (Yang et al. 2010), 91 images; no licence stated",
    "bsd200": "BSDS300 train split (Martin et al. 2001), 200 images; licensed for "
    "non-commercial research and education only",
    "faces": "every 40th frame of the six development clips (LivePortrait repository, MIT "
    "code; the clips' own origin is not stated): evaluation material, not redistributable",
}


def lr_tiles(data: Path, count: int, seed: int) -> np.ndarray:
    """(count, TILE, TILE) uint8 LR luma tiles: clean bicubic halves of held-out faces."""
    rng = np.random.default_rng(seed)
    images = face_frames(data, held_out=True)
    tiles: list[np.ndarray] = []
    while len(tiles) < count:
        image = images[int(rng.integers(len(images)))]
        low = to_uint8(bgr_to_y(to_uint8(imresize(image, 0.5))))
        if min(low.shape) < TILE:
            continue
        y = int(rng.integers(0, low.shape[0] - TILE + 1))
        x = int(rng.integers(0, low.shape[1] - TILE + 1))
        tiles.append(low[y : y + TILE, x : x + TILE])
    return np.stack(tiles)


def set5_psnr(model: Path, data: Path) -> float:
    upscale = onnx_upscaler(model, TILE, MARGIN, OFFSET)
    return float(np.mean([psnr(upscale(lr), ref) for lr, ref in map(pair, load_set(data, "set5"))]))


def build(
    fp32: Path, int8: Path, settings: dict[str, Any], data: Path, out: Path, trained: dict[str, Any]
) -> dict[str, Any]:
    """The bundle from the exported FP32 model and the quantization-aware INT8 one."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    fp32_path = out / f"{NAME}.fp32.onnx"
    int8_path = out / f"{NAME}.int8.onnx"
    shutil.copyfile(fp32, fp32_path)
    shutil.copyfile(int8, int8_path)
    psnr_fp32, psnr_int8 = set5_psnr(fp32_path, data), set5_psnr(int8_path, data)
    loss = psnr_fp32 - psnr_int8
    passed = loss <= MAX_INT8_LOSS_DB
    print(f"Set5 Y-PSNR FP32 {psnr_fp32:.3f} dB, INT8 {psnr_int8:.3f} dB: loss {loss:.3f} dB")
    if not passed:
        print(f"INT8 loses more than {MAX_INT8_LOSS_DB} dB: shipping FP32 only")
        int8_path.unlink()
    _write_reference(out, data, passed)
    manifest = _manifest(out, trained, settings, psnr_fp32, psnr_int8, loss, passed)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _write_reference(out: Path, data: Path, with_int8: bool) -> None:
    import onnxruntime as ort

    tiles = lr_tiles(data, REFERENCE_TILES, seed=2)[..., None]
    x = prepare_input(tiles, 1 / 255.0, OFFSET, "NCHW")
    stored: dict[str, np.ndarray] = {"input_y_u8": tiles}
    for precision in ("fp32", "int8") if with_int8 else ("fp32",):
        session = ort.InferenceSession(str(out / f"{NAME}.{precision}.onnx"))
        outputs = [session.run(None, {INPUT: x[i : i + 1]})[0] for i in range(len(x))]
        stored[f"{precision}/{OUTPUT}"] = np.concatenate(outputs)
    arrays: dict[str, Any] = stored  # savez's stubs type **kwds as its own flags
    np.savez_compressed(out / "reference.npz", **arrays)


def _manifest(
    out: Path,
    trained: dict[str, Any],
    settings: dict[str, Any],
    psnr_fp32: float,
    psnr_int8: float,
    loss: float,
    passed: bool,
) -> dict[str, Any]:
    import onnxruntime
    import torch

    files = {}
    for path in sorted(out.iterdir()):
        entry: dict[str, Any] = {"sha256": sha256_file(path), "size": path.stat().st_size}
        if path.name.endswith(".onnx"):
            entry |= {"role": "model", "precision": path.name.split(".")[-2]}
        else:
            entry["role"] = "reference"
        files[path.name] = entry
    return {
        "format": 1,
        "name": NAME,
        "version": VERSION,
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "description": "x2 super-resolution of luma, trained by this project",
        "provenance": {
            "source": {
                "trained_by": "engines/sr (this repository): python -m engines.sr.train",
                # the history is written once, by name, under "phases"
                "training": {k: v for k, v in trained.items() if k != "history"},
                "training_data": TRAINING_DATA,
                "degradation": Degradation(last_phase(trained)["clean_share"]).describe(),
                "phases": [phase_fields(phase) for phase in trained.get("history", [])],
                "licence": "weights: Apache-2.0, with the training data's terms above",
            },
            "converters": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
            "recipe": "engines/sr in the appliance repository (make train-sr sr-bundle)",
            "calibration": {
                "data": "activation ranges from LR training tiles; then quantization-aware "
                "fine-tuning on the training pairs (engines/sr/qat.py)",
            },
            "notes": [
                f"fixed {TILE}x{TILE} LR tile with an {MARGIN} px margin "
                "(appliance.enhance.tiles stitches any picture size)",
                "chroma is upscaled bicubically by the stage; the network sees luma only",
            ],
        },
        "compatibility": {
            "onnx_opset": 17,
            "onnx_ir_version": 8,
            "min_onnxruntime": "1.17",
            "tensorrt": ">=10.0: explicit quantization from the QDQ model; FP32 model -> FP16",
            "input_layout": "NCHW",
            "batch": 1,
        },
        "inputs": [
            {
                "name": INPUT,
                "shape": [1, 1, TILE, TILE],
                "dtype": "float32",
                "layout": "NCHW",
                "color": "Y",
                "scale": 1 / 255.0,
                "offset": OFFSET,
                "range": [OFFSET, 1 + OFFSET],
                "roi": f"a {TILE}x{TILE} tile of BT.601 luma; the {MARGIN} px border is context",
            }
        ],
        "outputs": [
            {
                "name": OUTPUT,
                "shape": [1, 1, 2 * TILE, 2 * TILE],
                "dtype": "float32",
                "description": "x2 luma, as the input: luma / 255 - 0.5",
                "units": "luma/255 - 0.5",
            }
        ],
        "postprocess": {"scale": 2, "tile": TILE, "margin": MARGIN},
        "files": files,
        "accuracy": {
            "conversion": {
                "against": "PyTorch",
                "outputs": {
                    OUTPUT: {
                        "max_abs": trained["export_max_abs_diff"],
                        "tolerance": 1e-4,
                        "units": "luma/255",
                    }
                },
                "passed": trained["export_max_abs_diff"] <= 1e-4,
            },
            "int8": {
                "metric": "set5_psnr_loss_db",
                "description": "Set5 x2 Y-PSNR, FP32 minus INT8 (standard protocol)",
                "value": round(loss, 4),
                "worst": round(loss, 4),
                "threshold": MAX_INT8_LOSS_DB,
                "higher_is_better": False,
                "samples": 5,
                "passed": passed,
                "set5_psnr_db": {"fp32": round(psnr_fp32, 3), "int8": round(psnr_int8, 3)},
                "settings": settings,
            },
        },
        "reference": {
            "file": "reference.npz",
            "count": REFERENCE_TILES,
            "input_key": "input_y_u8",
            "tolerance": TOLERANCE,
        },
    }


def main(argv: list[str] | None = None) -> int:
    from engines.sr.data import DEFAULT_DATA, DEFAULT_OUT
    from engines.sr.export import export

    root = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(prog="python -m engines.sr.bundle", description=__doc__)
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_OUT / "checkpoint.pt")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=root / "bundles" / NAME)
    p.add_argument("--qat-steps", type=int, default=2000, help="quantization-aware steps")
    args = p.parse_args(argv)
    onnx_path = args.checkpoint.parent / f"{NAME}.fp32.onnx"
    int8_path = args.checkpoint.parent / f"{NAME}.int8.onnx"
    info = export(args.checkpoint, onnx_path)
    import torch

    from engines.sr.qat import quantize_aware

    settings = quantize_aware(args.checkpoint, args.data, int8_path, args.qat_steps)

    state = torch.load(args.checkpoint, weights_only=False, map_location="cpu")
    trained = {
        **state["config"],
        "steps_done": info["step"],
        "parameters": info["parameters"],
        "export_max_abs_diff": info["max_abs_diff"],
    }
    manifest = build(onnx_path, int8_path, settings, args.data, args.out, trained)
    print(f"{args.out}: {manifest['name']} {manifest['version']} written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
