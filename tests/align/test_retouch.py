"""The align stage's retouching: frontalization then eye contact, live switches, meta."""

from __future__ import annotations

import numpy as np

from appliance.align.settings import AlignSettings
from appliance.align.stage import AlignStage
from appliance.capture.synthetic import SyntheticSource
from appliance.config import parse_config
from appliance.frame import Frame
from appliance.vision.stage import FaceTrackingStage


def tracked(tracking: FaceTrackingStage, count: int = 12) -> list[Frame]:
    source = SyntheticSource(640, 360, gaze_deg=10.0)
    tracking.tracker.reset()
    frames = [tracking.process(Frame(source.render(i)[0], i, i / 30.0)) for i in range(count)]
    tracking.tracker.reset()
    return frames


def copy(frame: Frame) -> Frame:
    return Frame(frame.image.copy(), frame.seq, frame.t_capture, meta=dict(frame.meta))


def test_eye_contact_alone_touches_only_the_eyes(tracking: FaceTrackingStage) -> None:
    stage = AlignStage(AlignSettings(framing=False, level=False, eye_contact=True))
    for frame in tracked(tracking):
        before = frame.image.copy()
        out = stage.process(copy(frame))
    strength = out.meta["retouch"]["eye_contact"]
    assert list(strength) == [out.meta["faces"][0].id] and strength[0] > 0.9
    assert "frontalize" not in out.meta["retouch"]
    changed = np.argwhere((out.image != before).any(axis=2))
    assert len(changed)
    face = out.meta["faces"][0]
    eyes = face.landmarks[[33, 133, 362, 263], :2]
    (x0, y0), (x1, y1) = eyes.min(axis=0) - 8, eyes.max(axis=0) + 8
    (cy0, cx0), (cy1, cx1) = changed.min(axis=0), changed.max(axis=0)
    assert x0 <= cx0 and cx1 <= x1 and y0 <= cy0 and cy1 <= y1


def test_switching_on_and_off_between_frames(tracking: FaceTrackingStage) -> None:
    stage = AlignStage.from_config(parse_config({}))
    frames = tracked(tracking, 6)
    out = stage.process(copy(frames[0]))
    assert "retouch" not in out.meta  # both off by default
    stage.configure(parse_config({"align": {"eye_contact": True, "frontalize": True}}))
    out = stage.process(copy(frames[1]))
    assert set(out.meta["retouch"]) == {"frontalize", "eye_contact"}
    stage.configure(parse_config({"align": {"enabled": False, "eye_contact": True}}))
    frame = copy(frames[2])
    image = frame.image
    out = stage.process(frame)
    assert out.image is image and "retouch" not in out.meta
