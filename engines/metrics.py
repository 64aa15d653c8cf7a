"""Figures for the manifest: conversion error vs TFLite, and INT8-vs-FP32 gates."""

from __future__ import annotations

from typing import Any

import numpy as np

from appliance.runtime import agreement
from engines.models import ModelSpec

Outputs = list[dict[str, np.ndarray]]


def figure(value: float) -> float:
    return float(f"{value:.6g}")  # short, stable figures in the manifest


def conversion(spec: ModelSpec, tflite: Outputs, onnx: Outputs) -> dict[str, Any]:
    """Per output max/mean |ONNX FP32 - TFLite| against the spec's tolerance."""
    per_output: dict[str, dict[str, Any]] = {}
    for out in spec.outputs:
        diff = np.abs(
            np.stack([o[out.name] for o in onnx]) - np.stack([t[out.name] for t in tflite])
        )
        per_output[out.name] = {
            "max_abs": figure(diff.max()),
            "mean_abs": figure(diff.mean()),
            "tolerance": out.atol,
            "units": out.units,
        }
    result: dict[str, Any] = {"samples": len(onnx), "outputs": per_output}
    if spec.name == "face_mesh":  # the landmark error as a distance, not per coordinate
        a = np.stack([_points(o["conv2d_21"], 468) for o in onnx])
        b = np.stack([_points(t["conv2d_21"], 468) for t in tflite])
        dist = np.linalg.norm(a[..., :2] - b[..., :2], axis=-1)
        result["landmark_px"] = {
            "max": figure(dist.max()),
            "mean": figure(dist.mean()),
            "crop": 192,
        }
    result["passed"] = all(v["max_abs"] <= v["tolerance"] for v in per_output.values())
    return result


def _points(flat: np.ndarray, n: int) -> np.ndarray:
    return flat.reshape(n, 3)


def samples(spec: ModelSpec, fp32: Outputs, int8: Outputs) -> np.ndarray:
    """The gate metric per sample (samples it does not apply to left out)."""
    return agreement.samples(spec.gate.metric, fp32, int8)


def value(spec: ModelSpec, fp32: Outputs, int8: Outputs) -> float:
    """The gate metric's mean, unrounded (what the gate compares to its threshold)."""
    return float(samples(spec, fp32, int8).mean())


def gate(spec: ModelSpec, fp32: Outputs, int8: Outputs) -> dict[str, Any]:
    """The model's INT8 accuracy gate, with per-sample figures summarized."""
    values = samples(spec, fp32, int8)
    mean = float(values.mean())
    passed = agreement.meets(mean, spec.gate.threshold, spec.gate.higher_is_better)
    return {
        "metric": spec.gate.metric,
        "description": spec.gate.description,
        "value": figure(mean),
        "worst": figure(values.min() if spec.gate.higher_is_better else values.max()),
        "threshold": spec.gate.threshold,
        "higher_is_better": spec.gate.higher_is_better,
        "samples": len(values),
        "passed": bool(passed),
    }
