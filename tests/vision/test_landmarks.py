"""Face mesh: accuracy on the synthetic face, stability, equivariance, region geometry."""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import pytest

from appliance.capture.synthetic import SyntheticSource
from appliance.vision.landmarks import FaceMesh, Roi, roi_from_landmarks, to_frame
from appliance.vision.tracker import FaceTracker
from tests.vision.helpers import clip_frame, converge, inter_ocular

INDICES = range(0, 3000, 97)


def test_eyes_land_on_the_truth(
    make_tracker: Callable[..., FaceTracker], synthetic: SyntheticSource
) -> None:
    """Iris centres vs the truth's pupils; eye corners on the right side of each pupil."""
    errors = []
    for index in INDICES:
        image, truth = synthetic.render(index)
        if truth["eyes_open"] < 0.9:  # mid-blink the pupil is covered
            continue
        tracker = make_tracker(iris=True, smoothing=False)
        lm = converge(tracker, image, frames=3)
        track = tracker.tracks[0]
        assert track.iris is not None
        pupils = np.array([truth["left_eye"], truth["right_eye"]])  # image left, image right
        iod = float(np.linalg.norm(pupils[1] - pupils[0]))
        errors.append(np.linalg.norm(track.iris.iris[:, 0] - pupils, axis=1) / iod)
        # Outer corners outside the pupils, inner corners between them.
        assert lm[33, 0] < pupils[0, 0] < lm[133, 0] < lm[362, 0] < pupils[1, 0] < lm[263, 0]
    e = np.array(errors)
    print(f"iris centre vs pupil: mean {100 * e.mean():.2f}%, worst {100 * e.max():.2f}% IOD")
    assert len(e) >= 25
    # Measured: mean 3.1%, worst 3.3% of the pupil distance, nearly all of it vertical and
    # the same in both eyes: the network's iris-circle centre sits ~2 px (720p) under the
    # truth's dark-blob centroid on this photo, and the circle fits the iris it shows.
    assert e.mean() < 0.035 and e.max() < 0.04, (e.mean(), e.max())


@pytest.mark.parametrize("smoothing", [False, True], ids=["raw", "smoothed"])
def test_still_image_does_not_jitter(
    make_tracker: Callable[..., FaceTracker], synthetic: SyntheticSource, smoothing: bool
) -> None:
    images = [synthetic.render(100)[0], clip_frame("lp_d14", 200)]
    for image in images:
        tracker = make_tracker(iris=True, smoothing=smoothing)
        seen = []
        for i in range(30):
            tracks = tracker.update(image, i / 30.0)
            assert len(tracks) == 1
            seen.append(tracks[0].smoothed[:, :2].astype(np.float64))
        jitter = np.linalg.norm(np.array(seen[5:]).std(axis=0), axis=-1)  # per landmark, px
        kind = "smoothed" if smoothing else "raw"
        print(f"jitter ({kind}): mean {jitter.mean():.4f} px, max {jitter.max():.4f} px")
        assert jitter.max() < 0.1


def test_sensor_noise_on_a_still_face_is_smoothed_away(
    make_tracker: Callable[..., FaceTracker], synthetic: SyntheticSource
) -> None:
    """A still scene through a noisy sensor (sigma 2 grey levels, new noise every frame):
    the raw mesh moves a little, the smoothed landmarks hold under 0.1 px."""
    rng = np.random.default_rng(11)
    still = synthetic.render(100)[0].astype(np.int16)
    frames = [
        np.clip(still + rng.normal(0.0, 2.0, still.shape).round(), 0, 255).astype(np.uint8)
        for _ in range(40)
    ]
    jitter = {}
    for smoothing in (False, True):
        tracker = make_tracker(smoothing=smoothing)
        seen = [tracker.update(f, i / 30.0)[0].smoothed[:, :2] for i, f in enumerate(frames)]
        jitter[smoothing] = np.linalg.norm(np.array(seen[10:]).std(axis=0), axis=-1)
    print(
        f"jitter with sensor noise: raw mean {jitter[False].mean():.3f} px, "
        f"smoothed mean {jitter[True].mean():.3f} px, max {jitter[True].max():.3f} px"
    )
    assert jitter[True].max() < 0.1
    assert jitter[True].mean() < jitter[False].mean() / 2


