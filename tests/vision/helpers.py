"""Frames and figures the vision tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from appliance.vision.tracker import FaceTracker
from tests.conftest import shared_data

CLIPS = ("lp_d0", "lp_d6", "lp_d10", "lp_d11", "lp_d14", "lp_d20")


def read_frames(path: Path, indices: set[int] | None = None) -> Iterator[np.ndarray]:
    """Frames of a clip, all or those at ``indices``, in order."""
    cap = cv2.VideoCapture(str(path))
    try:
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            if indices is None or index in indices:
                yield frame
            index += 1
    finally:
        cap.release()


def clip_frame(clip: str, index: int) -> np.ndarray:
    """Frame ``index`` of a shared clip (skipped when the data is missing, failed in CI)."""
    path = shared_data(f"clips/{clip}.mp4")
    for frame in read_frames(path, {index}):
        return frame
    raise AssertionError(f"{path} has no frame {index}")


def converge(tracker: FaceTracker, image: np.ndarray, frames: int = 8) -> np.ndarray:
    """Track a still ``image`` for a few frames; the raw landmarks of its one face."""
    tracks = []
    for i in range(frames):
        tracks = tracker.update(image, i / 30.0)
    assert len(tracks) == 1, f"expected one face, got {len(tracks)}"
    return tracks[0].landmarks.astype(np.float64)


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance of the outer eye corners (33, 263), the usual NME normalizer."""
    return float(np.linalg.norm(landmarks[33, :2] - landmarks[263, :2]))
