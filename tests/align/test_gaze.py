"""Eye contact: the synthetic source's gaze, the correction end to end through the real
tracker, the pixels it may touch, its fades, and bad input.

Three instruments measure the iris: the tracker (iris centre less the eye centre from the
mesh, landmarks alone), the corrector (the same, the iris and lids measured again in the
picture) and template matching of the gaze-0 iris core against a frame, which finds where
the iris pixels really are (the synthetic truth says where they should be). Run with
``-s`` for the figures of the issue note.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from appliance.align.frontalize import rotation
from appliance.align.gaze import EYES, EyeContact, lens_target, measure, warp_eye
from appliance.align.settings import AlignSettings
from appliance.capture.synthetic import SyntheticSource
from appliance.frame import Frame
from appliance.vision.pose import HeadPose, camera_matrix
from appliance.vision.stage import Face, FaceTrackingStage
from tests.vision.helpers import clip_frame

W, H = 1280, 720
FPS = 30.0
FRAMES = 40  # a blink closes the eyes at frame 37 (seed 0)
WINDOW = range(20, 35)  # settled tracking, eyes open: where the figures are taken
PUPILS = ("left_eye", "right_eye")


@dataclasses.dataclass
class Clip:
    """Synthetic frames, their truth and (once tracked) their faces."""

    frames: list[np.ndarray]
    truths: list[dict[str, Any]]
    faces: list[list[Face]]


def track(tracking: FaceTrackingStage, frames: Sequence[np.ndarray]) -> list[list[Face]]:
    tracking.tracker.reset()
    out = [tracking.process(Frame(f, i, i / FPS)).meta["faces"] for i, f in enumerate(frames)]
    tracking.tracker.reset()
    return out


def render(gaze_deg: float = 0.0, gaze_x_deg: float = 0.0, n: int = FRAMES) -> Clip:
    source = SyntheticSource(W, H, gaze_deg=gaze_deg, gaze_x_deg=gaze_x_deg)
    frames, truths = zip(*(source.render(i) for i in range(n)), strict=True)
    return Clip(list(frames), list(truths), [])


def correct(
    seq: Clip, faces: list[list[Face]] | None = None, picture: bool = True
) -> tuple[list, list]:
    """The frames eye-contact corrected (copies) and the strengths per frame."""
    ec = EyeContact(AlignSettings(eye_contact=True))
    ec.use_picture = picture
    out, strengths = [], []
    for i, (frame, fs) in enumerate(zip(seq.frames, faces or seq.faces, strict=True)):
        image = frame.copy()
        ec.apply(image, fs, i / FPS)
        out.append(image)
        strengths.append(dict(ec.last))
    return out, strengths


def iris_shift(reference: np.ndarray, image: np.ndarray, at: Sequence[float]) -> np.ndarray:
    """Where the iris core around ``at`` in ``reference`` lies in ``image``, relative
    to ``at`` (px, sub-pixel): template matching of an 11x11 patch."""
    x, y, r, s = round(at[0]), round(at[1]), 5, 8
    template = reference[y - r : y + r + 1, x - r : x + r + 1]
    window = image[y - r - s : y + r + s + 1, x - r - s : x + r + s + 1]
    cost = cv2.matchTemplate(window, template, cv2.TM_SQDIFF)
    iy, ix = np.unravel_index(int(np.argmin(cost)), cost.shape)

    def vertex(a: float, b: float, c: float) -> float:
        return 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c > 0 else 0.0

    dx = vertex(*cost[iy, ix - 1 : ix + 2]) if 0 < ix < cost.shape[1] - 1 else 0.0
    dy = vertex(*cost[iy - 1 : iy + 2, ix]) if 0 < iy < cost.shape[0] - 1 else 0.0
    return np.array([ix + dx - s, iy + dy - s])


def true_offsets(rest: Clip, images: list[np.ndarray]) -> np.ndarray:
    """(frames, eyes, 2): the iris pixels' displacement from where they look at the lens."""
    return np.array(
        [[iris_shift(rest.frames[i], images[i], rest.truths[i][k]) for k in PUPILS] for i in WINDOW]
    )


