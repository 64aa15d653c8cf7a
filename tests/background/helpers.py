"""Truth masks and small runners for the background tests.

Who is where comes from the synthetic source: ``render(n)`` differs from its empty room
(``background``) exactly where the person was drawn (their feathered rim included).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from appliance.background.segment import PersonSegmenter
from appliance.background.stage import BackgroundSettings, BackgroundStage
from appliance.capture.synthetic import SyntheticSource
from appliance.frame import Frame


def person_truth(source: SyntheticSource, image: np.ndarray) -> np.ndarray:
    """bool mask of the person: where the frame differs from the empty room."""
    room = source.background
    return np.abs(image.astype(np.int16) - room).max(axis=2) > 8


def inside(mask: np.ndarray, margin: int) -> np.ndarray:
    """``mask`` shrunk by ``margin`` px: well inside it, away from the soft edge."""
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    return cv2.erode(mask.astype(np.uint8), kernel) > 0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def make_stage(segmenter: PersonSegmenter, **settings: Any) -> BackgroundStage:
    return BackgroundStage(segmenter, BackgroundSettings(**settings))


def run(stage: BackgroundStage, image: np.ndarray, seq: int = 0, source: str = "test") -> Frame:
    """One frame through the stage, at 30 fps scene time."""
    return stage.process(Frame(image.copy(), seq, t_capture=seq / 30.0, source=source))


def room_blurred(source: SyntheticSource, blur: float) -> np.ndarray:
    """The empty room under a full-size Gaussian of ``blur`` x height: what the stage's
    blurred background should look like, right up to the person's edge."""
    room = source.background.astype(np.float32)
    return cv2.GaussianBlur(room, (0, 0), blur * room.shape[0])


def mean_diff(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b)[where].mean())
