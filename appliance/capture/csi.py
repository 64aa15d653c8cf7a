"""CSI sensors through jetson-utils (Argus/nvarguscamerasrc underneath), zero-copy.

Runs only on a Jetson with jetson-utils installed; elsewhere ``open`` raises
SourceError with the reason, so the selector falls back to the next source.
"""

from __future__ import annotations

import time
from typing import Any

import cv2

from appliance.capture.base import Source, SourceError
from appliance.frame import Frame


def import_jetson_utils() -> Any:
    """The jetson_utils module, or SourceError saying why it cannot be used."""
    try:
        import jetson_utils
    except ImportError as exc:
        raise SourceError(f"jetson-utils is not installed ({exc})") from exc
    except OSError as exc:  # a broken CUDA install fails while loading shared libraries
        raise SourceError(f"jetson-utils failed to load: {exc}") from exc
    return jetson_utils


class CSISource(Source):
    """``csi://N``: the Nth MIPI CSI sensor.

    The captured ``cudaImage`` lives in memory mapped for both CPU and GPU, so
    ``cudaToNumpy`` is a view, not a copy; the image is also kept in
    ``frame.meta["cuda"]`` so GPU stages can consume it without a round trip. That
    buffer belongs to videoSource's ring (a few frames deep): a stage must use it
    before the capture thread has gone round the ring, i.e. within the frame it got
    it with; ``frame.image`` (converted to BGR) is an independent copy.
    """

    def __init__(
        self, index: int, width: int = 1280, height: int = 720, fps: float = 30.0, uri: str = ""
    ) -> None:
        self.index = index
        self.uri = uri or f"csi://{index}"
        self._want = (width, height, fps)
        self._jetson: Any = None
        self._source: Any = None
        self._seq = 0

    def open(self) -> None:
        self._jetson = import_jetson_utils()
        width, height, fps = self._want
        argv = [f"--input-width={width}", f"--input-height={height}", f"--input-rate={fps:g}"]
        try:
            self._source = self._jetson.videoSource(self.uri, argv=argv)
        except Exception as exc:  # jetson-utils raises plain Exception for a missing sensor
            raise SourceError(f"{self.uri}: {exc}") from exc

    def read(self, timeout: float = 1.0) -> Frame | None:
        if self._source is None:
            raise SourceError(f"{self.uri}: read before open")
        try:
            image = self._source.Capture(format="rgb8", timeout=int(timeout * 1000))
        except Exception as exc:
            # jetson-utils before the TIMEOUT status raised on a plain timeout (Argus
            # takes a while to deliver its first frame): only a stopped stream is a loss.
            if self._source.IsStreaming():
                return None
            raise SourceError(f"{self.uri}: capture failed: {exc}") from exc
        if image is None:
            if not self._source.IsStreaming():
                raise SourceError(f"{self.uri}: stream ended")
            return None
        t_capture = time.monotonic()
        self._jetson.cudaDeviceSynchronize()
        rgb = self._jetson.cudaToNumpy(image)
        self._seq += 1
        return Frame(
            image=cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
            seq=self._seq,
            t_capture=t_capture,
            source=self.uri,
            meta={"cuda": image},
        )

    def close(self) -> None:
        if self._source is not None:
            self._source.Close()
            self._source = None

    @property
    def size(self) -> tuple[int, int]:
        if self._source is not None:
            return (int(self._source.GetWidth()), int(self._source.GetHeight()))
        return (self._want[0], self._want[1])

    @property
    def fps(self) -> float:
        if self._source is not None:
            return float(self._source.GetFrameRate())
        return float(self._want[2])