def tracked_offsets(faces: list[list[Face]], frames: list[np.ndarray] | None = None) -> np.ndarray:
    """(frames, eyes, 2): iris less eye centre as the tracker's landmarks say, px (with
    ``frames``: as the corrector measures them in the picture, frame by frame)."""
    rows = []
    for i in WINDOW:
        gaze = measure(faces[i][0], (H, W, 3), None if frames is None else frames[i])
        assert gaze is not None
        rows.append([e.offset_px for e in gaze.eyes])
    return np.array(rows)


def shrink(before: np.ndarray, after: np.ndarray) -> float:
    b = float(np.linalg.norm(before.mean(axis=0), axis=-1).mean())
    a = float(np.linalg.norm(after.mean(axis=0), axis=-1).mean())
    return 1.0 - a / b


def eye_mask(faces: Sequence[Face], shape: tuple[int, ...]) -> np.ndarray:
    """The pixels inside the faces' eyelid contours (where the warp may write)."""
    mask = np.zeros(shape[:2], np.uint8)
    for face in faces:
        for eye in EYES:
            pts = np.round(face.landmarks[list(eye.contour), :2] * 16).astype(np.int32)
            cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, shift=4)
    return mask.astype(bool)


@pytest.fixture(scope="module")
def rest(tracking: FaceTrackingStage) -> Clip:
    seq = render(0.0, n=WINDOW.stop)
    seq.faces = track(tracking, seq.frames)
    return seq


@pytest.fixture(scope="module")
def down(tracking: FaceTrackingStage) -> Clip:
    seq = render(10.0)
    seq.faces = track(tracking, seq.frames)
    return seq


@pytest.fixture
def ramped(down: Clip) -> EyeContact:
    """An EyeContact that has seen the gaze-down face for the window's first 20 frames."""
    ec = EyeContact(AlignSettings(eye_contact=True))
    for i in range(WINDOW.start):
        ec.apply(down.frames[i].copy(), down.faces[i], i / FPS)
    assert ec.last[down.faces[0][0].id] > 0.95
    return ec


# --- The synthetic source's gaze ---------------------------------------------------------


def test_gaze_zero_is_the_photo_and_truth_follows_the_eyeball_model() -> None:
    plain, still = SyntheticSource(W, H), SyntheticSource(W, H, gaze_deg=0.0)
    for index in (0, 37, 400):
        (a, ta), (b, tb) = plain.render(index), still.render(index)
        assert np.array_equal(a, b)
        assert ta["left_eye"] == ta["left_eye_centre"] and ta == tb
    image, truth = SyntheticSource(W, H, gaze_deg=10.0).render(5)
    rest, rest_truth = plain.render(5)
    ipd = math.dist(truth["left_eye_centre"], truth["right_eye_centre"])
    want = 12.0 * math.sin(math.radians(10.0)) * ipd / 63.0
    for key in PUPILS:
        moved = np.subtract(truth[key], truth[key + "_centre"])
        roll = math.radians(truth["roll_deg"])
        down_axis = np.array([math.sin(roll), math.cos(roll)])  # the face's down, rolled
        assert np.linalg.norm(moved) == pytest.approx(want, rel=1e-6)
        assert moved @ down_axis == pytest.approx(want, rel=1e-6)
        assert truth[key + "_centre"] == rest_truth[key]
    assert truth["gaze"] == (0.0, 10.0)
    changed = np.argwhere((image != rest).any(axis=2))
    (y0, x0), (y1, x1) = changed.min(axis=0), changed.max(axis=0)
    eyes = np.array([truth["left_eye"], truth["right_eye"]])
    assert x0 > eyes[:, 0].min() - 0.35 * ipd and x1 < eyes[:, 0].max() + 0.35 * ipd
    assert y0 > eyes[:, 1].min() - 0.15 * ipd and y1 < eyes[:, 1].max() + 0.15 * ipd


@pytest.mark.parametrize(("gaze", "gaze_x"), [(10.0, 0.0), (-10.0, 0.0), (0.0, 10.0)])
def test_iris_pixels_move_where_the_truth_says(gaze: float, gaze_x: float) -> None:
    """The template instrument against the truth (upward and sideways the iris is fully
    visible; downward the lower lid hides part of it and the core shifts a little less)."""
    rest, turned = render(0.0, n=1), render(gaze, gaze_x, n=1)
    for key in PUPILS:
        found = iris_shift(rest.frames[0], turned.frames[0], rest.truths[0][key])
        want = np.subtract(turned.truths[0][key], turned.truths[0][key + "_centre"])
        assert np.linalg.norm(found - want) < 0.45 * np.linalg.norm(want), (key, found, want)


