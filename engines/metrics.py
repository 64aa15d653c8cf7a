"""Figures for the manifest: conversion error vs TFLite, and INT8-vs-FP32 gates."""

from __future__ import annotations

from typing import Any

import numpy as np

from appliance.vision import anchors
from engines.models import ModelSpec

Outputs = list[dict[str, np.ndarray]]


def _r(value: float) -> float:
    return float(f"{value:.6g}")  # short, stable figures in the manifest


def conversion(spec: ModelSpec, tflite: Outputs, onnx: Outputs) -> dict[str, Any]:
    """Per output max/mean |ONNX FP32 - TFLite| against the spec's tolerance."""
    per_output: dict[str, dict[str, Any]] = {}
    for out in spec.outputs:
        diff = np.abs(
            np.stack([o[out.name] for o in onnx]) - np.stack([t[out.name] for t in tflite])
        )
        per_output[out.name] = {
            "max_abs": _r(diff.max()),
            "mean_abs": _r(diff.mean()),
            "tolerance": out.atol,
            "units": out.units,
        }
    result: dict[str, Any] = {"samples": len(onnx), "outputs": per_output}
    if spec.name == "face_mesh":  # the landmark error as a distance, not per coordinate
        a = np.stack([_points(o["conv2d_21"], 468) for o in onnx])
        b = np.stack([_points(t["conv2d_21"], 468) for t in tflite])
        dist = np.linalg.norm(a[..., :2] - b[..., :2], axis=-1)
        result["landmark_px"] = {"max": _r(dist.max()), "mean": _r(dist.mean()), "crop": 192}
    result["passed"] = all(v["max_abs"] <= v["tolerance"] for v in per_output.values())
    return result


def _points(flat: np.ndarray, n: int) -> np.ndarray:
    return flat.reshape(n, 3)


def samples(spec: ModelSpec, fp32: Outputs, int8: Outputs) -> np.ndarray:
    """The gate metric per sample (samples it does not apply to left out)."""
    values = np.array([_GATES[spec.gate.metric](f, q) for f, q in zip(fp32, int8, strict=True)])
    return values[np.isfinite(values)]


def value(spec: ModelSpec, fp32: Outputs, int8: Outputs) -> float:
    """The gate metric's mean, unrounded (what the gate compares to its threshold)."""
    return float(samples(spec, fp32, int8).mean())


def gate(spec: ModelSpec, fp32: Outputs, int8: Outputs) -> dict[str, Any]:
    """The model's INT8 accuracy gate, with per-sample figures summarized."""
    values = samples(spec, fp32, int8)
    mean = float(values.mean())
    passed = (
        mean >= spec.gate.threshold if spec.gate.higher_is_better else mean < spec.gate.threshold
    )
    return {
        "metric": spec.gate.metric,
        "description": spec.gate.description,
        "value": _r(mean),
        "worst": _r(values.min() if spec.gate.higher_is_better else values.max()),
        "threshold": spec.gate.threshold,
        "higher_is_better": spec.gate.higher_is_better,
        "samples": len(values),
        "passed": bool(passed),
    }


def _box_iou(f: dict[str, np.ndarray], q: dict[str, np.ndarray]) -> float:
    box_f, score = anchors.top_detection(f["regressors"], f["classificators"])
    if score < 0.5:  # no face in the FP32 result: nothing to compare
        return float("nan")
    box_q, _ = anchors.top_detection(q["regressors"], q["classificators"])
    return anchors.box_iou(box_f[:4], box_q[:4])


def _nme_iod(f: dict[str, np.ndarray], q: dict[str, np.ndarray]) -> float:
    a, b = _points(f["conv2d_21"], 468)[:, :2], _points(q["conv2d_21"], 468)[:, :2]
    iod = np.linalg.norm(a[33] - a[263])
    return float(np.linalg.norm(a - b, axis=1).mean() / iod)


def _nme_eye_width(f: dict[str, np.ndarray], q: dict[str, np.ndarray]) -> float:
    contour = _points(f["output_eyes_contours_and_brows"], 71)[:, :2]
    width = np.linalg.norm(contour[0] - contour[8])  # the eye corners
    a, b = _points(f["output_iris"], 5)[:, :2], _points(q["output_iris"], 5)[:, :2]
    return float(np.linalg.norm(a - b, axis=1).mean() / width)


def _mask_iou(f: dict[str, np.ndarray], q: dict[str, np.ndarray]) -> float:
    a, b = f["activation_10"] > 0.5, q["activation_10"] > 0.5
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


_GATES = {
    "box_iou": _box_iou,
    "nme_iod": _nme_iod,
    "nme_eye_width": _nme_eye_width,
    "mask_iou": _mask_iou,
}
