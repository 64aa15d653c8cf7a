"""Small-angle frontalization: geometry on the posed canonical face, the warp on pixels,
the fade-out, bad input, and the head pose measured again on a real clip."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from appliance.align.affine import map_face
from appliance.align.frontalize import (
    Frontalizer,
    fade,
    frontal_landmarks,
    rotation,
    warp_face,
)
from appliance.align.settings import AlignSettings
from appliance.align.stage import AlignStage
from appliance.frame import Frame
from appliance.vision.pose import HeadPose, camera_matrix, canonical_face, euler
from appliance.vision.stage import Face, FaceTrackingStage
from tests.align.test_tracking import clip_frames

W, H = 1280, 720
IDENTITY = np.eye(2, 3)


def posed(yaw: float, pitch: float, roll: float = 0.0, face_id: int = 0) -> Face:
    """The canonical face 60 cm in front of the camera, turned, as the tracker reports it."""
    turn = rotation(yaw, pitch, roll)
    pose = HeadPose(yaw, pitch, roll, turn, np.array([0.0, 0.0, 60.0]), camera_matrix(W, H))
    xy = pose.project(canonical_face())
    landmarks = np.zeros((468, 3), np.float32)
    landmarks[:, :2] = xy
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    return Face(face_id, (x0, y0, x1, y1), 1.0, landmarks, pose=pose)


@pytest.mark.parametrize("angles", [(10.0, -6.0, 3.0), (-12.0, 8.0, -4.0), (0.0, 0.0, 0.0)])
def test_rotation_has_the_pose_conventions(angles: tuple[float, float, float]) -> None:
    assert np.allclose(euler(rotation(*angles)), angles)


@pytest.mark.parametrize(("yaw", "pitch"), [(10.0, 0.0), (0.0, -8.0), (-9.0, 6.0)])
def test_targets_are_the_frontal_face(yaw: float, pitch: float) -> None:
    turned, frontal = posed(yaw, pitch, roll=4.0), posed(0.0, 0.0, roll=4.0)
    moved = frontal_landmarks(turned, 1.0, IDENTITY)
    assert moved is not None
    want = frontal.landmarks[:, :2].astype(np.float64)
    want += turned.landmarks[:, :2].mean(axis=0) - want.mean(axis=0)  # the face stays put
    error = np.linalg.norm(moved - want, axis=1)
    before = np.linalg.norm(turned.landmarks[:, :2] - want, axis=1)
    assert error.max() < 0.05 * before.max() + 0.3  # px
    half = frontal_landmarks(turned, 0.5, IDENTITY)
    assert half is not None
    assert 0.3 < np.linalg.norm(half - turned.landmarks[:, :2], axis=1).max() / before.max() < 0.7


def test_targets_follow_the_reframing_matrix() -> None:
    face = posed(10.0, 0.0)
    zoom = np.array([[2.0, 0.0, -100.0], [0.0, 2.0, -50.0]])
    face_zoomed = map_face(face, zoom)  # what the stage hands over after re-framing
    plain = frontal_landmarks(face, 1.0, IDENTITY)
    zoomed = frontal_landmarks(face_zoomed, 1.0, zoom)
    assert plain is not None and zoomed is not None
    shift_plain = plain - face.landmarks[:, :2]
    shift_zoomed = zoomed - face_zoomed.landmarks[:, :2]
    assert np.allclose(shift_zoomed, 2.0 * shift_plain, atol=1e-6)


def test_warp_moves_the_pixels_and_leaves_the_rest() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(60, 160, (H, W, 3), np.uint8)  # no stray marker colours
    face = posed(12.0, 0.0)
    moved = frontal_landmarks(face, 1.0, IDENTITY)
    assert moved is not None
    marks = [1, 33, 263, 61, 291, 152]  # nose tip, eye corners, mouth corners, chin
    for k in marks:  # a small bright square on each point
        x, y = np.round(face.landmarks[k, :2]).astype(int)
        image[y - 2 : y + 3, x - 2 : x + 3] = (255, 0, 255)
    before = image.copy()
    assert warp_face(image, face.landmarks, moved)
    for k in marks:
        x, y = np.round(moved[k]).astype(int)
        window = image[y - 6 : y + 7, x - 6 : x + 7].astype(int)
        hits = np.argwhere((window[..., 0] > 200) & (window[..., 1] < 60) & (window[..., 2] > 200))
        assert len(hits), k
        centre = hits.mean(axis=0) - 6
        assert np.hypot(*centre) < 2.0, (k, centre)  # markers sit on whole pixels: +-1 px
    changed = np.argwhere((image != before).any(axis=2))
    (y0, x0), (y1, x1) = changed.min(axis=0), changed.max(axis=0)
    (fx0, fy0), (fx1, fy1) = face.landmarks[:, :2].min(axis=0), face.landmarks[:, :2].max(axis=0)
    pad = 0.36 * max(fx1 - fx0, fy1 - fy0)
    assert fx0 - pad <= x0 and x1 <= fx1 + pad and fy0 - pad <= y0 and y1 <= fy1 + pad


def test_fade_is_full_then_smooth_then_off() -> None:
    values = [fade(a, 15.0) for a in np.linspace(0.0, 20.0, 81)]
    assert values[0] == 1.0 and fade(10.0, 15.0) == 1.0
    assert fade(15.0, 15.0) == 0.0 and fade(30.0, 15.0) == 0.0 and fade(float("nan"), 15.0) == 0
    assert all(b <= a for a, b in itertools.pairwise(values))


def test_big_turns_are_left_alone_and_the_strength_ramps() -> None:
    fr = Frontalizer(AlignSettings(frontalize=True))
    image = np.random.default_rng(2).integers(0, 255, (H, W, 3), np.uint8)
    before = image.copy()
    fr.apply(image, [posed(25.0, 0.0)], IDENTITY, 0.0)
    assert np.array_equal(image, before) and fr.last == {0: 0.0}
    strengths = []
    for i in range(30):  # the head turns back to 8 degrees: the correction eases in
        fr.apply(image, [posed(8.0, 0.0)], IDENTITY, (i + 1) / 30)
        strengths.append(fr.last[0])
    steps = np.diff([0.0, *strengths])
    assert strengths[-1] > 0.95 and steps.max() < 0.15 and (steps >= 0).all()


def test_bad_faces_never_crash_or_move_pixels() -> None:
    fr = Frontalizer(AlignSettings(frontalize=True))
    image = np.random.default_rng(3).integers(0, 255, (H, W, 3), np.uint8)
    before = image.copy()
    good = posed(10.0, 0.0)
    nan = good.landmarks.copy()
    nan[5] = np.nan
    broken = [
        dataclasses.replace(good, pose=None, id=1),
        dataclasses.replace(good, landmarks=nan, id=2),
        dataclasses.replace(good, landmarks=good.landmarks[:100], id=3),
        dataclasses.replace(good, landmarks=good.landmarks + np.float32(5000), id=4),  # off-picture
    ]
    out = fr.apply(image, broken, IDENTITY, 0.0)
    assert np.array_equal(image, before) and len(out) == len(broken)
    edge = dataclasses.replace(good, landmarks=good.landmarks - np.float32(660), id=5)  # half out
    fr.apply(image, [edge], IDENTITY, 0.0)
    assert image.shape == before.shape


def test_stage_frontalizes_without_reframing() -> None:
    settings = AlignSettings(framing=False, level=False, frontalize=True)
    stage = AlignStage(settings)
    image = np.random.default_rng(4).integers(0, 255, (H, W, 3), np.uint8)
    face = posed(10.0, 0.0, face_id=7)
    frame = stage.process(Frame(image.copy(), 0, 0.0, meta={"faces": [face]}))
    assert frame.meta["retouch"]["frontalize"] == {7: 1.0}
    assert not np.array_equal(frame.image, image)
    assert np.array_equal(frame.image[:, :200], image[:, :200])  # far from the face
    moved = frame.meta["faces"][0].landmarks
    assert abs(moved[1, 0] - face.landmarks[1, 0]) > 3  # the nose tip moved toward frontal


def test_tracked_yaw_shrinks_on_a_real_clip(tracking: FaceTrackingStage) -> None:
    """lp_d20 turns its head by ~5 degrees on average: the tracker, run again on the
    frontalized picture, must see at most half of that."""
    fr = Frontalizer(AlignSettings(frontalize=True))
    tracking.tracker.reset()
    frames = []
    for i, (image, t, _) in enumerate(clip_frames("lp_d20")):
        if i == 60:
            break
        frame = tracking.process(Frame(image, i, t))
        frames.append((image.copy(), t, frame.meta.get("faces") or []))
    yaw_before, corrected = [], []
    for image, t, faces in frames:
        if faces and faces[0].pose is not None:
            yaw_before.append(abs(faces[0].pose.yaw))
        fr.apply(image, faces, IDENTITY, t)
        corrected.append((image, t))
    tracking.tracker.reset()
    yaw_after = []
    for i, (image, t) in enumerate(corrected):
        faces = tracking.process(Frame(image, i, t)).meta.get("faces") or []
        if faces and faces[0].pose is not None:
            yaw_after.append(abs(faces[0].pose.yaw))
    tracking.tracker.reset()
    before, after = float(np.mean(yaw_before)), float(np.mean(yaw_after))
    print(f"\nlp_d20 mean |yaw|: {before:.2f} -> {after:.2f} deg")
    assert len(yaw_after) >= 0.95 * len(frames) and before > 2.0
    assert after < 0.5 * before