def test_gaze_is_validated() -> None:
    for down, right in ((45.0, 0.0), (0.0, -31.0), (float("nan"), 0.0)):
        with pytest.raises(ValueError, match="gaze"):
            SyntheticSource(W, H, gaze_deg=down, gaze_x_deg=right)


# --- End to end through the real tracker --------------------------------------------------


def test_gaze_down_is_corrected_end_to_end(
    rest: Clip, down: Clip, tracking: FaceTrackingStage
) -> None:
    """Gaze 10 degrees below the lens, tracked, corrected, measured again: the issue's
    acceptance (the iris-to-eye-centre offset shrinks by at least 70%)."""
    fixed, strengths = correct(down)
    true_before, true_after = true_offsets(rest, down.frames), true_offsets(rest, fixed)
    tracked_after = track(tracking, fixed)
    seen_rest = tracked_offsets(rest.faces)
    seen_before, seen_after = tracked_offsets(down.faces), tracked_offsets(tracked_after)
    fit_before = tracked_offsets(down.faces, down.frames)
    fit_after = tracked_offsets(tracked_after, fixed)
    ec = EyeContact(AlignSettings(eye_contact=True))
    angles: list[float] = []
    fitted: list[float] = []
    for i in range(WINDOW.stop):
        ec.apply(down.frames[i].copy(), down.faces[i], i / FPS)
        gaze = ec.gazes[down.faces[i][0].id]
        if i in WINDOW:
            angles.append(gaze.angle_deg)
            fitted.extend(e.fitted for e in gaze.eyes)
    print(
        "\ngaze 10 deg down, 1280x720, frames 20-34, both eyes (x, y px):"
        f"\n  true iris offset   before {true_before.mean(axis=(0, 1)).round(2)}"
        f"  after {true_after.mean(axis=(0, 1)).round(2)}"
        f"  shrink {100 * shrink(true_before, true_after):.0f}%"
        f"\n  tracker iris-eye centre: at gaze 0 {seen_rest.mean(axis=(0, 1)).round(2)}"
        f"  before {seen_before.mean(axis=(0, 1)).round(2)}"
        f"  after {seen_after.mean(axis=(0, 1)).round(2)}"
        f"  shrink {100 * shrink(seen_before, seen_after):.0f}%"
        f"\n  picture-measured: before {fit_before.mean(axis=(0, 1)).round(2)}"
        f"  after {fit_after.mean(axis=(0, 1)).round(2)}"
        f"  shrink {100 * shrink(fit_before, fit_after):.0f}%"
        f"\n  estimated gaze {np.mean(angles):.1f} deg, iris fit weight {np.mean(fitted):.2f},"
        f" strength {np.mean([s[0] for s in strengths[WINDOW.start : WINDOW.stop]]):.2f}"
    )
    assert all(s[0] > 0.98 for s in strengths[WINDOW.start : WINDOW.stop])
    assert min(fitted) == 1.0  # a clear eye: the picture's fit is trusted
    before_v, after_v = true_before[..., 1].mean(), true_after[..., 1].mean()
    assert before_v > 2.0
    assert shrink(true_before, true_after) >= 0.7
    assert -0.15 * before_v < after_v < 0.3 * before_v  # up, and not (much) past the centre
    assert abs(true_after[..., 0].mean()) < 0.5  # ... and not much sideways
    # Both views of the corrected frames agree in direction.
    assert shrink(seen_before, seen_after) > 0.05 and shrink(fit_before, fit_after) > 0.3


