"""The pipeline stage: x2 super-resolution of the frame or of the faces (``config.enhance``).

``frame``: the whole picture through the network (a low-resolution sensor becomes a
sharp stream of twice the size). ``face``: the picture doubled bicubically and the face
regions through the network, feathered in: the detail goes where viewers look, at a
fraction of the cost. Either way the faces in ``frame.meta`` are mapped to the new size.
The auto-framing zoom (``enhance.zoom``) is done inside the align stage, which owns the
crop (``AlignStage.upscaler``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.align.affine import DOUBLE, map_face, then
from appliance.enhance.upscale import Upscaler
from appliance.frame import Frame
from appliance.pipeline.stage import Stage, settings_from
from appliance.runtime.base import Backend, ModelError

log = logging.getLogger(__name__)

FACE_MARGIN = 0.25  # of the face box, each side: hair and chin edges get the detail too
FEATHER = 0.12  # of the region: the blend ramps over this width


@dataclass(frozen=True)
class EnhanceSettings:
    """The live settings (``config.enhance``); the schema mirrors these defaults."""

    mode: str = "off"
    zoom: bool = False

    @classmethod
    def from_config(cls, config: Any, current: EnhanceSettings | None = None) -> EnhanceSettings:
        return settings_from(cls, getattr(config, "enhance", None), current)


class EnhanceStage(Stage):
    name = "enhance"

    def __init__(
        self,
        upscaler: Upscaler,
        settings: EnhanceSettings | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.upscaler = upscaler
        self.settings = settings or EnhanceSettings()
        self.backend = backend

    @classmethod
    def from_config(
        cls, config: Any, backend: Backend, bundles_dir: Path | None = None
    ) -> EnhanceStage:
        upscaler = Upscaler.load(backend, bundles_dir)
        return cls(upscaler, EnhanceSettings.from_config(config), backend)

    def upscale(self, image: np.ndarray) -> np.ndarray:
        """The current network, looked up per call: the align stage's zoom (another
        thread) keeps working across a model update."""
        return self.upscaler.upscale(image)

    def load_models(self, bundles_dir: Path) -> Upscaler:
        """Verify and load the network from ``bundles_dir``; nothing changes yet."""
        if self.backend is None:
            raise ModelError("this stage was built without a backend to load models on")
        return Upscaler.load(self.backend, bundles_dir)

    def swap_models(self, upscaler: Upscaler) -> None:
        # The old network is not closed: the align stage may be inside it right now;
        # it goes when the last call using it returns.
        self.upscaler = upscaler

    def configure(self, config: Any) -> None:
        self.settings = EnhanceSettings.from_config(config, self.settings)

    def process(self, frame: Frame) -> Frame:
        mode = self.settings.mode
        if mode == "off":
            return frame
        if mode == "frame":
            frame.image = self.upscaler.upscale(frame.image)
        else:
            frame.image = self._faces_only(frame.image, frame.meta.get("faces") or [])
        _double_meta(frame.meta)
        return frame

    def _faces_only(self, image: np.ndarray, faces: list[Any]) -> np.ndarray:
        height, width = image.shape[:2]
        out = cv2.resize(image, (2 * width, 2 * height), interpolation=cv2.INTER_CUBIC)
        for face in faces:
            box = _region(getattr(face, "box", None), width, height)
            if box is None:
                continue
            x0, y0, x1, y1 = box
            sharp = self.upscaler.upscale(image[y0:y1, x0:x1])
            region = out[2 * y0 : 2 * y1, 2 * x0 : 2 * x1]
            weight = _feather(sharp.shape[0], sharp.shape[1])
            if sharp.ndim == 3:
                weight = weight[..., None]
            blended = region * (1.0 - weight) + sharp * weight
            out[2 * y0 : 2 * y1, 2 * x0 : 2 * x1] = np.rint(blended).astype(np.uint8)
        return out


def _region(box: Any, width: int, height: int) -> tuple[int, int, int, int] | None:
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        return None
    if not all(np.isfinite((x0, y0, x1, y1))) or x1 <= x0 or y1 <= y0:
        return None
    pad = FACE_MARGIN * max(x1 - x0, y1 - y0)
    bx0, by0 = max(0, int(x0 - pad)), max(0, int(y0 - pad))
    bx1, by1 = min(width, int(np.ceil(x1 + pad))), min(height, int(np.ceil(y1 + pad)))
    if bx1 - bx0 < 8 or by1 - by0 < 8:
        return None
    return bx0, by0, bx1, by1


def _feather(height: int, width: int) -> np.ndarray:
    """1 inside, a smooth ramp to 0 at the region's edge."""

    def ramp(n: int) -> np.ndarray:
        edge = max(1.0, FEATHER * n)
        d = np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5) / edge
        x = np.clip(d, 0.0, 1.0)
        return x * x * (3.0 - 2.0 * x)

    return np.outer(ramp(height), ramp(width)).astype(np.float32)


def _double_meta(meta: dict[str, Any]) -> None:
    if "faces" in meta:
        meta["faces"] = [map_face(f, DOUBLE) for f in meta["faces"]]
    if "align_matrix" in meta:
        meta["align_matrix"] = then(meta["align_matrix"], DOUBLE)
