"""The receiver's renderer: the reference picture warped by the keypoints, mouth and eyes
from a small bank of real pictures of them.

A warp cannot invent what the reference does not show: teeth and the inside of an open
mouth when the reference's mouth is closed, an eye that is shut in the reference. So
the renderer keeps a **bank** of region pictures (mouth, each eye), each with the
landmarks of the frame it came from: every reference contributes its own, and so does
every residual the sender sends when the rendering of a region failed (the closed loop,
``appliance.codec.session``). Each frame, for each region, the entry whose region shape
(landmarks relative to the eyes' distance) is nearest to the frame's is warped in with
the same mesh and blended under a feathered mask of the region. A new mouth shape thus
costs bits once; when the speaker makes it again, the bank has it.

Sender and receiver must hold the same bank, so that the receiver shows exactly what the
sender checked. The bank therefore depends on nothing but what was sent: each reference
empties it and contributes its own regions, each residual since then adds one entry, the
oldest goes first (``BANK_SIZE``), and the choice is a pure function of the frame's
landmarks (no hysteresis, which would depend on which frames arrived). A receiver that
lost a keypoint packet is exact again at the next intra packet; one that lost a
residual asks for a new reference (REQUEST REFRESH).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import cv2
import numpy as np

from appliance.codec.bitstream import Region
from appliance.codec.keypoints import EYE_CORNERS, IRIS_RATIO, gaze_of
from appliance.codec.mesh import Box, Mesh
from appliance.vision.overlay import FACE_OVAL, LEFT_EYE, LIPS_INNER, LIPS_OUTER, RIGHT_EYE

EYE_GROW = 1.6  # an eye's region: its lid contour scaled about its centre (lids, lashes)
BOX_MARGIN = 0.25  # of the region's larger side
FEATHER = 0.12  # mask edge softness, of the region's larger side
BANK_SIZE = 12  # entries per region
REGIONS = (Region.MOUTH, Region.RIGHT_EYE, Region.LEFT_EYE)
_OUTLINE = {
    Region.MOUTH: LIPS_OUTER,
    Region.RIGHT_EYE: RIGHT_EYE,
    Region.LEFT_EYE: LEFT_EYE,
    Region.FACE: FACE_OVAL,
}
_EYE_REGIONS = (Region.RIGHT_EYE, Region.LEFT_EYE)
_SHAPE = {  # the landmarks whose layout picks a bank entry
    Region.MOUTH: LIPS_OUTER + LIPS_INNER,
    Region.RIGHT_EYE: RIGHT_EYE,
    Region.LEFT_EYE: LEFT_EYE,
}
_EYE_CORNERS = (33, 263)
_EYE_INDEX = {Region.RIGHT_EYE: 0, Region.LEFT_EYE: 1}  # keypoints.EYE_CORNERS order
POINTS = 468
IRIS_MARGIN = 1.15  # the moved disk: a little more than the iris, to take its edge along


def _iris_at(points: np.ndarray, eye: int, gaze: np.ndarray) -> np.ndarray:
    a, b = (points[i, :2] for i in EYE_CORNERS[eye])
    width = float(np.linalg.norm(b - a)) or 1.0
    u = (b - a) / width
    n = np.array([-u[1], u[0]])
    return (a + b) / 2.0 + (gaze[0] * u + gaze[1] * n) * width


CAVITY_BGR = (38, 30, 62)  # the inside of a mouth, in shadow
CAVITY_MIN = 0.02  # opening (inner-lip area / mouth width^2) below which nothing is drawn


def mouth_opening(landmarks: np.ndarray) -> float:
    """Inner-lip area over the squared mouth width: 0 closed, about 0.3 wide open."""
    inner = landmarks[list(LIPS_INNER), :2].astype(np.float64)
    width = float(np.linalg.norm(landmarks[61, :2] - landmarks[291, :2])) or 1.0
    x, y = inner[:, 0], inner[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    return area / (width * width)


def open_mouth(frame: np.ndarray, target: np.ndarray, source: np.ndarray, box: Box) -> None:
    """When the frame's mouth is more open than the picture it was warped from, the warp
    stretched the lips across the opening: draw the opening as the mouth's dark inside
    instead (teeth come from the bank once the sender has sent an open mouth)."""
    gap = mouth_opening(target) - mouth_opening(source)
    if gap < CAVITY_MIN:
        return
    x0, y0, x1, y1 = box
    inner = target[list(LIPS_INNER), :2] - (x0, y0)
    alpha = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(alpha, [np.rint(inner * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.0) * min(1.0, gap / (3 * CAVITY_MIN))
    cavity = np.empty((y1 - y0, x1 - x0, 3), np.float32)
    cavity[:] = CAVITY_BGR
    blend(frame, cavity, alpha, box)


def _fixed(point: np.ndarray) -> tuple[int, int]:
    """A point for OpenCV's drawing with 4 fractional bits."""
    return round(float(point[0]) * 16), round(float(point[1]) * 16)