def test_the_warp_with_exact_landmarks_goes_the_whole_way(rest: Clip, down: Clip) -> None:
    """The warp alone, where the landmarks tell the truth: each iris landmark put where
    the true gaze puts it relative to the tracked eye centre (no picture measurement)."""
    faces = []
    for fs, truth in zip(down.faces, down.truths, strict=True):
        gaze = measure(fs[0], (H, W, 3))
        assert gaze is not None
        iris = np.array(fs[0].iris, copy=True)
        for k, (eye, key) in enumerate(zip(gaze.eyes, PUPILS, strict=True)):
            true_offset = np.subtract(truth[key], truth[key + "_centre"])
            iris[k] += (eye.centre + true_offset - iris[k, 0]).astype(np.float32)
        faces.append([dataclasses.replace(fs[0], iris=iris, pose=None)])
    fixed, _ = correct(down, faces, picture=False)
    before, after = true_offsets(rest, down.frames), true_offsets(rest, fixed)
    print(
        f"\nexact landmarks: true iris offset {before.mean(axis=(0, 1)).round(2)} ->"
        f" {after.mean(axis=(0, 1)).round(2)} px, shrink {100 * shrink(before, after):.0f}%"
    )
    assert shrink(before, after) >= 0.9
    assert after[..., 1].mean() > -0.5  # not past the centre


def test_sideways_gaze_is_corrected(rest: Clip, tracking: FaceTrackingStage) -> None:
    """Gaze 10 degrees right. Less than downward: the photo's own gaze reads 0.8 degrees
    left of the lens (the irises sit left of the corners' midpoints), and the iris disc the
    source moves sideways reads 0.8 px higher than the photo's own (its limbus, not its
    core): an upward component the correction then adds."""
    side = render(0.0, 10.0, n=WINDOW.stop)
    side.faces = track(tracking, side.frames)
    fixed, _ = correct(side)
    landmarks_only, _ = correct(side, picture=False)
    before = true_offsets(rest, side.frames)
    after, old = true_offsets(rest, fixed), true_offsets(rest, landmarks_only)
    print(
        f"\ngaze 10 deg right: true iris offset {before.mean(axis=(0, 1)).round(2)} ->"
        f" {after.mean(axis=(0, 1)).round(2)} px, shrink {100 * shrink(before, after):.0f}%"
        f" (landmarks alone {old.mean(axis=(0, 1)).round(2)}, {100 * shrink(before, old):.0f}%)"
    )
    assert 0.0 < after[..., 0].mean() < 0.4 * before[..., 0].mean()
    assert abs(after[..., 1].mean()) < 1.0
    assert shrink(before, after) > 0.55


def test_gaze_at_the_lens_is_left_alone(rest: Clip) -> None:
    """The photo looks at the lens: the correction must not invent a gaze."""
    fixed, _ = correct(rest)
    moved = true_offsets(rest, fixed)
    ec = EyeContact(AlignSettings(eye_contact=True))
    angles, landmark_angles = [], []
    for i in range(WINDOW.stop):
        ec.apply(rest.frames[i].copy(), rest.faces[i], i / FPS)
        if i in WINDOW:
            angles.append(ec.gazes[rest.faces[i][0].id].angle_deg)
            landmarks = measure(rest.faces[i][0], (H, W, 3))
            assert landmarks is not None
            landmark_angles.append(landmarks.angle_deg)
    print(
        f"\ngaze 0: estimated {np.mean(angles):.1f} deg (p90 {np.percentile(angles, 90):.1f}),"
        f" landmarks alone {np.mean(landmark_angles):.1f}; the iris moved"
        f" {moved.mean(axis=(0, 1)).round(2)} px (|max| {np.abs(moved).max():.2f})"
    )
    assert np.mean(angles) < 2.0 and max(angles) < 4.0
    assert np.linalg.norm(moved.mean(axis=(0, 1))) < 0.4  # about 1 degree
    assert np.abs(moved).max() < 1.2


def test_pixels_outside_the_eye_openings_are_unchanged(down: Clip) -> None:
    fixed, _ = correct(down)
    for i in (WINDOW.start, WINDOW.stop - 1):
        inside = eye_mask(down.faces[i], down.frames[i].shape)
        changed = (fixed[i] != down.frames[i]).any(axis=2)
        assert changed.sum() > 50  # the irises did move
        assert not changed[~inside].any()
        assert np.array_equal(fixed[i][~inside], down.frames[i][~inside])


# --- The picture measurement --------------------------------------------------------------


