"""How far two sets of a network's outputs are apart, in the units its job cares about.

One set of functions for two uses: the INT8 accuracy gates when a bundle is built
(``engines.metrics``: INT8 vs FP32 on the evaluation frames) and the reference check
on the machine that runs the bundle (``appliance.runtime.bundle.check_reference``: the
INT8 outputs computed here vs the FP32 outputs stored at build time). Integer kernels
differ between CPU classes (rounding of requantization, saturation on x86 without
VNNI), so raw logits can differ by several units where the decoded box, landmarks or
mask are the same; these measures judge what the picture depends on.

Each takes one sample's outputs (``reference``, ``other``) and returns a float, NaN
where the sample says nothing (no face in the reference).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from appliance.vision import anchors

Outputs = dict[str, np.ndarray]


def _points(flat: np.ndarray, n: int) -> np.ndarray:
    return flat.reshape(n, 3)


def box_iou(reference: Outputs, other: Outputs) -> float:
    box_f, score = anchors.top_detection(reference["regressors"], reference["classificators"])
    if score < 0.5:  # no face in the reference: nothing to compare
        return float("nan")
    box_q, _ = anchors.top_detection(other["regressors"], other["classificators"])
    return anchors.box_iou(box_f[:4], box_q[:4])


def nme_iod(reference: Outputs, other: Outputs) -> float:
    a, b = _points(reference["conv2d_21"], 468)[:, :2], _points(other["conv2d_21"], 468)[:, :2]
    iod = np.linalg.norm(a[33] - a[263])
    return float(np.linalg.norm(a - b, axis=1).mean() / iod)


def nme_eye_width(reference: Outputs, other: Outputs) -> float:
    contour = _points(reference["output_eyes_contours_and_brows"], 71)[:, :2]
    width = np.linalg.norm(contour[0] - contour[8])  # the eye corners
    a, b = _points(reference["output_iris"], 5)[:, :2], _points(other["output_iris"], 5)[:, :2]
    return float(np.linalg.norm(a - b, axis=1).mean() / width)


def mask_iou(reference: Outputs, other: Outputs) -> float:
    a, b = reference["activation_10"] > 0.5, other["activation_10"] > 0.5
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


METRICS: dict[str, Callable[[Outputs, Outputs], float]] = {
    "box_iou": box_iou,
    "nme_iod": nme_iod,
    "nme_eye_width": nme_eye_width,
    "mask_iou": mask_iou,
}


def samples(metric: str, reference: list[Outputs], other: list[Outputs]) -> np.ndarray:
    """The metric per sample, samples it does not apply to left out."""
    measure = METRICS[metric]
    values = np.array([measure(r, o) for r, o in zip(reference, other, strict=True)])
    return values[np.isfinite(values)]


def meets(value: float, threshold: float, higher_is_better: bool) -> bool:
    """The gates' one rule (a NaN never meets it)."""
    return bool(value >= threshold if higher_is_better else value < threshold)