def move_iris(
    frame: np.ndarray, eye: int, target: np.ndarray, source: np.ndarray, box: Box
) -> None:
    """Put the iris where the frame's gaze says, in place. The warp brought the source's
    iris to the source's place on the eye; the disk around it moves to the target's
    place (masked by the lids, which cover an iris that looks up or down) and the eye
    white is filled in where it was (inpainting: a few hundred pixels)."""
    x0, y0, x1, y1 = box
    gaze_source = gaze_of(source[:POINTS], source[[POINTS, POINTS + 5], :2])[2 * eye : 2 * eye + 2]
    gaze_target = gaze_of(target[:POINTS], target[[POINTS, POINTS + 5], :2])[2 * eye : 2 * eye + 2]
    was = _iris_at(target, eye, gaze_source) - (x0, y0)
    now = _iris_at(target, eye, gaze_target) - (x0, y0)
    shift = now - was
    if float(np.hypot(*shift)) < 0.5 or x1 - x0 < 4 or y1 - y0 < 4:
        return
    a, b = (target[i, :2] for i in EYE_CORNERS[eye])
    radius = IRIS_RATIO * IRIS_MARGIN * float(np.linalg.norm(b - a))
    area = frame[y0:y1, x0:x1]
    lids = np.zeros(area.shape[:2], np.uint8)
    contour = target[list(_OUTLINE[_EYE_REGIONS[eye]]), :2] - (x0, y0)
    cv2.fillPoly(lids, [np.rint(contour * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
    old = np.zeros_like(lids)
    cv2.circle(old, _fixed(was), round(radius * 16), 255, -1, cv2.LINE_AA, 4)
    white = cv2.inpaint(area, cv2.bitwise_and(old, lids), 3, cv2.INPAINT_TELEA)
    size = (area.shape[1], area.shape[0])
    step = np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float32)
    moved = cv2.warpAffine(area, step, size, borderMode=cv2.BORDER_REPLICATE)
    disk = np.zeros(lids.shape, np.float32)
    cv2.circle(disk, _fixed(now), round(radius * 16), 1.0, -1, cv2.LINE_AA, 4)
    alpha = cv2.GaussianBlur(disk, (0, 0), 0.6) * (cv2.GaussianBlur(lids, (0, 0), 0.8) / 255.0)
    mixed = white + alpha[..., None] * (moved.astype(np.float32) - white)
    frame[y0:y1, x0:x1] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def outline(region: Region, landmarks: np.ndarray) -> np.ndarray:
    """The region's polygon (n, 2) in frame px."""
    if region == Region.EYES:
        raise ValueError("EYES is two regions: use LEFT_EYE and RIGHT_EYE")
    points = landmarks[list(_OUTLINE[region]), :2].astype(np.float64)
    if region in (Region.LEFT_EYE, Region.RIGHT_EYE):
        centre = points.mean(axis=0)
        points = centre + (points - centre) * EYE_GROW
    return points


def region_box(region: Region, landmarks: np.ndarray, width: int, height: int) -> Box:
    """The region's box (x0, y0, x1, y1), with a margin for the feathered edge, in frame."""
    points = outline(region, landmarks)
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = BOX_MARGIN * float(np.max(hi - lo))
    x0, y0 = (int(v) for v in np.floor(lo - pad))
    x1, y1 = (int(v) + 1 for v in np.ceil(hi + pad))
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def region_mask(region: Region, landmarks: np.ndarray, box: Box) -> np.ndarray:
    """float32 alpha (box height, box width): 1 inside the region, soft at its edge."""
    x0, y0, x1, y1 = box
    points = outline(region, landmarks) - (x0, y0)
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(mask, [np.rint(points * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
    extent = float(np.max(points.max(axis=0) - points.min(axis=0)))
    sigma = max(0.8, FEATHER * extent / 2.0)
    # grow by about the blur's reach first, so the region itself stays fully covered
    grow = max(1, round(sigma))
    mask = np.asarray(cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)))
    return np.asarray(cv2.GaussianBlur(mask, (0, 0), sigma), np.float32)


def region_shape(region: Region, landmarks: np.ndarray) -> np.ndarray:
    """Layout of the region's landmarks, position and face size taken out."""
    points = landmarks[list(_SHAPE[region]), :2].astype(np.float64)
    eyes = landmarks[list(_EYE_CORNERS), :2].astype(np.float64)
    size = float(np.linalg.norm(eyes[1] - eyes[0])) or 1.0
    return ((points - points.mean(axis=0)) / size).ravel()


def blend(frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray, box: Box) -> None:
    """``frame[box] = alpha * patch + (1 - alpha) * frame[box]``, in place."""
    x0, y0, x1, y1 = box
    area = frame[y0:y1, x0:x1].astype(np.float32)
    a = alpha[..., None]
    frame[y0:y1, x0:x1] = np.clip(area + a * (patch.astype(np.float32) - area) + 0.5, 0, 255)


@dataclass
class Entry:
    """A real picture of one region, with the landmarks of the frame it was taken from."""

    picture: np.ndarray  # BGR, the box's pixels
    box: Box
    landmarks: np.ndarray  # (468, 3) frame px
    shape: np.ndarray  # region_shape of the landmarks: what the choice compares


@dataclass
class RenderStats:
    frames: int = 0
    bank_fills: dict[str, int] = field(default_factory=dict)  # region name -> frames


class FaceRenderer:
    """Renders frames of ``width`` x ``height`` from references, landmarks and the bank."""

    def __init__(self, width: int, height: int, step: int = 4) -> None:
        self.width, self.height, self.step = int(width), int(height), int(step)
        self.references: OrderedDict[int, tuple[np.ndarray, np.ndarray, Mesh]] = OrderedDict()
        self.bank: dict[Region, OrderedDict[int, Entry]] = {r: OrderedDict() for r in REGIONS}
        self._next_entry = 0
        self.stats = RenderStats()

    # --- references -----------------------------------------------------------------

    def add_reference(
        self,
        ref_id: int,
        picture: np.ndarray,
        landmarks: np.ndarray,
        keep: int = 8,
        newest: bool = True,
    ) -> None:
        """A decoded reference picture and its decoded landmarks (468, 3). The ``newest``
        (not one that arrives late) starts the region bank afresh."""
        if picture.shape[:2] != (self.height, self.width):
            raise ValueError(
                f"reference is {picture.shape[1]}x{picture.shape[0]}, "
                f"the stream is {self.width}x{self.height}"
            )
        mesh = Mesh(landmarks, self.width, self.height)
        self.references[ref_id] = (picture, np.asarray(landmarks, np.float64), mesh)
        self.references.move_to_end(ref_id)
        while len(self.references) > keep:
            self.references.popitem(last=False)
        if not newest:
            return
        for entries in self.bank.values():
            entries.clear()
        for region in REGIONS:
            self.add_entry(region, picture, region_box(region, landmarks, *self._size), landmarks)

    def has_reference(self, ref_id: int) -> bool:
        return ref_id in self.references

    # --- the bank -------------------------------------------------------------------

    @property
    def _size(self) -> tuple[int, int]:
        return self.width, self.height

    def add_entry(self, region: Region, frame: np.ndarray, box: Box, landmarks: np.ndarray) -> None:
        """Keep ``frame[box]`` (or ``frame`` itself when it is the box's size) as a picture
        of ``region`` at ``landmarks``."""
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            return
        picture = frame if frame.shape[:2] == (y1 - y0, x1 - x0) else frame[y0:y1, x0:x1]
        points = np.asarray(landmarks, np.float64)
        entry = Entry(picture.copy(), box, points, region_shape(region, points))
        entries = self.bank[region]
        entries[self._next_entry] = entry
        self._next_entry += 1
        while len(entries) > BANK_SIZE:
            del entries[next(iter(entries))]

    def choose(self, region: Region, landmarks: np.ndarray) -> int | None:
        """The bank entry whose region shape is nearest to the frame's."""
        entries = self.bank[region]
        if not entries:
            return None
        target = region_shape(region, landmarks)
        return min(entries, key=lambda key: float(np.linalg.norm(entries[key].shape - target)))

    # --- rendering ------------------------------------------------------------------

    def render(self, ref_id: int, landmarks: np.ndarray) -> np.ndarray:
        """The frame for decoded ``landmarks`` (468, 3) rendered from reference ``ref_id``."""
        picture, _ref_landmarks, mesh = self.references[ref_id]
        target, depth = mesh.target(landmarks)
        map_x, map_y = mesh.backward_map(target, depth, step=self.step)
        frame = cv2.remap(picture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        for region in REGIONS:
            self._fill(frame, region, landmarks, mesh, target, depth)
        self.stats.frames += 1
        return np.asarray(frame)

    def _fill(
        self,
        frame: np.ndarray,
        region: Region,
        landmarks: np.ndarray,
        mesh: Mesh,
        target: np.ndarray,
        depth: np.ndarray,
    ) -> None:
        key = self.choose(region, landmarks)
        if key is None:
            return
        entry = self.bank[region][key]
        box = region_box(region, landmarks, *self._size)
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            return
        source, _ = mesh.target(entry.landmarks)
        map_x, map_y = mesh.backward_map(target, depth, source=source, box=box, step=2)
        map_x -= entry.box[0]
        map_y -= entry.box[1]
        patch = cv2.remap(entry.picture, map_x, map_y, cv2.INTER_LINEAR, None, cv2.BORDER_REPLICATE)
        blend(frame, patch, region_mask(region, landmarks, box), box)
        if region == Region.MOUTH:
            open_mouth(frame, landmarks, entry.landmarks, box)
        if region in _EYE_INDEX and len(landmarks) > POINTS and len(entry.landmarks) > POINTS:
            move_iris(frame, _EYE_INDEX[region], landmarks, entry.landmarks, box)
        name = region.name.lower()
        self.stats.bank_fills[name] = self.stats.bank_fills.get(name, 0) + 1

    def paste(
        self,
        frame: np.ndarray | None,
        region: Region,
        patch: np.ndarray,
        box: Box,
        landmarks: np.ndarray,
        keep: bool = True,
    ) -> None:
        """Apply a REPLACE residual: the real pixels of ``region`` in ``box``, blended into
        ``frame`` (if given) under the region's mask, and kept in the bank (``keep``)."""
        x0, y0, x1, y1 = box
        if patch.shape[:2] != (y1 - y0, x1 - x0):
            raise ValueError(f"residual picture {patch.shape[1]}x{patch.shape[0]} != its box")
        if region in self.bank:
            if frame is not None:
                blend(frame, patch, region_mask(region, landmarks, box), box)
            if keep:
                self.add_entry(region, patch, box, landmarks)
        elif frame is not None:  # FACE or EYES: a plain patch, not banked
            frame[y0:y1, x0:x1] = patch
