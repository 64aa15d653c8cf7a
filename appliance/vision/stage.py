"""The pipeline stage: ``frame.meta["faces"] = [Face, ...]`` on every frame."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.frame import Frame
from appliance.pipeline.stage import Stage, settings_from
from appliance.runtime.base import Backend
from appliance.runtime.bundle import factory_bundle_dir
from appliance.vision.detect import FaceDetector
from appliance.vision.iris import IrisModel
from appliance.vision.landmarks import FaceMesh
from appliance.vision.net import load_network
from appliance.vision.pose import HeadPose
from appliance.vision.tracker import FaceTracker, Track

log = logging.getLogger(__name__)

BUNDLES = ("face_detection", "face_mesh", "iris")
Models = tuple[FaceDetector, FaceMesh, IrisModel]


@dataclass(frozen=True)
class VisionSettings:
    """The live settings (``config.vision``); the schema mirrors these defaults."""

    enabled: bool = True
    max_faces: int = 4
    detect_every: int = 10
    iris: bool = True
    pose: bool = True
    smoothing: bool = True

    @classmethod
    def from_config(cls, config: Any, current: VisionSettings | None = None) -> VisionSettings:
        """Fields of ``config.vision`` where present, else ``current``'s (or defaults)."""
        return settings_from(cls, getattr(config, "vision", None), current)


@dataclass(frozen=True)
class Face:
    """One tracked face, in frame pixels. ``landmarks`` are smoothed when smoothing is on.

    ``iris`` (2, 5, 2): per eye (index 0 the subject's right eye, image left when
    frontal) the iris centre then 4 rim points; ``iris_radius`` (2,) px. ``box``: x0, y0,
    x1, y1 around the landmarks. ``score``: the mesh's face presence, 0..1. ``age``:
    frames the face has been tracked.
    """

    id: int
    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray  # (468, 3) float32
    iris: np.ndarray | None = None
    iris_radius: np.ndarray | None = None
    pose: HeadPose | None = None
    age: int = 0

    @classmethod
    def from_track(cls, track: Track) -> Face:
        x0, y0, x1, y1 = (float(v) for v in track.box)
        return cls(
            id=track.id,
            box=(x0, y0, x1, y1),
            score=float(track.score),
            landmarks=track.smoothed.astype(np.float32, copy=True),
            iris=None if track.iris_smoothed is None else track.iris_smoothed.copy(),
            iris_radius=None if track.iris is None else track.iris.radius.copy(),
            pose=track.pose,
            age=track.age,
        )


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A 3-channel uint8 view or copy of what a source might hand over (grey, BGRA)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


class FaceTrackingStage(Stage):
    """Detection, 468-point mesh, irises, head pose and smoothing, several faces.

    ``backend`` defaults to ONNX Runtime with one thread per network (the pipeline's
    threads share the cores); ``bundles_dir`` to the factory bundles. Each bundle is
    verified when loaded (``Backend.load``): a bad bundle raises ``BundleError`` here,
    at construction, not mid-stream.
    """

    name = "vision"

    def __init__(
        self,
        backend: Backend | None = None,
        bundles_dir: Path | None = None,
        settings: VisionSettings | None = None,
        precision: str = "auto",
    ) -> None:
        if backend is None:
            from appliance.runtime.onnx import OnnxRuntimeBackend

            backend = OnnxRuntimeBackend(threads=1)
        self.backend = backend
        self.precision = precision
        self.settings = settings or VisionSettings()
        self.detector, self.mesh, self.iris = self.load_models(bundles_dir)
        self.tracker = FaceTracker(self.detector, self.mesh)
        self._apply(self.settings)

    def load_models(self, bundles_dir: Path | None = None) -> Models:
        """Verify and load the three networks from ``bundles_dir`` (default: factory).

        Raises BundleError/ModelError and loads nothing if any one of them is bad, so a
        model update is all or nothing. Safe to call from any thread: it touches no
        state of the running stage (``swap_models`` does, between frames).
        """
        root = Path(bundles_dir) if bundles_dir is not None else factory_bundle_dir()
        loaded: list[Any] = []
        try:
            for name in BUNDLES:
                loaded.append(load_network(self.backend, root / name, self.precision))
        except Exception:
            for net in loaded:
                net.model.close()
            raise
        log.info(
            "vision models from %s: %s, %s",
            root,
            self.backend.name,
            ", ".join(f"{n.model.name} {n.model.precision}" for n in loaded),
        )
        return FaceDetector(loaded[0]), FaceMesh(loaded[1]), IrisModel(loaded[2])

    def swap_models(self, models: Models) -> None:
        """Put freshly loaded models in place; run by the stage's thread between frames."""
        old = (self.detector, self.mesh, self.iris)
        self.detector, self.mesh, self.iris = models
        self.tracker.detector, self.tracker.mesh = self.detector, self.mesh
        if self.tracker.iris is not None:
            self.tracker.iris = self.iris
        for part in old:
            part.net.model.close()

    @classmethod
    def from_config(cls, config: Any, bundles_dir: Path | None = None) -> FaceTrackingStage:
        """The stage as ``config.vision`` describes it, restart-only fields included:
        ``backend`` ("auto": TensorRT where present) and ``threads`` (ONNX Runtime)."""
        from appliance.runtime.select import backend_for

        return cls(backend_for(config), bundles_dir, VisionSettings.from_config(config))

    def _apply(self, settings: VisionSettings) -> None:
        tracker = self.tracker
        if not settings.enabled:
            tracker.reset()  # when it comes back, faces are found afresh
        for track in tracker.tracks:  # states from before a switch must not leak past it
            if settings.smoothing != tracker.smoothing:
                track.filter.reset()
                track.iris_filter.reset()
            if settings.pose != tracker.pose:
                track.pose_estimator.reset()
        tracker.max_faces = max(1, int(settings.max_faces))
        tracker.detect_every = max(1, int(settings.detect_every))
        tracker.iris = self.iris if settings.iris else None
        tracker.pose = bool(settings.pose)
        tracker.smoothing = bool(settings.smoothing)
        if len(tracker.tracks) > tracker.max_faces:  # keep the longest-held faces
            tracker.tracks = sorted(tracker.tracks, key=lambda t: -t.age)[: tracker.max_faces]
        self.settings = settings

    def configure(self, config: Any) -> None:
        self._apply(VisionSettings.from_config(config, self.settings))

    def process(self, frame: Frame) -> Frame:
        if not self.settings.enabled:
            return frame  # no "faces" key: nothing was looked for (an empty list: none seen)
        tracks = self.tracker.update(as_bgr(frame.image), frame.t_capture)
        frame.meta["faces"] = [Face.from_track(t) for t in tracks]
        return frame

    def close(self) -> None:
        for net in (self.detector.net, self.mesh.net, self.iris.net):
            net.model.close()
