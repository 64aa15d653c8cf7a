"""The renderer: the reference reproduces itself, and the bank brings back real mouths."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.codec.bitstream import Region
from appliance.codec.render import BANK_SIZE, FaceRenderer, region_box


def mouth_opening(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[13, :2] - landmarks[14, :2]))  # inner lip centres


def test_rendering_the_references_own_landmarks_gives_the_reference(talking_head):
    width, height = talking_head.size
    renderer = FaceRenderer(width, height)
    renderer.add_reference(0, talking_head.frames[0], talking_head.landmarks[0])
    out = renderer.render(0, talking_head.landmarks[0])
    assert out.shape == talking_head.frames[0].shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - talking_head.frames[0].astype(int))
    assert diff.max() <= 1


def test_a_banked_open_mouth_replaces_the_stretched_closed_one(talking_head):
    width, height = talking_head.size
    openings = [mouth_opening(lm) for lm in talking_head.landmarks]
    closed, wide = int(np.argmin(openings)), int(np.argmax(openings))
    assert openings[wide] > openings[closed] + 5  # the clip really opens the mouth
    target = talking_head.landmarks[wide]
    box = region_box(Region.MOUTH, target, width, height)
    x0, y0, x1, y1 = box
    real = talking_head.frames[wide][y0:y1, x0:x1].astype(float)

    def mouth_error(renderer: FaceRenderer) -> float:
        out = renderer.render(0, target)
        return float(np.abs(out[y0:y1, x0:x1].astype(float) - real).mean())

    plain = FaceRenderer(width, height)
    plain.add_reference(0, talking_head.frames[closed], talking_head.landmarks[closed])
    banked = FaceRenderer(width, height)
    banked.add_reference(0, talking_head.frames[closed], talking_head.landmarks[closed])
    # a mouth seen before (here: a frame next to the wide one) comes from the bank
    near = wide - 1 if wide > 0 else wide + 1
    near_box = region_box(Region.MOUTH, talking_head.landmarks[near], width, height)
    banked.add_entry(
        Region.MOUTH, talking_head.frames[near], near_box, talking_head.landmarks[near]
    )
    assert mouth_error(banked) < 0.7 * mouth_error(plain)
    assert banked.stats.bank_fills["mouth"] == 1


def test_a_new_reference_empties_the_bank_and_the_oldest_entries_go_first(talking_head):
    width, height = talking_head.size
    renderer = FaceRenderer(width, height)
    renderer.add_reference(0, talking_head.frames[0], talking_head.landmarks[0])
    added = list(renderer.bank[Region.MOUTH])  # the reference's own mouth
    for i in range(1, BANK_SIZE + 4):
        lm = talking_head.landmarks[i]
        renderer.add_entry(Region.MOUTH, talking_head.frames[i],
                           region_box(Region.MOUTH, lm, width, height), lm)  # fmt: skip
        added.append(next(reversed(renderer.bank[Region.MOUTH])))
    assert list(renderer.bank[Region.MOUTH]) == added[-BANK_SIZE:]
    renderer.add_reference(1, talking_head.frames[5], talking_head.landmarks[5])
    assert len(renderer.bank[Region.MOUTH]) == 1  # only the new reference's own


def test_bad_pictures_are_refused(talking_head):
    width, height = talking_head.size
    renderer = FaceRenderer(width, height)
    with pytest.raises(ValueError, match="reference is"):
        renderer.add_reference(0, talking_head.frames[0][:100], talking_head.landmarks[0])
    renderer.add_reference(0, talking_head.frames[0], talking_head.landmarks[0])
    box = region_box(Region.MOUTH, talking_head.landmarks[0], width, height)
    with pytest.raises(ValueError, match="residual picture"):
        renderer.paste(None, Region.MOUTH, np.zeros((3, 3, 3), np.uint8), box,
                       talking_head.landmarks[0])  # fmt: skip


def test_an_opening_mouth_is_drawn_dark_inside_not_with_stretched_lips(talking_head):
    from appliance.codec.render import mouth_opening, open_mouth

    width, height = talking_head.size
    openings = [mouth_opening(lm) for lm in talking_head.landmarks]
    closed, wide = int(np.argmin(openings)), int(np.argmax(openings))
    target, source = talking_head.landmarks[wide], talking_head.landmarks[closed]
    box = region_box(Region.MOUTH, target, width, height)
    frame = np.full((height, width, 3), 200, np.uint8)
    open_mouth(frame, target, source, box)
    inside = np.rint(target[[13, 14], :2].mean(axis=0)).astype(int)  # between the lips
    assert frame[inside[1], inside[0]].max() < 100
    assert (frame[0, 0] == 200).all()
    untouched = np.full_like(frame, 200)
    open_mouth(untouched, source, source, box)  # no wider than its source: nothing drawn
    assert (untouched == 200).all()


def test_the_iris_moves_to_where_the_frame_looks(talking_head):
    from appliance.codec.keypoints import KeypointCodecModel, KeypointEncoder
    from appliance.codec.render import move_iris

    model = KeypointCodecModel.load()
    width, height = talking_head.size
    encoder = KeypointEncoder(model, width, height)
    encoder.set_reference(talking_head.landmarks[0])
    points = []
    for index in (0, 0):
        encoder.encode(talking_head.landmarks[index], iris=talking_head.iris[index])
        assert encoder.previous is not None and encoder.reference is not None
        points.append(model.render_points(encoder.previous, width, height, encoder.reference))
    source, target = points[0], points[1].copy()
    target[468:473, 0] += 4.0  # the right eye looks 4 px further along
    frame = talking_head.frames[0].copy()
    box = region_box(Region.RIGHT_EYE, target, width, height)

    corners = target[[33, 133], :2]
    row = round(float(target[468, 1]))
    x0, x1 = round(float(corners[:, 0].min())) + 2, round(float(corners[:, 0].max())) - 2

    def dark_centre(image: np.ndarray) -> float:
        """Where the iris is along the eye: the centroid of dark pixels on its middle rows."""
        grey = image[row - 2 : row + 3, x0:x1].mean(axis=(0, 2))
        weight = np.clip(grey.max() - grey, 0, None)
        return float((weight * np.arange(x1 - x0)).sum() / weight.sum())

    before = dark_centre(frame)
    move_iris(frame, 0, target, source, box)
    assert 1.0 < dark_centre(frame) - before < 6.0  # towards the new gaze, not past it
