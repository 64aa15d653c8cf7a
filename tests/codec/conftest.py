"""A real talking-head clip and the tracker's landmarks on it, for the codec's tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@dataclass(frozen=True)
class ClipFrames:
    name: str
    fps: float
    frames: list[np.ndarray]
    landmarks: np.ndarray  # (n, 468, 3) px
    iris: np.ndarray  # (n, 2, 2) iris centres px

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].shape[1], self.frames[0].shape[0]


def read_clip(name: str, count: int) -> ClipFrames:
    from engines.codec.basis import load_track

    path = DATA / "clips" / f"{name}.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is missing: the codec tests need ../shared/data beside the checkout")
    track = load_track(path, progress=lambda _m: None)  # cached in .cache/codec
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    n = len(frames)
    return ClipFrames(
        name, track.fps, frames, track.landmarks[:n].astype(np.float64), track.iris[:n]
    )


@pytest.fixture(scope="session")
def talking_head() -> ClipFrames:
    """lp_d20: 480x480, 25 fps; speaks, turns and tilts the head within 120 frames."""
    return read_clip("lp_d20", 120)
