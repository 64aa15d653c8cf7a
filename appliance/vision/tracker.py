"""Several faces, a stable id each: mesh tracking with detection only when needed.

Per frame, each track runs the mesh on the region predicted from its previous landmarks
(MediaPipe's "landmarks to ROI" loop: the detector is not needed while the face is
held). A track is dropped when the mesh's presence falls under the threshold or its
region leaves the frame. The detector runs when there are no tracks, every
``detect_every`` frames (to find faces that came in) and right after a track was lost;
a detection overlapping a held track is that track (so it keeps its id), any other one
starts a new track, up to ``max_faces``.

Two details keep a still face still. The region is kept as it is while the new one is
within a small tolerance of it: the mesh then sees the same crop, and the landmark to
region loop cannot dither. And the outputs go through a One-Euro filter (raw landmarks
still drive the region, so smoothing adds no lag to the tracking itself).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from appliance.vision.detect import Detection, FaceDetector, iou
from appliance.vision.iris import IrisModel, IrisResult
from appliance.vision.landmarks import (
    PRESENCE_MIN,
    FaceMesh,
    MeshResult,
    Roi,
    landmark_box,
    roi_from_detection,
    roi_from_landmarks,
)
from appliance.vision.pose import HeadPose, PoseEstimator
from appliance.vision.smoothing import OneEuroFilter

MATCH_IOU = 0.3  # a detection overlapping a track's box this much is that track
DUPLICATE_IOU = 0.5  # two tracks overlapping this much hold one face: the younger goes
MIN_INSIDE = 0.25  # drop a track when less of its region than this is in the frame
# Region hysteresis, relative to the side: keep the old region within these.
HOLD_SHIFT = 0.01
HOLD_SIZE = 0.01
HOLD_ANGLE = math.radians(0.5)
REFINE_STEPS = 3  # at most this many extra mesh passes when a track starts


@dataclass
class Track:
    id: int
    roi: Roi
    landmarks: np.ndarray  # (468, 3) raw, frame px
    score: float
    smoothed: np.ndarray  # (468, 3) filtered (= landmarks when smoothing is off)
    iris: IrisResult | None = None
    iris_smoothed: np.ndarray | None = None  # (2, 5, 2)
    pose: HeadPose | None = None
    age: int = 0  # frames held
    filter: OneEuroFilter = field(default_factory=OneEuroFilter)
    iris_filter: OneEuroFilter = field(default_factory=OneEuroFilter)
    pose_estimator: PoseEstimator = field(default_factory=PoseEstimator)

    @property
    def box(self) -> np.ndarray:
        return landmark_box(self.smoothed)


def hold(previous: Roi, new: Roi) -> Roi:
    """``previous`` while ``new`` is within the hysteresis, else ``new``."""
    shift = math.hypot(new.cx - previous.cx, new.cy - previous.cy)
    angle = abs(math.remainder(new.angle - previous.angle, 2.0 * math.pi))
    if (
        shift <= HOLD_SHIFT * previous.side
        and abs(new.side - previous.side) <= HOLD_SIZE * previous.side
        and angle <= HOLD_ANGLE
    ):
        return previous
    return new


def _overlaps(track: Track, others: list[Track]) -> bool:
    """True when ``track`` holds a face one of ``others`` already holds."""
    if not others:
        return False
    boxes = np.array([landmark_box(o.landmarks) for o in others])
    return float(iou(landmark_box(track.landmarks), boxes).max()) > DUPLICATE_IOU


class Timer:
    """Milliseconds spent per component in the last frame (summed over faces)."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def clear(self) -> None:
        self.last, self.calls = {}, {}

    def add(self, name: str, start: float) -> None:
        self.last[name] = self.last.get(name, 0.0) + (time.perf_counter() - start) * 1000.0
        self.calls[name] = self.calls.get(name, 0) + 1


