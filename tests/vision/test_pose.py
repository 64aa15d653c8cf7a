"""Head pose: the canonical face data, the sign conventions, roll on the synthetic face."""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import pytest

from appliance.capture.synthetic import SyntheticSource
from appliance.vision.pose import (
    CANONICAL_PATH,
    PoseEstimator,
    camera_matrix,
    canonical_face,
    euler,
    rigid_points,
)
from appliance.vision.tracker import FaceTracker


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head -> camera rotation with the module's conventions (degrees)."""
    y, p, r = (math.radians(-v) for v in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return ry @ rx @ rz


def _project(rotation: np.ndarray, t: np.ndarray, w: int = 1280, h: int = 720) -> np.ndarray:
    k = camera_matrix(w, h)
    uv = (canonical_face() @ rotation.T + t) @ k.T
    out = np.zeros((468, 3), np.float32)
    out[:, :2] = uv[:, :2] / uv[:, 2:3]
    return out


def test_canonical_face_data() -> None:
    raw = np.load(CANONICAL_PATH)
    assert raw.shape == (468, 3) and raw.dtype == np.float32
    # MediaPipe's canonical face is exactly symmetric: each vertex has its mirror image
    # (a check on the transcription of every vertex off the centre line).
    v = raw.astype(np.float64)
    assert {tuple(np.round(p * (-1, 1, 1), 5)) for p in v} == {tuple(np.round(p, 5)) for p in v}
    # A few vertices as the .obj gives them: nose tip (1), outer eye corners, tragions.
    assert raw[1].tolist() == pytest.approx([0.0, -1.126865, 7.475604])
    assert raw[33].tolist() == pytest.approx([-4.445859, 2.663991, 3.173422])
    assert raw[263].tolist() == pytest.approx([4.445859, 2.663991, 3.173422])
    assert raw[234].tolist() == pytest.approx([-7.664182, 0.673132, -2.435867])
    assert 250 < len(rigid_points()) < 400


@pytest.mark.parametrize("angles", [(0, 0, 0), (20, -10, 15), (-35, 12, -8), (5, 25, 30)])
def test_known_pose_is_recovered(angles: tuple[float, float, float]) -> None:
    rotation = _rotation(*angles)
    assert euler(rotation) == pytest.approx(angles, abs=1e-9)
    t = np.array([4.0, -3.0, 70.0])
    pose = PoseEstimator().estimate(_project(rotation, t), 1280, 720)
    assert pose is not None
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx(angles, abs=0.05)
    assert pose.translation == pytest.approx(t, abs=0.05)


def test_sign_conventions_read_as_documented() -> None:
    t = np.array([0.0, 0.0, 60.0])
    nose = 1
    frontal = _project(_rotation(0, 0, 0), t)
    turned = _project(_rotation(20, 0, 0), t)  # yaw > 0: nose toward the image right
    assert turned[nose, 0] > frontal[nose, 0] + 5
    up = _project(_rotation(0, 20, 0), t)  # pitch > 0: nose up (smaller y)
    assert up[nose, 1] < frontal[nose, 1] - 5
    ccw = _project(_rotation(0, 0, 20), t)  # roll > 0: the image-right eye (263) rises
    assert ccw[263, 1] < ccw[33, 1] - 5
    assert frontal[33, 0] < frontal[263, 0]  # 33 is the image-left eye on a frontal face


def test_roll_matches_the_synthetic_truth(
    make_tracker: Callable[..., FaceTracker], synthetic: SyntheticSource
) -> None:
    errors = []
    for index in range(0, 3000, 60):
        image, truth = synthetic.render(index)
        tracker = make_tracker(smoothing=False)
        tracks = []
        for i in range(2):
            tracks = tracker.update(image, i / 30.0)
        pose = tracks[0].pose
        assert pose is not None
        errors.append(pose.roll - truth["roll_deg"])
        # The photo is frontal: yaw and pitch stay small whatever the roll.
        assert abs(pose.yaw) < 15 and abs(pose.pitch) < 15
    e = np.abs(errors)
    print(f"roll error vs truth: mean {e.mean():.2f} deg, worst {e.max():.2f} deg")
    assert e.max() < 3.0
    rolls = [synthetic.pose(i).roll_deg for i in range(0, 3000, 60)]
    assert max(rolls) > 5 and min(rolls) < -5  # the frames do roll both ways


def test_pose_matches_cv2_reprojection(
    make_tracker: Callable[..., FaceTracker], synthetic: SyntheticSource
) -> None:
    image, _ = synthetic.render(400)
    tracker = make_tracker(smoothing=False)
    track = tracker.update(image, 0.0)[0]
    pose = track.pose
    assert pose is not None
    rvec, _ = cv2.Rodrigues(pose.rotation)
    uv, _ = cv2.projectPoints(canonical_face(), rvec, pose.translation, pose.camera, None)
    assert pose.project(canonical_face()) == pytest.approx(uv.reshape(-1, 2), abs=1e-6)
    # The rigid points reproject close to the mesh (a 2-D photo is not the canonical head,
    # so not exactly): within 5% of the eye distance on average.
    idx = rigid_points()
    iod = float(np.linalg.norm(track.landmarks[33, :2] - track.landmarks[263, :2]))
    err = np.linalg.norm(uv.reshape(-1, 2)[idx] - track.landmarks[idx, :2], axis=1).mean()
    assert err / iod < 0.05
