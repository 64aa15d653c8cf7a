"""The recipe: pinned wheel -> .tflite -> ONNX FP32 -> checked -> INT8 QDQ -> gated -> bundle.

Needs the converter venv (``make engines``). Each model is staged in a temporary
directory and moved into place only when it is complete, so a failed build never
leaves half a bundle. Policy on failures:

- conversion outside tolerance vs TFLite: no bundle for that model;
- INT8 gate failed: the bundle ships FP32 only, with the INT8 figures recorded and
  ``accuracy.int8.passed = false`` (a runtime cannot pick a model that is not
  there); the build exits non-zero unless ``allow_fp32_only`` (``make engines``
  passes it, from when selfie segmentation's INT8 copy missed its gate; with its
  mixed-precision recipe, ``engines.sensitivity``, all four pass now).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from appliance.runtime import agreement
from engines import calibration, crops, metrics
from engines.manifest import build_manifest, write_manifest
from engines.models import MODELS, ModelSpec
from engines.runners import OnnxRunner, TfliteRunner
from engines.source import extract_tflite, fetch_wheel, sha256_file

Progress = Callable[[str], None]
CACHE = Path(__file__).resolve().parents[1] / "build" / "engines"
REFERENCE_COUNT = {"selfie_segmentation": 2}  # its 256x256 outputs are the biggest


class Inputs:
    """Model-sized uint8 crops per split, made once with the TFLite originals."""

    def __init__(self, frames: list[calibration.Frame], tflite: dict[str, Path]) -> None:
        self.frames = frames
        self.tflite = tflite
        self._cache: dict[tuple[str, str], list[np.ndarray]] = {}

    def get(self, crop: str, split: str) -> list[np.ndarray]:
        key = (crop, split)
        if key not in self._cache:
            self._make(split)
        return self._cache[key]

    def _make(self, split: str) -> None:
        rgb = [f.rgb for f in self.frames if f.split == split]
        self._cache[("letterbox", split)] = [crops.letterbox(i, 128)[0] for i in rgb]
        self._cache[("resize", split)] = [crops.resize(i, 256) for i in rgb]
        if split == "selection":  # only whole-frame models search on it (no face crops)
            return
        detector = TfliteRunner(self.tflite["face_detection"], MODELS["face_detection"])
        mesh = TfliteRunner(self.tflite["face_mesh"], MODELS["face_mesh"])
        faces, eyes = [], []
        for image in rgb:
            face, m, _ = crops.face_crop(image, detector)
            faces.append(face)
            eyes += crops.eye_crops(image, mesh(face)["conv2d_21"].reshape(468, 3), m)
        self._cache[("face", split)] = faces
        self._cache[("eye", split)] = eyes

    def for_model(self, spec: ModelSpec, split: str) -> list[np.ndarray]:
        return self.get(spec.input.crop, split)


def build_model(
    spec: ModelSpec, inputs: Inputs, wheel_sha256: str, out_dir: Path, progress: Progress
) -> dict[str, Any]:
    from engines.convert import convert
    from engines.quantize import quantize

    stage = out_dir / f".{spec.name}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    fp32, int8 = stage / f"{spec.name}.fp32.onnx", stage / f"{spec.name}.int8.onnx"
    progress(f"[{spec.name}] convert {Path(spec.member).name} -> {fp32.name}")
    notes = convert(spec, inputs.tflite[spec.name], fp32)["notes"]

    evaluation = inputs.for_model(spec, "evaluation")
    progress(f"[{spec.name}] check ONNX FP32 vs TFLite on {len(evaluation)} real inputs")
    reference, onnx32 = TfliteRunner(inputs.tflite[spec.name], spec), OnnxRunner(fp32, spec)
    out_ref = [reference(x) for x in evaluation]
    out_fp32 = [onnx32(x) for x in evaluation]
    conversion = metrics.conversion(spec, out_ref, out_fp32)
    _print_conversion(spec, conversion, progress)
    if not conversion["passed"]:
        shutil.rmtree(stage)
        raise RuntimeError(f"{spec.name}: conversion outside tolerance, no bundle written")

    calib = inputs.for_model(spec, "calibration")
    progress(f"[{spec.name}] quantize INT8 QDQ, calibrating on {len(calib)} real inputs")
    tensors = [onnx32.tensor(x) for x in calib]
    selection: list[np.ndarray] = []
    score: Callable[[Path], float] | None = None
    if spec.mixed_precision is not None:
        selection = inputs.for_model(spec, "selection")
        score = _selection_score(spec, selection, [onnx32(x) for x in selection])
    settings = quantize(
        fp32,
        int8,
        spec.input.name,
        tensors,
        spec.float_tail,
        progress,
        mixed=spec.mixed_precision,
        score=score,
        higher_is_better=spec.gate.higher_is_better,
        selection_inputs=len(selection),
    )
    out_int8 = [OnnxRunner(int8, spec)(x) for x in evaluation]
    gate = metrics.gate(spec, out_fp32, out_int8)
    gate["settings"] = settings
    verdict = "PASS" if gate["passed"] else "FAIL"
    progress(
        f"[{spec.name}] INT8 gate {gate['metric']}: mean {gate['value']} worst "
        f"{gate['worst']} (threshold {gate['threshold']}) {verdict}"
    )
    if "mixed_precision" in settings:
        notes = [*notes, _mixed_note(spec, settings, gate)]

    count = REFERENCE_COUNT.get(spec.name, 3)
    picks = np.linspace(0, len(evaluation) - 1, count).round().astype(int).tolist()
    ref: dict[str, np.ndarray] = {"input_rgb_u8": np.stack([evaluation[i] for i in picks])}
    for precision, outs in (("fp32", out_fp32), ("int8", out_int8)):
        if precision == "int8" and not gate["passed"]:
            continue
        for o in spec.outputs:
            ref[f"{precision}/{o.name}"] = np.concatenate([outs[i][o.name] for i in picks])
    reference_gate = metrics.value(spec, [out_fp32[i] for i in picks], [out_int8[i] for i in picks])
    if gate["passed"] and not agreement.meets(
        reference_gate, spec.gate.threshold, spec.gate.higher_is_better
    ):
        raise RuntimeError(
            f"{spec.name}: the INT8 gate fails on the reference inputs ({reference_gate}), "
            "so no machine could verify the bundle; pick other reference inputs"
        )
    if not gate["passed"]:
        int8.unlink()
    np.savez_compressed(stage / "reference.npz", **ref)  # type: ignore[arg-type]

    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in _io(fp32)}
    calib_info: dict[str, Any] = {
        "data": calibration.describe(),
        "seed": calibration.SEED,
        "calibration_inputs": len(calib),
        "evaluation_inputs": len(evaluation),
        "crop": spec.input.roi,
    }
    if selection:
        calib_info["selection"] = calibration.describe_selection()
        calib_info["selection_inputs"] = len(selection)
    manifest = build_manifest(
        spec,
        stage,
        wheel_sha256,
        conversion,
        gate,
        calib_info,
        notes,
        shapes,
        count,
        metrics.figure(reference_gate),
    )
    write_manifest(stage, manifest)
    final = out_dir / spec.name
    shutil.rmtree(final, ignore_errors=True)
    stage.rename(final)
    progress(f"[{spec.name}] bundle written: {final}")
    return manifest


def _selection_score(
    spec: ModelSpec, selection: list[np.ndarray], fp32: list[dict[str, np.ndarray]]
) -> Callable[[Path], float]:
    """The gate metric of an INT8 model vs FP32 on the selection split (never evaluation)."""

    def score(path: Path) -> float:
        run = OnnxRunner(path, spec)
        return metrics.value(spec, fp32, [run(x) for x in selection])

    return score


def _mixed_note(spec: ModelSpec, settings: dict[str, Any], gate: dict[str, Any]) -> str:
    mixed = settings["mixed_precision"]
    chosen = mixed["chosen"]
    layers = ", ".join("+".join(layer["nodes"]) for layer in chosen["float_layers"]) or "none"
    return (
        f"INT8 mixed precision: {len(chosen['float_layers'])} of "
        f"{mixed['convolution_layers']} convolution layers left float ({layers}); TensorRT "
        "builds them in FP16 (the runtime sets the INT8 and FP16 builder flags). "
        f"Calibration: {settings['calibration']}. Both chosen by layer sensitivity on "
        f"{mixed['selection_inputs']} selection frames (disjoint from the calibration and "
        f"evaluation frames): {spec.gate.metric} {chosen['int8']} fully INT8 -> "
        f"{chosen['value']} (target {mixed['target']}). The gate, measured once afterwards "
        f"on the held-out evaluation frames: {gate['value']}"
    )


def _io(path: Path) -> list[Any]:
    import onnx

    graph = onnx.load(str(path)).graph
    return [*graph.input, *graph.output]


def _print_conversion(spec: ModelSpec, conversion: dict[str, Any], progress: Progress) -> None:
    for name, v in conversion["outputs"].items():
        ok = "ok" if v["max_abs"] <= v["tolerance"] else "OVER"
        progress(
            f"  {name}: max {v['max_abs']} mean {v['mean_abs']} {v['units']} "
            f"(tolerance {v['tolerance']}) {ok}"
        )
    if "landmark_px" in conversion:
        lm = conversion["landmark_px"]
        progress(f"  landmarks: max {lm['max']} px, mean {lm['mean']} px (192-px crop)")


def build(
    names: list[str],
    out_dir: Path,
    progress: Progress = print,
    data_dir: Path = calibration.DEFAULT_DATA,
    cache: Path = CACHE,
    allow_fp32_only: bool = False,
) -> int:
    """Build the named bundles (all if empty) into ``out_dir``; returns an exit code."""
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        progress(f"unknown model(s) {unknown}; known: {sorted(MODELS)}")
        return 2
    selected = [MODELS[n] for n in (names or list(MODELS))]
    progress("[source] fetching the pinned mediapipe wheel (sha256-checked)")
    wheel = fetch_wheel(cache / "wheels")
    wheel_sha256 = sha256_file(wheel)
    # The detector and mesh are always extracted: they cut the face and eye crops.
    tflite = {n: extract_tflite(wheel, MODELS[n], cache / "tflite") for n in MODELS}
    progress(f"[frames] selecting calibration/evaluation frames from {data_dir}")
    inputs = Inputs(calibration.select_frames(data_dir, progress=progress), tflite)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed, fp32_only = [], []
    for spec in selected:
        try:
            manifest = build_model(spec, inputs, wheel_sha256, out_dir, progress)
        except RuntimeError as exc:
            progress(f"[{spec.name}] FAILED: {exc}")
            failed.append(spec.name)
            continue
        if not manifest["accuracy"]["int8"]["passed"]:
            fp32_only.append(spec.name)
    progress(
        f"[done] {len(selected) - len(failed)}/{len(selected)} bundles written"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
        + (f"; INT8 gate failed, FP32 only: {', '.join(fp32_only)}" if fp32_only else "")
    )
    return 1 if failed or (fp32_only and not allow_fp32_only) else 0
