"""The short-range detector's anchors and box decoding."""

import numpy as np
import pytest

from appliance.vision import anchors


def test_anchors_match_the_short_range_detector() -> None:
    a = anchors.ANCHORS
    assert a.shape == (896, 2)
    assert a[0].tolist() == pytest.approx([0.5 / 16, 0.5 / 16])
    assert a[511].tolist() == pytest.approx([15.5 / 16, 15.5 / 16])
    assert a[512].tolist() == a[517].tolist() == pytest.approx([0.5 / 8, 0.5 / 8])
    assert a[-1].tolist() == pytest.approx([7.5 / 8, 7.5 / 8])


def test_decoder_puts_a_box_around_its_anchor() -> None:
    raw = np.zeros((1, 896, 16), np.float32)
    raw[0, 700, 2:4] = 32.0  # 32 px wide and high in the 128-px input
    logits = np.full((1, 896, 1), -10.0, np.float32)
    logits[0, 700, 0] = 5.0
    row, score = anchors.top_detection(raw, logits)
    cx, cy = anchors.ANCHORS[700]
    assert row[:4].tolist() == pytest.approx([cx - 0.125, cy - 0.125, cx + 0.125, cy + 0.125])
    assert score == pytest.approx(1 / (1 + np.exp(-5.0)))
    assert anchors.box_iou(row[:4], row[:4]) == pytest.approx(1.0)
