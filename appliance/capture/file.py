"""A video or image file, looped, paced at the file's own frame rate."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from appliance.capture.base import Pacer, Source, SourceError
from appliance.frame import Frame

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


class FileSource(Source):
    """Plays a clip in a loop (or repeats a still image) like a live camera.

    Frames keep the file's resolution unless ``width``/``height`` are given and differ,
    in which case they are resized: later stages see the size the config asked for.
    """

    def __init__(
        self,
        path: Path,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        loop: bool = True,
        uri: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.uri = uri or f"file://{self.path}"
        self.loop = loop
        self._want = (width, height) if width and height else None
        self._fps_override = fps
        self._cap: cv2.VideoCapture | None = None
        self._still: np.ndarray | None = None
        self._fps = 30.0
        self._size = (0, 0)
        self._pacer: Pacer | None = None
        self._seq = 0

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"{self.uri}: no such file")
        if self.path.suffix.lower() in IMAGE_SUFFIXES:
            image = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
            if image is None:
                raise SourceError(f"{self.uri}: not a readable image")
            self._still = self._fit(image)
            self._size = (self._still.shape[1], self._still.shape[0])
        else:
            cap = cv2.VideoCapture(str(self.path))
            ok, first = cap.read() if cap.isOpened() else (False, None)
            if not ok or first is None:
                cap.release()
                raise SourceError(f"{self.uri}: not a readable video")
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            native_fps = cap.get(cv2.CAP_PROP_FPS)
            self._fps = native_fps if 1.0 <= native_fps <= 240.0 else 30.0
            self._cap = cap
            first = self._fit(first)
            self._size = (first.shape[1], first.shape[0])
        if self._fps_override:
            self._fps = self._fps_override
        self._pacer = Pacer(self._fps)

    def _fit(self, image: np.ndarray) -> np.ndarray:
        if self._want and (image.shape[1], image.shape[0]) != self._want:
            return cv2.resize(image, self._want, interpolation=cv2.INTER_AREA)
        return image

    def read(self, timeout: float = 1.0) -> Frame | None:
        if self._pacer is None:
            raise SourceError(f"{self.uri}: read before open")
        if not self._pacer.wait(timeout):
            return None
        image = self._still.copy() if self._still is not None else self._next_video_frame()
        self._seq += 1
        return Frame(image=image, seq=self._seq, t_capture=time.monotonic(), source=self.uri)

    def _next_video_frame(self) -> np.ndarray:
        assert self._cap is not None
        ok, image = self._cap.read()
        if not ok and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._cap.read()
        if not ok or image is None:
            raise SourceError(f"{self.uri}: end of stream")
        return self._fit(image)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def fps(self) -> float:
        return self._fps
