"""The pipeline stage: framing and levelling as one ``cv2.warpAffine`` per frame.

Coordinates: after this stage ``meta["faces"]`` holds the faces mapped into the output
picture (landmarks, box, irises), so every later stage sees one consistent coordinate
system; the source-coordinate faces stay in ``meta["faces_source"]`` and the mapping
in ``meta["align_matrix"]`` (2x3, source px -> output px). ``pose`` is left as the
tracker estimated it in the source camera. ``meta["framing"]`` = {"crop": (x0, y0, x1,
y1) the crop before turning, "roll_deg": the roll undone, "zoom": source height over
crop height}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from appliance.align.affine import DOUBLE, invert, map_face, then
from appliance.align.framing import Crop, Framer
from appliance.align.frontalize import Frontalizer
from appliance.align.gaze import EyeContact
from appliance.align.geometry import FaceGeom, measure
from appliance.align.level import Leveller, fit_rotated, output_to_source
from appliance.align.settings import AlignSettings
from appliance.frame import Frame
from appliance.pipeline.stage import Stage

IDENTITY = np.eye(2, 3)  # read only: the map when the picture was not re-framed


class AlignStage(Stage):
    """Virtual pan/tilt/zoom and levelling of ``frame.image`` from ``meta["faces"]``."""

    name = "align"

    def __init__(
        self,
        settings: AlignSettings | None = None,
        upscaler: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.settings = settings or AlignSettings()
        # x2 super-resolution for zooms of 2x or more (``enhance.zoom``): the crop is
        # rendered at half the output size and the network makes the detail.
        self.upscaler = upscaler
        self.zoom_detail = False
        self.framer: Framer | None = None
        self.leveller = Leveller(self.settings)
        self.frontalizer = Frontalizer(self.settings)
        self.eye_contact = EyeContact(self.settings)
        self._geometry: tuple[tuple[int, int], tuple[int, int]] | None = None

    @classmethod
    def from_config(
        cls, config: Any, upscaler: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> AlignStage:
        stage = cls(AlignSettings.from_config(config), upscaler)
        stage.zoom_detail = _zoom_detail(config, False)
        return stage

    def configure(self, config: Any) -> None:
        self.zoom_detail = _zoom_detail(config, self.zoom_detail)
        settings = AlignSettings.from_config(config, self.settings)
        if (settings.framing, settings.output_width, settings.output_height) != (
            self.settings.framing,
            self.settings.output_width,
            self.settings.output_height,
        ):
            self.framer = None  # start again from the full frame, not from a stale crop
        self.settings = settings
        self.leveller.configure(settings)
        self.frontalizer.configure(settings)
        self.eye_contact.configure(settings)
        if self.framer is not None:
            self.framer.configure(settings)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        s = self.settings
        if s.output_width and s.output_height:
            return int(s.output_width), int(s.output_height)
        return width, height

    def process(self, frame: Frame) -> Frame:
        s = self.settings
        if not s.enabled:
            return frame
        size = (frame.width, frame.height)
        if s.framing or s.level or self.output_size(*size) != size:
            self._reframe(frame)
        if s.frontalize or s.eye_contact:
            self._retouch(frame)
        return frame

    def _retouch(self, frame: Frame) -> None:
        """Frontalization, then eye contact on the frontalized eyes, in the output picture.
        ``meta["retouch"]`` holds each feature's strength per face id (0..1)."""
        faces = frame.meta.get("faces") or []
        to_output = frame.meta.get("align_matrix", IDENTITY)
        retouch = frame.meta.setdefault("retouch", {})
        if frame.image.base is not None or not frame.image.flags.writeable:
            frame.image = frame.image.copy()  # never paint into a buffer the source owns
        if self.settings.frontalize:
            faces = self.frontalizer.apply(frame.image, faces, to_output, frame.t_capture)
            retouch["frontalize"] = dict(self.frontalizer.last)
        if self.settings.eye_contact:
            self.eye_contact.apply(frame.image, faces, frame.t_capture)
            retouch["eye_contact"] = dict(self.eye_contact.last)
        if "faces" in frame.meta:
            frame.meta["faces"] = faces

    def _reframe(self, frame: Frame) -> None:
        s = self.settings
        size = (frame.width, frame.height)
        out_size = self.output_size(*size)
        faces = frame.meta.get("faces") or []
        geoms = [g for g in map(measure, faces) if g is not None]
        aspect = out_size[0] / out_size[1]
        if self.framer is None or self._geometry != (size, out_size):
            self.framer = Framer(s, size, aspect)
            self._geometry = (size, out_size)
        if s.framing:
            crop = self.framer.update(geoms, frame.t_capture)
            subject = self.framer.current
        else:
            crop = self.framer.full()
            subject = self._primary(geoms)
        roll = self.leveller.update(subject, frame.t_capture) if s.level else 0.0
        crop = fit_rotated(crop, roll, size)
        half = (
            self.upscaler is not None
            and self.zoom_detail
            and size[1] / crop.h >= 2.0
            and out_size[0] % 2 == 0
            and out_size[1] % 2 == 0
        )
        render = (out_size[0] // 2, out_size[1] // 2) if half else out_size
        to_source = output_to_source(crop, roll, render)
        frame.image = cv2.warpAffine(
            frame.image,
            to_source,
            render,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,  # only reachable through rounding at an edge
        )
        to_output = invert(to_source)
        if half and self.upscaler is not None:
            frame.image = self.upscaler(frame.image)
            to_output = then(to_output, DOUBLE)
        frame.meta["align_matrix"] = to_output
        frame.meta["framing"] = {
            "crop": crop_box(crop),
            "roll_deg": roll,
            "zoom": size[1] / crop.h,
        }
        if "faces" in frame.meta:
            frame.meta["faces_source"] = faces
            frame.meta["faces"] = [map_face(f, to_output) for f in faces]

    @staticmethod
    def _primary(geoms: list[FaceGeom]) -> list[FaceGeom]:
        return [max(geoms, key=lambda g: g.height)] if geoms else []


def _zoom_detail(config: Any, current: bool) -> bool:
    section = getattr(config, "enhance", None)
    return bool(getattr(section, "zoom", current)) if section is not None else current


def crop_box(crop: Crop) -> tuple[float, float, float, float]:
    return tuple(float(v) for v in crop.box)  # type: ignore[return-value]
