"""The enhance stage in the frame path, and the auto-framing zoom made by the network."""

from __future__ import annotations

import cv2
import numpy as np

from appliance.align.settings import AlignSettings
from appliance.align.stage import AlignStage
from appliance.config import parse_config
from appliance.enhance.stage import EnhanceSettings, EnhanceStage
from appliance.enhance.upscale import Upscaler
from appliance.frame import Frame
from tests.align.helpers import fake_face


def picture(width: int = 320, height: int = 180) -> np.ndarray:
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (height // 8, width // 8, 3), np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def test_off_frame_and_face_modes(upscaler: Upscaler) -> None:
    image = picture()
    face = fake_face(100, 90, 60, face_id=3)
    stage = EnhanceStage(upscaler)
    frame = stage.process(Frame(image.copy(), 0, 0.0, meta={"faces": [face]}))
    assert frame.image.shape == image.shape  # off by default

    stage.configure(parse_config({"enhance": {"mode": "frame"}}))
    frame = stage.process(Frame(image.copy(), 1, 0.0, meta={"faces": [face]}))
    assert frame.image.shape == (360, 640, 3)
    moved = frame.meta["faces"][0]
    assert np.allclose(moved.landmarks[:, :2], 2 * face.landmarks[:, :2] + 0.5, atol=1e-3)

    stage.configure(parse_config({"enhance": {"mode": "face"}}))
    frame = stage.process(Frame(image.copy(), 2, 0.0, meta={"faces": [face]}))
    bicubic = cv2.resize(image, (640, 360), interpolation=cv2.INTER_CUBIC)
    changed = np.argwhere((frame.image != bicubic).any(axis=2))
    assert len(changed)
    (y0, x0), (y1, x1) = changed.min(axis=0), changed.max(axis=0)
    bx0, by0, bx1, by1 = (2 * v for v in face.box)
    pad = 2 * 0.25 * max(face.box[2] - face.box[0], face.box[3] - face.box[1]) + 2
    assert bx0 - pad <= x0 and x1 <= bx1 + pad and by0 - pad <= y0 and y1 <= by1 + pad


def test_faces_at_the_border_or_broken_are_skipped(upscaler: Upscaler) -> None:
    stage = EnhanceStage(upscaler, EnhanceSettings(mode="face"))
    broken = fake_face(100, 90, 60)
    faces = [
        fake_face(-500, 90, 60, face_id=1),  # off the picture
        type(broken)(id=2, box=(np.nan, 0, 1, 1), score=1.0, landmarks=broken.landmarks),
    ]
    frame = stage.process(Frame(picture(), 0, 0.0, meta={"faces": faces}))
    bicubic = cv2.resize(picture(), (640, 360), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(frame.image, bicubic)


def test_framing_zoom_is_rendered_at_half_size_and_upscaled(upscaler: Upscaler) -> None:
    config = parse_config({"enhance": {"zoom": True}, "align": {"max_zoom": 4.0}})
    stage = AlignStage.from_config(config, upscaler.upscale)
    stage.configure(config)
    assert stage.zoom_detail
    image = picture(640, 360)
    face = fake_face(320, 180, 40)  # small face: the framing zooms in more than 2x
    frame = None
    for i in range(90):
        frame = stage.process(Frame(image.copy(), i, i / 30.0, meta={"faces": [face]}))
    assert frame is not None and frame.image.shape == (360, 640, 3)
    assert frame.meta["framing"]["zoom"] >= 2.0
    # Faces and the matrix still agree with the picture: the mapped nose tip is where the
    # source's nose tip maps through align_matrix.
    m = frame.meta["align_matrix"]
    nose = face.landmarks[1, :2]
    assert np.allclose(
        frame.meta["faces"][0].landmarks[1, :2], m[:, :2] @ nose + m[:, 2], atol=1e-3
    )
    # Without the network (or with enhance.zoom off) the same crop comes from one warp.
    plain = AlignStage(AlignSettings(max_zoom=4.0))
    for i in range(90):
        other = plain.process(Frame(image.copy(), i, i / 30.0, meta={"faces": [face]}))
    assert np.allclose(other.meta["align_matrix"], m, atol=1e-6)
    assert not np.array_equal(other.image, frame.image)