class FaceTracker:
    """``update(bgr, t) -> [Track]``: call once per frame, in order."""

    def __init__(
        self,
        detector: FaceDetector,
        mesh: FaceMesh,
        iris: IrisModel | None = None,
        max_faces: int = 4,
        detect_every: int = 10,
        pose: bool = True,
        smoothing: bool = True,
    ) -> None:
        self.detector = detector
        self.mesh = mesh
        self.iris = iris
        self.max_faces = max_faces
        self.detect_every = max(1, detect_every)
        self.pose = pose
        self.smoothing = smoothing
        self.tracks: list[Track] = []
        self.frames = 0
        self.tracks_started = 0  # ever: a re-acquired face counts again
        self.timer = Timer()
        self._lost = False

    def reset(self) -> None:
        self.tracks = []
        self._lost = False

    def _free_id(self) -> int:
        used = {t.id for t in self.tracks}
        return next(i for i in range(len(used) + 1) if i not in used)

    def _mesh(self, bgr: np.ndarray, roi: Roi) -> MeshResult:
        start = time.perf_counter()
        result = self.mesh.run(bgr, roi)
        self.timer.add("mesh", start)
        return result

    def _follow(self, bgr: np.ndarray, track: Track) -> bool:
        """Run the mesh in the track's region; False when the face is gone."""
        h, w = bgr.shape[:2]
        if track.roi.inside_fraction(w, h) < MIN_INSIDE:
            return False
        result = self._mesh(bgr, track.roi)
        if result.presence < PRESENCE_MIN:
            return False
        track.landmarks, track.score = result.landmarks, result.presence
        track.roi = hold(track.roi, roi_from_landmarks(result.landmarks))
        return True

    def _start(self, bgr: np.ndarray, det: Detection) -> Track | None:
        roi = roi_from_detection(det)
        result = self._mesh(bgr, roi)
        # A detection's box is not the landmarks' box: re-run from the landmarks' region
        # until it settles (within the hold tolerance), so that the track starts where it
        # will run from and a still face does not jump on its second frame.
        for _ in range(REFINE_STEPS):
            if result.presence < PRESENCE_MIN:
                break
            settled = hold(roi, roi_from_landmarks(result.landmarks))
            if settled is roi:
                break
            roi = settled
            result = self._mesh(bgr, roi)
        if result.presence < PRESENCE_MIN:
            return None
        track = Track(
            id=self._free_id(),
            roi=hold(roi, roi_from_landmarks(result.landmarks)),
            landmarks=result.landmarks,
            score=result.presence,
            smoothed=result.landmarks,
        )
        self.tracks_started += 1
        return track

    def _detect(self, bgr: np.ndarray) -> None:
        start = time.perf_counter()
        detections = self.detector.detect(bgr)
        self.timer.add("detect", start)
        for det in detections:
            if len(self.tracks) >= self.max_faces:
                break
            boxes = np.array([landmark_box(t.landmarks) for t in self.tracks]).reshape(-1, 4)
            if len(boxes) and float(iou(det.box, boxes).max()) > MATCH_IOU:
                continue  # a face we hold: it keeps its id and its region
            track = self._start(bgr, det)
            if track is not None and not _overlaps(track, self.tracks):
                self.tracks.append(track)

    def update(self, bgr: np.ndarray, t: float) -> list[Track]:
        self.timer.clear()
        kept: list[Track] = []
        # Older tracks first, so that of two tracks converging on one face the older wins.
        for track in sorted(self.tracks, key=lambda tr: -tr.age):
            if self._follow(bgr, track):
                if not _overlaps(track, kept):
                    kept.append(track)
            else:
                self._lost = True
        self.tracks = kept
        due = self.frames % self.detect_every == 0
        if len(self.tracks) < self.max_faces and (not self.tracks or due or self._lost):
            self._lost = False
            self._detect(bgr)
        self.frames += 1
        h, w = bgr.shape[:2]
        for track in self.tracks:
            self._outputs(bgr, track, t, w, h)
            track.age += 1
        self.tracks.sort(key=lambda tr: tr.id)
        return self.tracks

    def _outputs(self, bgr: np.ndarray, track: Track, t: float, w: int, h: int) -> None:
        scale = track.roi.side
        if self.smoothing:
            track.smoothed = track.filter(track.landmarks, t, scale)
        else:
            track.smoothed = track.landmarks
        if self.iris is not None:
            start = time.perf_counter()
            track.iris = self.iris.run(bgr, track.landmarks)
            self.timer.add("iris", start)
            iris = track.iris.iris
            track.iris_smoothed = (
                track.iris_filter(iris.reshape(-1, 2), t, scale).reshape(iris.shape)
                if self.smoothing
                else iris
            )
        else:
            track.iris, track.iris_smoothed = None, None
        if self.pose:
            start = time.perf_counter()
            track.pose = track.pose_estimator.estimate(track.smoothed, w, h)
            self.timer.add("pose", start)
        else:
            track.pose = None
