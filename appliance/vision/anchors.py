"""SSD anchors and box decoding for the short-range face detector (NumPy only).

Shared by the daemon's detector (``appliance.vision.detect``) and the model recipes
(``engines``: cropping faces, gating the detector's INT8 copy on box IoU), so both
decode the network the same way. NumPy only, so the recipes stay light to import.
The parameters are MediaPipe's (``face_detection_short_range``):
128x128 input, strides 8, 16, 16, 16, two anchors per cell per layer, fixed size.
Layers sharing a stride share a grid, so the 16x16 grid has 2 anchors per cell and
the 8x8 grid 6: 512 + 384 = 896.
"""

from __future__ import annotations

import numpy as np

INPUT_SIZE = 128
STRIDES = (8, 16, 16, 16)
ANCHORS_PER_LAYER = 2
SCALE = 128.0


def anchors(
    size: int = INPUT_SIZE, strides: tuple[int, ...] = STRIDES, per_layer: int = ANCHORS_PER_LAYER
) -> np.ndarray:
    """Anchor centres (x, y) in [0, 1], shape (N, 2), in the model's output order."""
    out: list[tuple[float, float]] = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        count = 0
        while layer < len(strides) and strides[layer] == stride:
            count += per_layer
            layer += 1
        cells = int(np.ceil(size / stride))
        for y in range(cells):
            for x in range(cells):
                out.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * count)
    return np.asarray(out, dtype=np.float32)


ANCHORS = anchors()


def decode(regressors: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) as (x0, y0, x1, y1) and keypoints (N, 6, 2), both in [0, 1] of the
    input; and scores (N,). Accepts the model's outputs with or without batch axis."""
    raw = regressors.reshape(-1, 16).astype(np.float32) / SCALE
    centre = raw[:, :2] + ANCHORS
    half = raw[:, 2:4] / 2.0
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 4:].reshape(-1, 6, 2) + ANCHORS[:, None, :]
    logit = np.clip(logits.reshape(-1).astype(np.float64), -100.0, 100.0)  # as MediaPipe
    scores = 1.0 / (1.0 + np.exp(-logit))
    return np.concatenate([boxes, keypoints.reshape(-1, 12)], axis=1), scores


def top_detection(regressors: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, float]:
    """The best-scoring anchor's decoded row (4 box + 12 keypoint values) and its score."""
    decoded, scores = decode(regressors, logits)
    best = int(np.argmax(scores))
    return decoded[best], float(scores[best])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
