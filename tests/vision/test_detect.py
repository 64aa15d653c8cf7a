"""Face detector: boxes and eye keypoints against the synthetic source's truth."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.capture.synthetic import SyntheticSource
from appliance.vision import anchors
from appliance.vision.detect import LEFT_EYE, RIGHT_EYE, FaceDetector, weighted_nms

INDICES = range(0, 3000, 150)  # 20 frames over 100 s: seat shifts, rolls, leaning in/out


@pytest.mark.parametrize("size", [(1280, 720), (640, 360)], ids=["720p", "360p"])
def test_detector_finds_the_synthetic_face(detector: FaceDetector, size: tuple[int, int]) -> None:
    source = SyntheticSource(*size)
    errors = []
    for index in INDICES:
        image, truth = source.render(index)
        found = detector.detect(image)
        assert len(found) == 1, f"frame {index}: {len(found)} faces"
        det = found[0]
        assert det.score > 0.6  # min_score is 0.5; these score 0.78..0.95
        iou = anchors.box_iou(det.box, np.array(truth["face_box"]))
        assert iou > 0.5, f"frame {index}: IoU {iou:.2f}"
        eyes = np.array([truth["left_eye"], truth["right_eye"]])  # image left, image right
        iod = float(np.linalg.norm(eyes[1] - eyes[0]))
        kp = det.keypoints[[RIGHT_EYE, LEFT_EYE]]  # the subject's right eye is image left
        err = np.linalg.norm(kp - eyes, axis=1) / iod
        swapped = np.linalg.norm(kp - eyes[::-1], axis=1) / iod
        assert np.all(err < swapped), f"frame {index}: eye keypoints swapped"
        errors.append(err)
    # BlazeFace's keypoints are coarse (here: mean 15%, worst 39% of the eye distance;
    # the top single anchor is no better): bounds that still catch a wrong decoding.
    e = np.array(errors)
    assert e.mean() < 0.2 and e.max() < 0.45, (e.mean(), e.max())


def test_nothing_on_empty_frames(detector: FaceDetector, synthetic: SyntheticSource) -> None:
    rng = np.random.default_rng(3)
    frames = {
        "black": np.zeros((720, 1280, 3), np.uint8),
        "grey": np.full((360, 640, 3), 128, np.uint8),
        "room": synthetic.background,  # the synthetic scene without the person
        "noise": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
    }
    for name, image in frames.items():
        assert detector.detect(image) == [], name


def test_tiny_frames_give_no_detections(detector: FaceDetector) -> None:
    for h, w in ((1, 1), (3, 200), (15, 15), (200, 2)):
        assert detector.detect(np.zeros((h, w, 3), np.uint8)) == []


def test_weighted_nms_blends_overlapping_candidates() -> None:
    rows = np.zeros((3, 16))
    rows[0, :4] = (0.0, 0.0, 1.0, 1.0)
    rows[1, :4] = (0.1, 0.0, 1.1, 1.0)  # IoU 0.82 with the first: same face
    rows[2, :4] = (3.0, 3.0, 4.0, 4.0)  # elsewhere
    rows[:, 4:] = np.arange(3)[:, None]
    out = weighted_nms(rows, np.array([0.9, 0.6, 0.7]))
    assert len(out) == 2
    (first, s1), (second, s2) = out
    assert s1 == pytest.approx(0.9) and s2 == pytest.approx(0.7)
    assert first[0] == pytest.approx(0.1 * 0.6 / 1.5)  # score-weighted mean, not the best
    assert first[4] == pytest.approx(0.6 / 1.5)
    assert second[:4].tolist() == pytest.approx([3.0, 3.0, 4.0, 4.0])
