"""The synthetic camera: pixels, motion and ground truth that later stages are tested on."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.capture import synthetic
from appliance.capture.base import SourceError
from appliance.capture.synthetic import SyntheticSource

TRUTH_KEYS = {
    "face_center",
    "face_box",
    "roll_deg",
    "scale",
    "left_eye",
    "right_eye",
    "mouth_center",
    "mouth_open",
    "eyes_open",
}


@pytest.fixture(scope="module")
def source() -> SyntheticSource:
    src = SyntheticSource(1280, 720, fps=30.0, seed=0)
    src.open()
    return src


def patch_mean(image: np.ndarray, xy: tuple[float, float], r: int) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    x, y = round(xy[0]), round(xy[1])
    return float(grey[y - r : y + r + 1, x - r : x + r + 1].mean())


def test_frames_are_bgr_uint8_with_truth() -> None:
    with SyntheticSource(1280, 720, fps=30.0, uri="synthetic://") as src:
        assert src.size == (1280, 720)
        assert src.fps == 30.0
        first, second = src.read(timeout=1.0), src.read(timeout=1.0)
    assert first is not None and second is not None
    assert first.image.shape == (720, 1280, 3)
    assert first.image.dtype == np.uint8
    assert first.image.flags["C_CONTIGUOUS"]
    assert (first.seq, second.seq) == (0, 1)
    assert first.source == "synthetic://"
    assert first.t_capture <= second.t_capture <= time.monotonic()
    assert set(first.meta["truth"]) >= TRUTH_KEYS
    assert first.meta["truth"]["index"] == 0
    json.dumps(first.meta["truth"])  # plain numbers, so stages and the web API can log it


def test_read_before_open_raises() -> None:
    with pytest.raises(SourceError, match="before open"):
        SyntheticSource().read(timeout=0.1)


def test_missing_photo_is_a_clear_source_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "astronaut.png"
    monkeypatch.setattr(synthetic, "_photo_path", lambda: missing)
    with pytest.raises(SourceError, match=r"cannot read the face photo .*astronaut\.png"):
        SyntheticSource(320, 180).open()


@pytest.mark.parametrize("kwargs", [{"width": 10}, {"fps": 0.0}, {"noise": -1.0}])
def test_rejects_nonsense_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SyntheticSource(**kwargs)  # type: ignore[arg-type]


def test_same_seed_and_index_give_identical_frames(source: SyntheticSource) -> None:
    other = SyntheticSource(1280, 720, fps=30.0, seed=0)
    for index in (0, 37, 90, 1234):
        a, truth_a = source.render(index)
        b, truth_b = other.render(index)
        assert np.array_equal(a, b)
        assert truth_a == truth_b
    # Rendering out of order does not change a frame (no hidden per-frame state).
    assert np.array_equal(source.render(90)[0], other.render(90)[0])


def test_read_sequence_matches_render(source: SyntheticSource) -> None:
    with SyntheticSource(1280, 720, fps=120.0, seed=0) as live:
        frames = [live.read(timeout=1.0) for _ in range(3)]
    for frame in frames:
        assert frame is not None
        image, truth = SyntheticSource(1280, 720, fps=120.0, seed=0).render(frame.seq)
        assert np.array_equal(frame.image, image)
        assert frame.meta["truth"] == truth


def test_seeds_differ() -> None:
    a, truth_a = SyntheticSource(320, 180, seed=0).render(100)
    b, truth_b = SyntheticSource(320, 180, seed=1).render(100)
    assert not np.array_equal(a, b)
    assert truth_a["face_center"] != truth_b["face_center"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_it_moves_talks_and_blinks(seed: int) -> None:
    src = SyntheticSource(1280, 720, fps=30.0, seed=seed)
    poses = [src.pose(i) for i in range(8 * 30)]
    first3 = poses[: 3 * 30]
    xs = [p.cx for p in first3]
    ys = [p.cy for p in first3]
    assert math.hypot(max(xs) - min(xs), max(ys) - min(ys)) > 20.0
    rolls = [p.roll_deg for p in first3]
    assert max(rolls) - min(rolls) > 2.0
    mouth = [p.mouth_open for p in poses[: 5 * 30]]
    assert max(mouth) > 0.6
    assert min(mouth) < 0.1
    assert min(p.eyes_open for p in poses) < 0.3, "no blink in 8 s"


def test_motion_stays_in_its_envelope(source: SyntheticSource) -> None:
    w, h = source.size
    blinks = 0
    closed_before = False
    for i in range(0, 60 * 30):
        p = source.pose(i)
        assert abs(p.cx - 0.5 * w) <= 0.2 * w + 1e-6
        assert abs(p.cy - 0.45 * h) <= 0.1 * h + 1e-6
        assert abs(p.roll_deg) <= 12.0
        assert 0.9 - 1e-9 <= p.scale <= 1.1 + 1e-9
        assert 0.0 <= p.mouth_open <= 1.0
        assert 0.0 <= p.eyes_open <= 1.0
        closed = p.eyes_open < 0.5
        blinks += closed and not closed_before
        closed_before = closed
    assert 10 <= blinks <= 30  # one every 2-6 s


def test_truth_geometry_is_consistent(source: SyntheticSource) -> None:
    w, h = source.size
    for index in range(0, 600, 23):
        _, t = source.render(index)
        x0, y0, x1, y1 = t["face_box"]
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert 0.25 * h <= y1 - y0 <= 0.40 * h
        assert x0 < t["face_center"][0] < x1 and y0 < t["face_center"][1] < y1
        (lx, ly), (rx, ry) = t["left_eye"], t["right_eye"]
        assert lx < rx  # left = image left
        # Positive roll = counter-clockwise in the image: the right eye rises.
        eye_line = math.degrees(math.atan2(-(ry - ly), rx - lx))
        assert eye_line == pytest.approx(t["roll_deg"], abs=0.5)
        # The eyes are above the mouth along the rolled face's own vertical.
        mx, my = t["mouth_center"]
        up = (math.sin(math.radians(t["roll_deg"])), -math.cos(math.radians(t["roll_deg"])))
        assert ((lx + rx) / 2 - mx) * up[0] + ((ly + ry) / 2 - my) * up[1] > 0.1 * h


def test_pixels_follow_the_truth(source: SyntheticSource) -> None:
    background = source.background
    opened, shut, eyes_shut, eyes_open = [], [], [], []
    for index in range(0, 300):
        pose = source.pose(index)
        wanted = pose.mouth_open > 0.7 or pose.mouth_open < 0.05 or pose.eyes_open < 0.1
        if not (wanted or index % 25 == 0):
            continue
        image, t = source.render(index)
        # The person is where the truth says; the frame corner is the untouched room.
        cx, cy = (round(v) for v in t["face_center"])
        face = image[cy - 30 : cy + 31, cx - 30 : cx + 31].astype(int)
        room = background[cy - 30 : cy + 31, cx - 30 : cx + 31].astype(int)
        assert np.abs(face - room).mean() > 20.0
        assert np.array_equal(image[:20, :20], background[:20, :20])
        mouth = patch_mean(image, t["mouth_center"], 6)
        if pose.mouth_open > 0.7:
            opened.append(mouth)
        elif pose.mouth_open < 0.05:
            shut.append(mouth)
        eye = patch_mean(image, t["left_eye"], 4) + patch_mean(image, t["right_eye"], 4)
        (eyes_shut if pose.eyes_open < 0.1 else eyes_open).append(eye / 2)
    assert opened and shut and eyes_shut
    # An open mouth shows its dark inside; a closed one the teeth.
    assert max(opened) + 60.0 < min(shut)
    # A closed lid is skin, brighter than the pupil and iris it covers.
    assert min(eyes_shut) > max(eyes_open) + 60.0


def test_read_is_paced_at_fps() -> None:
    with SyntheticSource(320, 180, fps=30.0) as src:
        start = time.monotonic()
        for _ in range(15):
            assert src.read(timeout=1.0) is not None
        elapsed = time.monotonic() - start
        # 14 periods after the first frame: 0.47 s; generous for a loaded machine.
        assert 0.40 <= elapsed <= 1.5
        # The next tick is ~33 ms away: a zero timeout gets nothing.
        assert src.read(timeout=0.0) is None


@pytest.mark.parametrize("size", [(160, 120), (1920, 1080), (640, 480)])
def test_other_frame_sizes(size: tuple[int, int]) -> None:
    w, h = size
    src = SyntheticSource(w, h, seed=5)
    for index in (0, 45, 200):
        image, t = src.render(index)
        assert image.shape == (h, w, 3) and image.dtype == np.uint8
        x0, y0, x1, y1 = t["face_box"]
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert 0.2 * h <= y1 - y0 <= 0.45 * h


def test_noise_is_mild_and_deterministic() -> None:
    clean = SyntheticSource(320, 180, seed=2).render(7)[0].astype(int)
    noisy = SyntheticSource(320, 180, seed=2, noise=3.0).render(7)[0].astype(int)
    again = SyntheticSource(320, 180, seed=2, noise=3.0).render(7)[0].astype(int)
    assert np.array_equal(noisy, again)
    diff = noisy - clean
    assert 1.5 < diff.std() < 4.5
    assert abs(diff.mean()) < 0.5


def test_a_face_detector_finds_the_face_where_the_truth_says(source: SyntheticSource) -> None:
    """skimage's LBP frontal-face cascade: a check that it still looks like a face."""
    feature = pytest.importorskip("skimage.feature")
    skdata = pytest.importorskip("skimage.data")
    cascade = feature.Cascade(skdata.lbp_frontal_face_cascade_filename())
    tried = found = 0
    for index in range(0, 600, 50):
        image, t = source.render(index)
        small = cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA)
        boxes = cascade.detect_multi_scale(
            img=np.ascontiguousarray(small[:, :, ::-1]),
            scale_factor=1.2,
            step_ratio=1,
            min_size=(40, 40),
            max_size=(200, 200),
        )
        fx, fy = t["face_center"][0] / 2, t["face_center"][1] / 2
        tried += 1
        found += any(
            b["c"] <= fx <= b["c"] + b["width"] and b["r"] <= fy <= b["r"] + b["height"]
            for b in boxes
        )
    assert found >= 0.8 * tried


def test_contact_sheet_is_written(tmp_path: Path) -> None:
    out = synthetic.contact_sheet(
        tmp_path / "sheet.png", indices=(0, 37, 90), width=320, height=180
    )
    sheet = cv2.imread(str(out))
    assert sheet is not None and sheet.shape == (2 * 360, 2 * 640, 3)
