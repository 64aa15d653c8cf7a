"""The unit that flows through the pipeline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Frame:
    """One picture plus what the stages learned about it.

    ``image`` is BGR uint8, HxWx3 (OpenCV's layout, so stages need no conversion).
    ``t_capture`` is ``time.monotonic()`` when the sensor delivered the picture; the
    capture-to-output latency is measured from it.
    ``meta`` carries what stages learned (face box, landmarks, pose) and, for the
    synthetic source, the ground truth it rendered (key ``"truth"``).
    """

    image: np.ndarray
    seq: int
    t_capture: float = field(default_factory=time.monotonic)
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])
