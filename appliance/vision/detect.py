"""Short-range face detector (BlazeFace): letterbox, decode 896 anchors, weighted NMS.

The frame is letterboxed to 128x128 exactly as the bundle was calibrated and gated
(``appliance.vision.crops.letterbox``: aspect kept, zero padding), so the detector sees here what
its INT8 gate measured. Overlapping candidates are blended, weighted by score, as
MediaPipe's ``NonMaxSuppressionCalculator`` (``WEIGHTED``) does: plain NMS keeps one
anchor's box, which jumps between neighbouring anchors from frame to frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from appliance.vision import anchors
from appliance.vision.crops import letterbox
from appliance.vision.net import Network

MIN_SCORE = 0.5  # the bundle's postprocess.min_score
NMS_IOU = 0.3  # postprocess.nms.iou
MIN_SIDE = 16  # px; smaller frames cannot hold a face the 128-px input resolves

# Keypoint order of the detector (manifest ``outputs[regressors]``).
RIGHT_EYE, LEFT_EYE, NOSE_TIP, MOUTH, RIGHT_EAR, LEFT_EAR = range(6)


@dataclass(frozen=True)
class Detection:
    """A face in frame pixels. ``keypoints`` (6, 2): the subject's right eye (image left
    on a frontal face), left eye, nose tip, mouth, right ear tragion, left ear tragion."""

    box: np.ndarray  # (4,) x0, y0, x1, y1
    score: float
    keypoints: np.ndarray  # (6, 2)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a`` (4,) against ``b`` (N, 4) (x0, y0, x1, y1)."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0.0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0.0, None)
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0.0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(
    rows: np.ndarray, scores: np.ndarray, threshold: float = NMS_IOU
) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted NMS: each cluster (IoU > threshold with its best member)
    becomes the score-weighted mean of its rows (box and keypoints) with the best score."""
    order = np.argsort(-scores, kind="stable")
    rows, scores = rows[order], scores[order]
    alive = np.ones(len(rows), bool)
    out: list[tuple[np.ndarray, float]] = []
    for i in range(len(rows)):
        if not alive[i]:
            continue
        overlap = iou(rows[i, :4], rows[:, :4]) > threshold
        members = alive & overlap
        members[i] = True
        w = scores[members]
        out.append(((rows[members] * w[:, None]).sum(axis=0) / w.sum(), float(scores[i])))
        alive &= ~members
    return out


class FaceDetector:
    """``detect(bgr) -> [Detection]``, best first, in the frame's pixels."""

    def __init__(
        self, net: Network, min_score: float = MIN_SCORE, nms_iou: float = NMS_IOU
    ) -> None:
        self.net = net
        self.min_score = min_score
        self.nms_iou = nms_iou
        self._regressors = self.net.output(len(anchors.ANCHORS) * 16)
        self._scores = self.net.output(len(anchors.ANCHORS))

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        h, w = bgr.shape[:2]
        if min(h, w) < MIN_SIDE:
            return []
        size = self.net.size
        # Letterbox the BGR frame, then convert only the 128x128 result to RGB.
        boxed, scale, dx, dy = letterbox(bgr, size)
        out = self.net.run(cv2.cvtColor(boxed, cv2.COLOR_BGR2RGB))
        rows, scores = anchors.decode(out[self._regressors], out[self._scores])
        keep = scores >= self.min_score
        if not keep.any():
            return []
        found = []
        for row, score in weighted_nms(rows[keep], scores[keep], self.nms_iou):
            pts = (row.reshape(-1, 2) * size - (dx, dy)) / scale  # 128-px input -> frame px
            found.append(
                Detection(
                    box=pts[:2].reshape(4).astype(np.float32),
                    score=score,
                    keypoints=pts[2:].astype(np.float32),
                )
            )
        return found
