"""Levelling on the synthetic face with known roll, through the real tracker."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from appliance.align.affine import apply, invert
from appliance.align.framing import Crop
from appliance.align.level import fit_rotated, output_to_source
from appliance.align.stage import AlignStage
from appliance.capture.synthetic import SyntheticSource
from appliance.frame import Frame
from appliance.vision.stage import FaceTrackingStage

W, H = 640, 360


def eye_angle(left: np.ndarray, right: np.ndarray) -> float:
    """Counter-clockwise (as seen, y down) angle of the eye line, degrees."""
    d = right - left
    return math.degrees(math.atan2(-d[1], d[0]))


def rolled(source: SyntheticSource, roll: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame 0 turned about the face so its eye line is at ``roll``; image, pupils."""
    image, truth = source.render(0)
    m = cv2.getRotationMatrix2D(truth["face_center"], roll - truth["roll_deg"], 1.0)
    image = cv2.warpAffine(image, m, (W, H), borderMode=cv2.BORDER_REFLECT)
    eyes = apply(m, np.array([truth["left_eye"], truth["right_eye"]]))
    return image, eyes[0], eyes[1]


@pytest.fixture(scope="module")
def source() -> SyntheticSource:
    return SyntheticSource(W, H)


@pytest.mark.parametrize("roll", [-12.0, -6.0, 0.0, 6.0, 12.0, 20.0])
def test_output_eye_line_is_level(
    tracking: FaceTrackingStage, source: SyntheticSource, roll: float
) -> None:
    image, left, right = rolled(source, roll)
    assert abs(eye_angle(left, right) - roll) < 1e-6
    tracking.tracker.reset()
    stage = AlignStage()
    frame = Frame(image, 0)
    for i in range(60):  # 2 s of a still head: tracking converges, the roll settles
        frame = tracking.process(Frame(image.copy(), i, t_capture=i / 30.0))
        frame = stage.process(frame)
        assert frame.meta["faces"], f"no face on frame {i}"
    m = frame.meta["align_matrix"]
    out = apply(m, np.array([left, right]))
    residual = eye_angle(out[0], out[1])
    applied = frame.meta["framing"]["roll_deg"]
    print(f"\nroll {roll:+.0f}: applied {applied:+.2f}, output eye line {residual:+.2f} deg")
    if abs(roll) <= 12.0:
        assert abs(residual) < 1.0
    else:  # beyond the limit: taken as deliberate, nothing applied
        assert abs(applied) < 1e-3 and abs(residual - roll) < 1e-3


def test_matrix_maps_crop_to_output() -> None:
    crop = fit_rotated(Crop(400.0, 300.0, 320.0, 180.0), 10.0, (1280, 720))
    to_src = output_to_source(crop, 10.0, (640, 360))
    to_out = invert(to_src)
    # The output centre is the crop centre; a round trip is the identity.
    centre = apply(to_src, np.array([[319.5, 179.5]]))[0]
    assert np.allclose(centre, (crop.cx - 0.5, crop.cy - 0.5), atol=1e-9)
    pts = np.array([[0.0, 0.0], [639.0, 359.0], [17.0, 300.0]])
    assert np.allclose(apply(to_out, apply(to_src, pts)), pts)


def test_fit_rotated_keeps_corners_on_the_sensor() -> None:
    for roll in (-15.0, -7.0, 3.0, 15.0):
        for crop in (Crop(640, 360, 1280, 720), Crop(30, 700, 400, 225)):
            fitted = fit_rotated(crop, roll, (1280, 720))
            m = output_to_source(fitted, roll, (1280, 720))
            corners = apply(
                m, np.array([[-0.5, -0.5], [1279.5, -0.5], [-0.5, 719.5], [1279.5, 719.5]])
            )
            assert (corners >= -0.5 - 1e-6).all()
            assert (corners <= np.array([1279.5, 719.5]) + 1e-6).all()


def test_output_image_agrees_with_align_matrix() -> None:
    """The warped picture and ``align_matrix`` agree: a source point lands where it says."""
    from tests.align.helpers import fake_face

    rng = np.random.default_rng(2)
    image = cv2.resize(rng.integers(0, 255, (90, 160, 3), np.uint8), (1280, 720))  # smooth
    face = fake_face(500, 330, 110, roll_deg=9.0)
    stage = AlignStage()
    frame = Frame(image, 0)
    for i in range(60):
        frame = stage.process(Frame(image, i, t_capture=i / 30.0, meta={"faces": [face]}))
    assert abs(frame.meta["framing"]["roll_deg"] - 9.0) < 0.6
    m = frame.meta["align_matrix"]
    src = np.array([[420.0, 280.0], [530.0, 350.0], [470.0, 400.0]])
    for (x, y), (u, v) in zip(src, apply(m, src), strict=True):
        a = image[round(y), round(x)].astype(int)
        b = frame.image[round(v), round(u)].astype(int)
        assert np.abs(a - b).max() <= 12, (x, y, u, v, a, b)
