"""The model's person probability and the matte: accuracy, islands, stability, no ghosts."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from appliance.background.frames import reduce
from appliance.background.matte import Matte, clean_islands, guided_coefficients, upsample
from appliance.background.segment import PersonSegmenter
from appliance.capture.synthetic import SyntheticSource
from tests.background.helpers import iou, person_truth

FRAMES = (0, 300, 700, 1100)  # different seats, tilts and sizes of the person


def matte_of(segmenter: PersonSegmenter, image: np.ndarray, matte: Matte, s: float) -> np.ndarray:
    work = reduce(image, 2)
    return matte.update(segmenter.segment(work), work, s)


def test_segmenter_follows_the_manifest(segmenter: PersonSegmenter) -> None:
    assert (segmenter.width, segmenter.height) == (256, 256)
    assert segmenter.output == "activation_10" and segmenter.rgb
    assert segmenter.threshold == pytest.approx(0.5)
    prob = segmenter.segment(np.full((90, 160, 3), 128, np.uint8))
    assert prob.shape == (256, 256) and prob.dtype == np.float32
    assert prob.min() >= 0.0 and prob.max() <= 1.0


@pytest.mark.parametrize("index", FRAMES)
def test_matte_matches_the_person(
    segmenter: PersonSegmenter, synthetic: SyntheticSource, index: int
) -> None:
    image, _ = synthetic.render(index)
    truth = person_truth(synthetic, image)
    full = upsample(matte_of(segmenter, image, Matte(), 0.0), 1280, 720)
    assert full.shape == (720, 1280)
    assert iou(full > 127, truth) > 0.96
    # Mostly decided: a soft edge, not a fog.
    assert ((full > 10) & (full < 245)).mean() < 0.03


def test_guided_filter_puts_a_step_at_the_pictures_edge() -> None:
    guide = np.zeros((90, 160), np.float32)
    guide[:, 80:] = 1.0  # the true edge at x = 80
    sharp = np.zeros_like(guide)
    sharp[:, 86:] = 1.0  # the model's edge, 6 px off, and blurry
    mask = cv2.GaussianBlur(sharp, (0, 0), 4.0)
    a, b = guided_coefficients(guide, mask, 4, 1e-3)
    out = a * guide + b
    # The blurry mask rises slowly across the true edge; the filtered one steps there.
    assert out[45, 80] - out[45, 79] > 0.15 > 0.05 > mask[45, 80] - mask[45, 79]
    assert out[45, 70] < 0.02 and out[45, 95] > 0.9


def test_islands_and_pinholes_are_cleaned() -> None:
    prob = np.zeros((256, 256), np.float32)
    prob[100:256, 60:200] = 1.0  # the person
    prob[20:24, 20:24] = 0.9  # a speck in the room
    prob[21:23, 24:26] = 0.3  # ... and its fringe
    prob[150:153, 120:123] = 0.1  # a pinhole in the person
    prob[0:80, 250:256] = 0.8  # a large part at the border stays
    clean_islands(prob)
    assert prob[20:26, 18:28].max() == 0.0
    assert prob[150:153, 120:123].min() == 1.0
    assert prob[0:80, 250:256].min() == pytest.approx(0.8)
    assert prob[100:256, 60:200].min() == 1.0


def _noisy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(image + rng.normal(0.0, 8.0, image.shape), 0, 255).astype(np.uint8)


def test_matte_is_stable_under_sensor_noise_and_converges(segmenter: PersonSegmenter) -> None:
    source = SyntheticSource(640, 360)
    image, _ = source.render(0)
    flicker = {}
    for stability in (0.0, 0.9):
        rng = np.random.default_rng(3)
        matte = Matte()
        mattes = [matte_of(segmenter, _noisy(image, rng), matte, stability) for _ in range(12)]
        flicker[stability] = np.mean(
            [np.abs(a.astype(np.float32) - b).mean() for a, b in itertools.pairwise(mattes[4:])]
        )
        # The noise stops: the smoothed matte settles on the clean frame's own matte.
        for _ in range(40):
            settled = matte_of(segmenter, image, matte, stability)
        fresh = matte_of(segmenter, image, Matte(), 0.0)
        diff = np.abs(settled.astype(int) - fresh)
        assert diff.max() <= 3 and diff.mean() < 0.05
        again = matte_of(segmenter, image, matte, stability)  # a repeated frame: still
        assert np.abs(again.astype(int) - settled).max() <= 1
    assert flicker[0.0] > 0.1  # the test sees flicker at all
    assert flicker[0.9] < flicker[0.0] / 3


def test_a_moving_person_leaves_no_ghost(
    segmenter: PersonSegmenter, synthetic: SyntheticSource
) -> None:
    """Settle on the person at one place, then move them 300 px: two frames later the
    old place is background again, at the highest stability."""
    image, _ = synthetic.render(0)
    moved = np.roll(image, 300, axis=1)
    matte = Matte()
    for _ in range(10):
        matte_of(segmenter, image, matte, 0.99)
    for _ in range(2):
        after = upsample(matte_of(segmenter, moved, matte, 0.99), 1280, 720)
    was, now = person_truth(synthetic, image), np.roll(person_truth(synthetic, image), 300, axis=1)
    left_behind = was & ~now
    assert left_behind.sum() > 50_000
    assert (after[left_behind] > 127).mean() < 0.005
    assert iou(after > 127, now) > 0.9