def moved_irises(image: np.ndarray, face: Face, px: np.ndarray) -> np.ndarray:
    """``image`` with both irises of ``face`` moved (px along the face's u, v) by the warp."""
    gaze = measure(face, image.shape)
    assert gaze is not None
    out = image.copy()
    for eye in gaze.eyes:
        assert warp_eye(out, eye.contour, eye.iris, eye.radius, px[0] * gaze.u + px[1] * gaze.v)
    return out


def picture_change(face: Face, image: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """(eyes, 2): the change of each eye's offset the picture measurement sees, (u, v) px."""
    a, b = measure(face, image.shape, image), measure(face, moved.shape, moved)
    assert a is not None and b is not None
    axes = np.stack([a.u, a.v])
    return np.array(
        [axes @ (y.offset_px - x.offset_px) for x, y in zip(a.eyes, b.eyes, strict=True)]
    )


def test_the_picture_sees_the_irises_move(rest: Clip) -> None:
    """Irises moved along the eye by a known amount (the warp, landmarks unchanged): the
    measurement follows, where the landmarks alone see nothing. (Moved across the eye,
    it sees 30-100%: this warp repeats the iris under the lid it leaves, which the limbus
    fit takes for more iris.)"""
    for i in (WINDOW.start, WINDOW.stop - 1):
        face, image = rest.faces[i][0], rest.frames[i]
        for shift in (np.array([2.5, 0.0]), np.array([-2.5, 0.0])):
            seen = picture_change(face, image, moved_irises(image, face, shift))
            assert np.abs(seen[:, 0] - shift[0]).max() < 0.45, (shift, seen)
            assert np.abs(seen[:, 1]).max() < 0.8, (shift, seen)


def test_a_real_eye_moved_sideways_is_seen(tracking: FaceTrackingStage) -> None:
    """A real face (shared clip): an iris the warp moves along the eye is measured
    moving by 80% of it or more (the tracker alone, re-run, sees about 60-80%; vertical
    shifts are reported, not asserted: on real eyes the measurement sees 15-50% of what
    this warp does, which repeats the iris under the upper lid)."""
    image = clip_frame("lp_d14", 0)
    tracking.tracker.reset()
    for k in range(6):
        faces = tracking.process(Frame(image, k, k / FPS)).meta["faces"]
    tracking.tracker.reset()
    face = faces[0]
    gaze = measure(face, image.shape)
    assert gaze is not None
    for shift in (np.array([0.15, 0.0]), np.array([0.0, 0.15])):
        px = shift * gaze.eyeball_px
        seen = picture_change(face, image, moved_irises(image, face, px))
        print(f"\nlp_d14, irises moved {px.round(2)} px: seen {seen.mean(axis=0).round(2)}")
        if shift[0]:
            assert (seen[:, 0] > 0.8 * px[0]).all() and (seen[:, 0] < 1.1 * px[0]).all()


def test_a_weak_picture_falls_back_to_the_landmarks(rest: Clip) -> None:
    """Eyes without contrast (here the eyes and around them flattened to one grey): the
    network's irises and the mesh's lids are used as they are."""
    i = WINDOW.start
    face, image = rest.faces[i][0], rest.frames[i].copy()
    around = cv2.dilate(eye_mask([face], image.shape).astype(np.uint8), np.ones((25, 25)))
    image[around > 0] = (120, 125, 130)
    gaze, landmarks = measure(face, image.shape, image), measure(face, image.shape)
    assert gaze is not None and landmarks is not None
    assert [e.fitted for e in gaze.eyes] == [0.0, 0.0]
    for e, f in zip(gaze.eyes, landmarks.eyes, strict=True):
        assert np.allclose(e.iris, f.iris) and np.allclose(e.centre, f.centre)


# --- Fades ---------------------------------------------------------------------------------


def test_the_synthetic_blink_is_left_alone(down: Clip) -> None:
    fixed, strengths = correct(down)
    closed = [i for i, t in enumerate(down.truths) if t["eyes_open"] < 0.5]
    assert closed == [37, 38]
    for i in closed:
        assert strengths[i][0] == 0.0
        assert np.array_equal(fixed[i], down.frames[i])
    assert strengths[35][0] > 0.9  # open just before
    assert strengths[FRAMES - 1][0] > 0.5  # and again just after, without a ramp


def shifted_iris(face: Face, px: float) -> Face:
    """``face`` with both irises moved ``px`` down the face."""
    gaze = measure(face, (H, W, 3))
    assert gaze is not None and face.iris is not None
    return dataclasses.replace(face, iris=face.iris + (gaze.v * px).astype(np.float32))


def turned(face: Face, yaw: float) -> Face:
    assert face.pose is not None
    pose = dataclasses.replace(face.pose, yaw=yaw, rotation=rotation(yaw, 0.0, 0.0))
    return dataclasses.replace(face, pose=pose)


def test_far_gaze_and_turned_heads_are_left_alone(down: Clip, ramped: EyeContact) -> None:
    i = WINDOW.start
    face = down.faces[i][0]
    gaze = measure(face, (H, W, 3))
    assert gaze is not None
    far = shifted_iris(face, gaze.eyeball_px * math.sin(math.radians(35.0)))
    for odd in (far, turned(face, 30.0)):
        ec, image = copy.deepcopy(ramped), down.frames[i].copy()
        ec.apply(image, [odd], i / FPS)
        assert ec.last == {face.id: 0.0}
        assert np.array_equal(image, down.frames[i])


def test_the_fade_is_smooth_in_the_angle(down: Clip) -> None:
    face = down.faces[WINDOW.start][0]
    gaze = measure(face, (H, W, 3))
    assert gaze is not None
    base = gaze.offset[1] * gaze.eyeball_px
    strengths, image = [], down.frames[0].copy()
    for angle in np.arange(0.0, 24.0, 1.0):
        ec = EyeContact(AlignSettings(eye_contact=True, eye_contact_max_deg=20.0))
        ec.use_picture = False  # the angle set through the landmarks alone
        extra = gaze.eyeball_px * math.sin(math.radians(angle)) - base
        for k in range(6):  # 2.5 s: long enough to rise fully
            ec.apply(image, [shifted_iris(face, extra)], 0.5 * k)
        strengths.append(ec.last[face.id])
    s = np.array(strengths)
    assert s[:10].min() > 0.99 and s[-4:].max() == 0.0  # full to 9 deg, off beyond 20
    assert (np.diff(s) <= 1e-9).all() and np.abs(np.diff(s)).max() < 0.3


def test_strength_rises_smoothly_and_drops_at_once(down: Clip) -> None:
    ec = EyeContact(AlignSettings(eye_contact=True))
    face = down.faces[WINDOW.start][0]
    image = down.frames[WINDOW.start]
    rise = []
    for k in range(30):
        ec.apply(image.copy(), [face], k / FPS)
        rise.append(ec.last[face.id])
    steps = np.diff([0.0, *rise])
    assert rise[0] < 0.3 and rise[-1] > 0.95
    assert (steps >= 0).all() and steps.max() < 0.25
    ec.apply(image.copy(), [turned(face, 40.0)], 1.0)
    assert ec.last[face.id] == 0.0
    ec.apply(image.copy(), [face], 1.0 + 1 / FPS)
    assert 0.0 < ec.last[face.id] < 0.3  # back in: eased again


def test_lens_target_follows_the_head_turn() -> None:
    """A head turned right that looks at the lens shows its irises left of centre."""

    def pose(yaw: float, x_cm: float = 0.0) -> HeadPose:
        return HeadPose(yaw, 0.0, 0.0, rotation(yaw, 0.0, 0.0), np.array([x_cm, 0.0, 60.0]),
                        camera_matrix(W, H))  # fmt: skip

    frontal, right = lens_target(pose(0.0)), lens_target(pose(10.0))
    assert frontal[0, 0] > 0.0 > frontal[1, 0]  # converging on the lens, both toward the nose
    assert frontal[:, 0].mean() == pytest.approx(0.0, abs=1e-3)
    assert right[:, 0].mean() == pytest.approx(-math.sin(math.radians(10.0)), abs=0.02)
    aside = lens_target(pose(0.0, x_cm=20.0))  # sitting right of the camera: look left
    assert aside[:, 0].mean() == pytest.approx(-math.sin(math.atan2(20.0, 60.0)), abs=0.03)
    assert (lens_target(None) == 0.0).all() and (frontal[:, 1] == 0.0).all()


# --- Bad input -----------------------------------------------------------------------------


def test_bad_faces_never_crash_or_move_pixels(down: Clip, ramped: EyeContact) -> None:
    i = WINDOW.start
    good = down.faces[i][0]
    iris = np.asarray(good.iris)
    nan_eye = good.landmarks.copy()
    nan_eye[159] = np.nan
    nan_iris = iris.copy()
    nan_iris[1, 0] = np.nan
    small = good.landmarks.copy()
    small[:, :2] = (small[:, :2] - small[1, :2]) * 0.15 + small[1, :2]
    off = W - float(good.landmarks[263, 0]) + 10.0  # the image-right eye just off the picture
    broken: list[Any] = [
        dataclasses.replace(good, landmarks=nan_eye),
        dataclasses.replace(good, iris=nan_iris),
        dataclasses.replace(good, iris=None),
        dataclasses.replace(good, iris=iris[:1]),
        dataclasses.replace(good, landmarks=good.landmarks[:100]),
        dataclasses.replace(good, landmarks=np.full((468, 3), np.inf, np.float32)),
        dataclasses.replace(good, landmarks=small, iris=iris * 0.15),
        dataclasses.replace(
            good,
            landmarks=good.landmarks + np.array((off, 0.0, 0.0), np.float32),
            iris=iris + np.float32(off),
        ),
        dataclasses.replace(good, landmarks=np.zeros((0, 3), np.float32)),
        SimpleNamespace(id=good.id, landmarks=None, iris=None),
        "not a face",
        None,
    ]
    for face in broken:  # each against a face that was being corrected at full strength
        ec, image = copy.deepcopy(ramped), down.frames[i].copy()
        out = ec.apply(image, [face], i / FPS)
        assert out is image and out.shape == (H, W, 3) and out.dtype == np.uint8
        assert np.array_equal(image, down.frames[i]), face
        assert list(ec.last.values()) == [0.0]
    ramped.apply(down.frames[i].copy(), [good], float("nan"))  # a broken clock
    nothing: list[Any] = [[], None]
    for faces in nothing:
        assert np.array_equal(ramped.apply(down.frames[i].copy(), faces, 0.0), down.frames[i])
        assert ramped.last == {}
    grey = cv2.cvtColor(down.frames[i], cv2.COLOR_BGR2GRAY)
    assert ramped.apply(grey.copy(), [good], 0.0).shape == grey.shape
    floats = down.frames[i].astype(np.float32)
    assert np.array_equal(ramped.apply(floats.copy(), [good], 0.0), floats)


def test_overlapping_faces_and_a_missing_pose(down: Clip) -> None:
    i = WINDOW.start
    good = down.faces[i][0]
    twin = dataclasses.replace(
        good,
        id=good.id + 1,
        landmarks=good.landmarks + np.float32(3.0),
        iris=np.asarray(good.iris) + np.float32(3.0),
    )
    no_pose = dataclasses.replace(good, id=good.id + 2, pose=None)
    ec = EyeContact(AlignSettings(eye_contact=True))
    for k in range(20):
        image = down.frames[i].copy()
        out = ec.apply(image, [good, twin, no_pose], k / FPS)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    assert set(ec.last) == {good.id, good.id + 1, good.id + 2}
    assert min(ec.last.values()) > 0.9
    inside = eye_mask([good, twin], image.shape)
    assert np.array_equal(image[~inside], down.frames[i][~inside])


def test_cost_at_720p_one_core(down: Clip) -> None:
    """Prints the figure (``appliance bench align`` is the benchmark; no timed assert)."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        ec = EyeContact(AlignSettings(eye_contact=True))
        face, image = down.faces[WINDOW.start], down.frames[WINDOW.start]
        times = []
        for k in range(60):
            work = image.copy()
            start = time.perf_counter()
            ec.apply(work, face, k / FPS)
            times.append(time.perf_counter() - start)
    finally:
        cv2.setNumThreads(threads)
    ms = np.array(times[10:]) * 1e3
    print(
        f"\neye contact 1280x720, one face, one core: p50 {np.median(ms):.2f} ms,"
        f" p99 {np.percentile(ms, 99):.2f} ms"
    )
    assert ec.last[face[0].id] > 0.9  # it did correct
