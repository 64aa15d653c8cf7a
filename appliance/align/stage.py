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

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from appliance.align.framing import Crop, Framer, clamp_crop, largest_crop_height
from appliance.align.frontalize import Frontalizer
from appliance.align.gaze import EyeContact
from appliance.align.geometry import FaceGeom, measure
from appliance.align.level import Leveller, apply, fit_rotated, invert, output_to_source
from appliance.align.settings import AlignSettings
from appliance.frame import Frame
from appliance.pipeline.stage import Stage


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
        to_output = frame.meta.get("align_matrix", np.eye(2, 3))
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
            h = largest_crop_height(size[0], size[1], aspect)
            crop = clamp_crop(size[0] / 2, size[1] / 2, h, size, aspect)
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


DOUBLE = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5]])  # x2 upscale, pixel centres kept


def then(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The 2x3 affine that applies ``first``, then ``second``."""
    return (np.vstack([second, [0.0, 0.0, 1.0]]) @ np.vstack([first, [0.0, 0.0, 1.0]]))[:2]


def _zoom_detail(config: Any, current: bool) -> bool:
    section = getattr(config, "enhance", None)
    return bool(getattr(section, "zoom", current)) if section is not None else current


def crop_box(crop: Crop) -> tuple[float, float, float, float]:
    return tuple(float(v) for v in crop.box)  # type: ignore[return-value]


def map_face(face: Any, m: np.ndarray) -> Any:
    """The face with its image-space fields mapped through ``m``; others kept as is."""
    if not dataclasses.is_dataclass(face) or isinstance(face, type):
        return face
    lm = np.asarray(getattr(face, "landmarks", None), dtype=np.float64)
    if lm.ndim != 2 or lm.shape[1] < 2:
        return face
    landmarks = apply(m, lm).astype(np.float32)
    finite = landmarks[np.isfinite(landmarks[:, :2]).all(axis=1), :2]
    box = getattr(face, "box", None)
    if len(finite):
        x0, y0 = finite.min(axis=0)
        x1, y1 = finite.max(axis=0)
        box = (float(x0), float(y0), float(x1), float(y1))
    changes: dict[str, Any] = {"landmarks": landmarks, "box": box}
    iris, radius = getattr(face, "iris", None), getattr(face, "iris_radius", None)
    if iris is not None:
        changes["iris"] = apply(m, np.asarray(iris, dtype=np.float64)).astype(np.float32)
    if radius is not None:
        changes["iris_radius"] = np.asarray(radius) * math.sqrt(abs(np.linalg.det(m[:, :2])))
    return dataclasses.replace(face, **changes)
