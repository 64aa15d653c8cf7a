"""The standard x2 protocol on Set5, Set14 and BSD100, plus held-out faces.

``python -m engines.sr.evaluate --model sr_x2.fp32.onnx [--int8 sr_x2.int8.onnx]``.

Protocol (``../shared/data/README.md``): the HR image cropped to even size, the LR image
by MATLAB's antialiased bicubic (rounded to 8 bits, as a saved image would be), the
result's luma rounded and clipped to 8 bits, ``scale`` px shaved at the border, PSNR
and SSIM (Gaussian window, sigma 1.5) on BT.601 Y. Bicubic and Lanczos are computed
here the same way; FSRCNN's figures are the published ones.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from appliance.enhance.tiles import upscale_tiled
from engines.sr.data import face_frames, read_bgr
from engines.sr.imresize import bgr_to_y, imresize, to_uint8
from engines.sr.spec import SCALE

SETS = ("set5", "set14", "bsd100")
PUBLISHED = {  # x2 Y-PSNR / SSIM from the papers' tables
    "bicubic (published)": {"set5": (33.66, 0.9299), "set14": (30.24, 0.8688),
                            "bsd100": (29.56, 0.8431)},
    "FSRCNN, 12k params (published)": {"set5": (37.00, 0.9558), "set14": (32.63, 0.9088),
                                       "bsd100": (31.53, 0.8920)},
}  # fmt: skip
Upscaler = Callable[[np.ndarray], np.ndarray]  # LR luma (float, 16..235) -> x2 luma


def onnx_upscaler(path: Path, tile: int, margin: int, offset: float, threads: int = 1) -> Upscaler:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {name: batch})[0]

    def upscale(y: np.ndarray) -> np.ndarray:
        x = (y / 255.0 + offset).astype(np.float32)
        return (upscale_tiled(x, run, tile, margin) - offset) * 255.0

    return upscale


def bicubic(y: np.ndarray) -> np.ndarray:
    return imresize(y, SCALE)


def lanczos(y: np.ndarray) -> np.ndarray:
    h, w = y.shape
    return cv2.resize(
        y.astype(np.float32), (w * SCALE, h * SCALE), interpolation=cv2.INTER_LANCZOS4
    )


def pair(hr_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(LR luma float, HR luma rounded) under the protocol."""
    h, w = (s - s % SCALE for s in hr_bgr.shape[:2])
    hr = hr_bgr[:h, :w]
    lr = to_uint8(imresize(hr, 1.0 / SCALE))
    return bgr_to_y(lr), np.round(bgr_to_y(hr))