def _warp(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    return points[:, :2] @ m[:, :2].T + m[:, 2]


@pytest.mark.parametrize(
    ("clip", "index"), [("lp_d6", 300), ("lp_d10", 100), ("lp_d14", 200), ("lp_d20", 50)]
)
def test_landmarks_follow_a_shift_and_rotation(
    make_tracker: Callable[..., FaceTracker], clip: str, index: int
) -> None:
    image = clip_frame(clip, index)
    h, w = image.shape[:2]
    # Rotate by 8 degrees about a point off the face centre, then shift by (+17, -11).
    m = cv2.getRotationMatrix2D((w * 0.4, h * 0.6), 8.0, 1.0)
    m[:, 2] += np.array([17.0, -11.0])
    moved = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR)
    before = converge(make_tracker(smoothing=False), image)
    after = converge(make_tracker(smoothing=False), moved)
    expected = _warp(before, m)
    nme = float(np.linalg.norm(after[:, :2] - expected, axis=1).mean()) / inter_ocular(before)
    print(f"equivariance {clip}#{index}: mean error {100 * nme:.2f}% of inter-ocular distance")
    assert nme < 0.01


def test_region_from_landmarks_rotates_with_the_face() -> None:
    rng = np.random.default_rng(1)
    lm = np.zeros((468, 3))
    lm[:, :2] = rng.normal((300.0, 200.0), (40.0, 50.0), (468, 2))
    lm[33, :2], lm[263, :2] = (260.0, 180.0), (340.0, 180.0)
    base = roi_from_landmarks(lm)
    m = cv2.getRotationMatrix2D((123.0, 45.0), 25.0, 1.0)
    turned = lm.copy()
    turned[:, :2] = _warp(lm, m)
    roi = roi_from_landmarks(turned)
    centre = _warp(np.array([[base.cx, base.cy]]), m)[0]
    assert (roi.cx, roi.cy) == pytest.approx(tuple(centre), abs=1e-6)
    assert roi.side == pytest.approx(base.side)
    # OpenCV's positive angle is counter-clockwise on screen: the eye line's angle drops.
    assert roi.angle == pytest.approx(base.angle - math.radians(25.0))


def test_crop_and_back_is_the_identity() -> None:
    from engines.crops import rotated_crop

    roi = Roi(321.5, 210.25, 180.0, math.radians(-17.0))
    blank = np.zeros((480, 640, 3), np.uint8)
    _, m = rotated_crop(blank, np.array([roi.cx, roi.cy]), roi.side, roi.angle, 192)
    frame_pts = np.array([[300.0, 200.0, 5.0], [350.0, 260.0, -3.0]])
    crop_pts = frame_pts.copy()
    crop_pts[:, :2] = _warp(frame_pts, m) + 0.5  # the network's pixel-edge coordinates
    back = to_frame(crop_pts, m)
    assert back[:, :2] == pytest.approx(frame_pts[:, :2])
    assert back[:, 2] == pytest.approx(frame_pts[:, 2] * 180.0 / 192.0)  # depth scales too


def test_presence_is_low_without_a_face(mesh: FaceMesh, synthetic: SyntheticSource) -> None:
    room = synthetic.background
    empty = mesh.run(room, Roi(300.0, 250.0, 250.0, 0.0))
    image, truth = synthetic.render(0)
    cx, cy = truth["face_center"]
    face = mesh.run(image, Roi(cx, cy, 1.5 * (truth["face_box"][3] - truth["face_box"][1]), 0.0))
    assert empty.presence < 0.5 < face.presence
