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