def _shaved(sr: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.clip(np.round(sr), 0, 255)[SCALE:-SCALE, SCALE:-SCALE]
    return a, ref[SCALE:-SCALE, SCALE:-SCALE]


def psnr(sr: np.ndarray, ref: np.ndarray) -> float:
    """Y-PSNR of the (rounded, clipped) result against ``pair``'s reference."""
    a, b = _shaved(sr, ref)
    mse = float(np.mean((a - b) ** 2))
    return 10 * math.log10(255.0**2 / mse) if mse > 0 else math.inf


def scores(sr: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    a, b = _shaved(sr, ref)
    ssim = structural_similarity(
        a, b, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    return psnr(sr, ref), float(ssim)


def load_set(data: Path, name: str) -> list[np.ndarray]:
    folder = data / "sr" / name
    images = [read_bgr(p) for p in sorted(folder.glob("*.png"))]
    if not images:
        raise FileNotFoundError(f"{folder}: no PNG images")
    return images


def evaluate(
    methods: dict[str, Upscaler], data: Path, progress: Callable[[str], None] = print
) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean (PSNR, SSIM) per method and set; 'faces' = held-out clip frames."""
    sets = {name: load_set(data, name) for name in SETS}
    sets["faces"] = face_frames(data, held_out=True)
    results: dict[str, dict[str, tuple[float, float]]] = {m: {} for m in methods}
    for set_name, images in sets.items():
        pairs = [pair(im) for im in images]
        for method, upscale in methods.items():
            values = [scores(upscale(lr), ref) for lr, ref in pairs]
            psnr, ssim = (float(np.mean(v)) for v in zip(*values, strict=True))
            results[method][set_name] = (psnr, ssim)
            progress(f"  {set_name:<7} {method:<22} {psnr:6.2f} dB  SSIM {ssim:.4f}")
    return results


def markdown(results: dict[str, dict[str, tuple[float, float]]]) -> str:
    columns = (*SETS, "faces")
    lines = [
        "| x2, Y channel | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for method, row in {**PUBLISHED, **results}.items():
        cells = [f"{row[c][0]:.2f} / {row[c][1]:.4f}" if c in row else "–" for c in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison(
    hr_bgr: np.ndarray, network: Upscaler, box: tuple[int, int, int, int], zoom: int = 3
) -> np.ndarray:
    """HR crop ``box`` (x, y, w, h; even) as: bicubic | network | original, enlarged
    ``zoom`` times with nearest neighbour so the pixels show."""
    x, y, w, h = box
    h_even, w_even = (s - s % SCALE for s in hr_bgr.shape[:2])
    hr = hr_bgr[:h_even, :w_even]
    lr = to_uint8(imresize(hr, 1.0 / SCALE))
    lr_y = bgr_to_y(lr)
    base = cv2.resize(lr, (w_even, h_even), interpolation=cv2.INTER_CUBIC)
    panels = []
    for luma in (bicubic(lr_y), network(lr_y)):
        ycrcb = cv2.cvtColor(base, cv2.COLOR_BGR2YCrCb)
        ycrcb[..., 0] = to_uint8((luma - 16.0) * 255.0 / 219.0)
        panels.append(cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR))
    panels.append(hr)
    tiles = []
    for panel, label in zip(panels, ("bicubic", "network", "original"), strict=True):
        crop = cv2.resize(panel[y : y + h, x : x + w], (w * zoom, h * zoom), interpolation=0)
        cv2.rectangle(crop, (0, 0), (12 * len(label) + 12, 26), (0, 0, 0), -1)
        cv2.putText(crop, label, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
        tiles.append(crop)
    gap = np.full((h * zoom, 6, 3), 255, np.uint8)
    return np.hstack([tiles[0], gap, tiles[1], gap, tiles[2]])


def main(argv: list[str] | None = None) -> int:
    from engines.sr.data import DEFAULT_DATA
    from engines.sr.spec import MARGIN, OFFSET, TILE

    p = argparse.ArgumentParser(prog="python -m engines.sr.evaluate", description=__doc__)
    p.add_argument("--model", type=Path, required=True, help="FP32 ONNX")
    p.add_argument("--int8", type=Path, help="INT8 QDQ ONNX")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--images", type=Path, help="write before/after crops to this folder")
    args = p.parse_args(argv)
    methods: dict[str, Upscaler] = {"bicubic": bicubic, "lanczos": lanczos}
    methods["SRNet FP32"] = onnx_upscaler(args.model, TILE, MARGIN, OFFSET)
    if args.int8:
        methods["SRNet INT8"] = onnx_upscaler(args.int8, TILE, MARGIN, OFFSET)
    results = evaluate(methods, args.data)
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.images:
        args.images.mkdir(parents=True, exist_ok=True)
        network = methods["SRNet INT8" if args.int8 else "SRNet FP32"]
        shots = {
            "sr-set14-zebra.jpg": (load_set(args.data, "set14")[13], (260, 130, 160, 110)),
            "sr-face.jpg": (face_frames(args.data, held_out=True)[0], (170, 150, 170, 130)),
        }
        for name, (image, box) in shots.items():
            cv2.imwrite(str(args.images / name), comparison(image, network, box))
            print(args.images / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
