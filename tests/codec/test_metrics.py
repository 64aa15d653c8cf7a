"""Codec evaluation metrics: SSIM against scikit-image, MS-SSIM's behaviour, face crops,
keypoint distance, Bjøntegaard deltas and the rate-distortion plot."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.metrics import structural_similarity

from appliance.codec.metrics import (
    MS_SSIM_MIN_SIDE,
    akd,
    akd_series,
    bd_quality,
    bd_rate,
    face_box,
    face_crop,
    face_ms_ssim,
    face_psnr,
    luma,
    ms_ssim,
    plot_rd,
    psnr,
    rate_at_quality,
    ssim,
    ssim_components,
)

# The astronaut's face in skimage's 512 x 512 photo (x0, y0, x1, y1), found by eye.
FACE = (160, 40, 260, 170)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def face(frame: np.ndarray) -> np.ndarray:
    """The face and what is around it: 256 x 256 luma at the photo's own resolution."""
    return face_crop(frame, (82, 0, 338, 256))


@pytest.fixture(scope="module")
def landmarks() -> np.ndarray:
    """A stand-in for the tracker's 468 points: a grid spread over the face, with depth."""
    rng = np.random.default_rng(1)
    x0, y0, x1, y1 = FACE
    xy = rng.uniform((x0, y0), (x1, y1), size=(468, 2))
    return np.column_stack([xy, rng.normal(0.0, 10.0, 468)])


def noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0.0, sigma, image.shape), 0.0, 255.0)


# ---------------------------------------------------------------------------------- SSIM


def test_ms_ssim_of_identical_images_is_one(face: np.ndarray) -> None:
    assert ms_ssim(face, face) == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_falls_with_noise(face: np.ndarray) -> None:
    scores = [ms_ssim(face, noisy(face, sigma)) for sigma in (1, 3, 8, 20, 50)]
    assert all(a > b for a, b in itertools.pairwise(scores)), scores
    assert scores[0] > 0.99 and scores[-1] < 0.7


def test_ms_ssim_falls_with_blur(face: np.ndarray) -> None:
    blurred = [cv2.GaussianBlur(face, (0, 0), sigma) for sigma in (0.5, 1.0, 2.0, 4.0, 8.0)]
    scores = [ms_ssim(face, image) for image in blurred]
    assert all(a > b for a, b in itertools.pairwise(scores)), scores


def test_ms_ssim_is_symmetric(face: np.ndarray) -> None:
    other = cv2.GaussianBlur(noisy(face, 10.0), (0, 0), 1.5)
    assert ms_ssim(face, other) == pytest.approx(ms_ssim(other, face), abs=1e-12)
    assert ms_ssim(face, other) < 1.0


def test_ms_ssim_clamps_anticorrelated_scales_to_zero() -> None:
    # An inverted image has negative structure at every scale: clamped, the product is 0
    # (a fractional power of the negative mean would be NaN).
    rng = np.random.default_rng(2)
    image = rng.uniform(0.0, 255.0, (MS_SSIM_MIN_SIDE, MS_SSIM_MIN_SIDE))
    assert ms_ssim(image, 255.0 - image) == 0.0


@pytest.mark.parametrize("sigma", [2.0, 10.0, 40.0])
def test_ssim_matches_scikit_image(face: np.ndarray, sigma: float) -> None:
    # skimage filters the whole image (reflect padding), then averages only the interior
    # (win_size - 1) // 2 = 5 px from each edge: exactly our 'valid' window positions, and
    # its truncated Gaussian (truncate 3.5 -> radius 5) is our 11-tap window.
    other = noisy(face, sigma)
    expected = structural_similarity(
        face,
        other,
        data_range=255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert ssim(face, other) == pytest.approx(expected, abs=1e-9)


def test_ssim_components_have_valid_size(face: np.ndarray) -> None:
    luminance, contrast_structure = ssim_components(face, noisy(face, 5.0))
    assert luminance.shape == contrast_structure.shape == (246, 246)


def test_ms_ssim_rejects_small_or_mismatched_images(face: np.ndarray) -> None:
    with pytest.raises(ValueError, match="shape"):
        ms_ssim(face, face[:200, :200])
    small = face[: MS_SSIM_MIN_SIDE - 1, :]
    with pytest.raises(ValueError, match="too small"):
        ms_ssim(small, small)
    smallest = face[:MS_SSIM_MIN_SIDE, :MS_SSIM_MIN_SIDE]
    assert ms_ssim(smallest, smallest) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="2-D"):
        ms_ssim(np.zeros((200, 200, 3)), np.zeros((200, 200, 3)))


def test_luma_is_bt601_on_bgr_and_passes_grey_through() -> None:
    pixel = np.array([[[10, 100, 200]]], dtype=np.uint8)  # B, G, R
    assert luma(pixel)[0, 0] == pytest.approx(0.114 * 10 + 0.587 * 100 + 0.299 * 200)
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert luma(grey).dtype == np.float64
    np.testing.assert_array_equal(luma(grey), grey)


# ------------------------------------------------------------------------------ face box


def test_face_box_is_square_inside_and_contains_landmarks(landmarks: np.ndarray) -> None:
    x0, y0, x1, y1 = face_box(landmarks, 512, 512)
    assert x1 - x0 == y1 - y0
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512
    assert np.all(landmarks[:, 0] >= x0) and np.all(landmarks[:, 0] < x1)
    assert np.all(landmarks[:, 1] >= y0) and np.all(landmarks[:, 1] < y1)
    span = max(np.ptp(landmarks[:, 0]), np.ptp(landmarks[:, 1]))
    assert x1 - x0 == pytest.approx(span * 1.4, abs=1.0)


def test_face_box_near_the_edge_is_shifted_not_shrunk(landmarks: np.ndarray) -> None:
    at_corner = landmarks.copy()
    at_corner[:, :2] -= at_corner[:, :2].min(axis=0)  # face touching the top-left corner
    x0, y0, x1, y1 = face_box(at_corner, 640, 480)
    centred = face_box(landmarks, 640, 480)
    assert (x0, y0) == (0, 0)
    assert x1 - x0 == y1 - y0 == centred[2] - centred[0]
    # Bigger than the frame: clipped to it.
    assert face_box(landmarks * 5.0, 640, 480) == (0, 0, 640, 480)


def test_face_box_rejects_bad_landmarks(landmarks: np.ndarray) -> None:
    broken = landmarks.copy()
    broken[7, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        face_box(broken, 512, 512)
    with pytest.raises(ValueError, match="empty"):
        face_box(np.zeros((0, 3)), 512, 512)
    with pytest.raises(ValueError, match="shape"):
        face_box(np.zeros(10), 512, 512)


def test_face_ms_ssim_of_a_frame_with_itself_and_a_shifted_copy(
    frame: np.ndarray, landmarks: np.ndarray
) -> None:
    assert face_ms_ssim(frame, frame, landmarks) == pytest.approx(1.0, abs=1e-12)
    shifted = np.roll(frame, (3, 2), axis=(0, 1))
    assert face_ms_ssim(frame, shifted, landmarks) < 0.95
    assert face_psnr(frame, frame, landmarks) == math.inf
    assert face_psnr(frame, shifted, landmarks) < 30.0
    with pytest.raises(ValueError, match="same size"):
        face_ms_ssim(frame, frame[:-2], landmarks)


def test_face_crop_is_native_and_enlarges_only_a_box_too_small_for_ms_ssim(
    frame: np.ndarray,
) -> None:
    np.testing.assert_array_equal(face_crop(frame, (82, 0, 338, 256)), luma(frame[:256, 82:338]))
    assert face_crop(frame, (82, 0, 338, 256), MS_SSIM_MIN_SIDE).shape == (256, 256)  # kept
    small = face_crop(frame, (150, 30, 280, 160), MS_SSIM_MIN_SIDE)
    expected = cv2.resize(luma(frame[30:160, 150:280]), (176, 176), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(small, expected)
    # a box clipped by the frame edge is not square: enlarged with its aspect kept
    assert face_crop(frame, (0, 0, 100, 50), MS_SSIM_MIN_SIDE).shape == (176, 352)


def test_face_ms_ssim_is_measured_at_the_faces_own_size(
    frame: np.ndarray, landmarks: np.ndarray
) -> None:
    # A large face seen soft: on a 256 px grid the shrinking averages the blur away, at the
    # face's own size it counts (the evaluation must not flatter a soft picture).
    big = cv2.resize(frame, None, fx=3.0, fy=3.0, interpolation=cv2.INTER_CUBIC)
    points = landmarks * 3.0
    soft = cv2.GaussianBlur(big, (0, 0), 3.0)
    x0, y0, x1, y1 = face_box(points, big.shape[1], big.shape[0])
    assert x1 - x0 > 500
    native = face_ms_ssim(big, soft, points)
    faces = [luma(image[y0:y1, x0:x1]) for image in (big, soft)]
    assert native == pytest.approx(ms_ssim(*faces), abs=1e-12)
    grid = [cv2.resize(face, (256, 256), interpolation=cv2.INTER_AREA) for face in faces]
    assert native < ms_ssim(*grid) - 0.02
    assert face_psnr(big, soft, points) == pytest.approx(psnr(*faces))
    # a face under MS-SSIM's 176 px is enlarged, not refused
    half = cv2.resize(frame, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    assert face_ms_ssim(half, half, landmarks * 0.5) == pytest.approx(1.0, abs=1e-12)
    assert face_ms_ssim(half, cv2.GaussianBlur(half, (0, 0), 1.0), landmarks * 0.5) < 0.99


def test_psnr_of_a_known_error() -> None:
    a = np.zeros((8, 8))
    # Every pixel off by 255: MSE = peak^2, 0 dB; off by 25.5: 20 dB.
    assert psnr(a, a + 255.0) == pytest.approx(0.0)
    assert psnr(a, a + 25.5) == pytest.approx(20.0)
    assert psnr(a, a) == math.inf


# ------------------------------------------------------------------------ keypoint error


def test_akd_of_a_shifted_set_is_the_shift(landmarks: np.ndarray) -> None:
    moved = landmarks + np.array([3.0, 4.0, 50.0])  # depth is ignored
    assert akd(landmarks, moved) == pytest.approx(5.0)
    assert akd(landmarks[:, :2], moved) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="counts differ"):
        akd(landmarks, moved[:-1])


def test_akd_series_averages_found_faces_and_counts_missed_ones(
    landmarks: np.ndarray,
) -> None:
    moved = landmarks + np.array([3.0, 4.0, 0.0])
    lost = np.full_like(landmarks, np.nan)
    sources = [landmarks, landmarks, landmarks, None, landmarks]
    decodeds = [landmarks, moved, None, moved, lost]
    mean, missed = akd_series(sources, decodeds)
    assert mean == pytest.approx(2.5)  # frames 0 and 1; frame 3 has no source face
    assert missed == 2
    assert math.isnan(akd_series([landmarks], [None])[0])
    with pytest.raises(ValueError):
        akd_series([landmarks], [])


# -------------------------------------------------------------------------- Bjøntegaard

QUALITY = [0.90, 0.93, 0.95, 0.97]
RATES = [100.0, 180.0, 300.0, 600.0]


def test_bd_rate_of_half_the_bits_is_minus_fifty_percent() -> None:
    half = [rate / 2.0 for rate in RATES]
    assert bd_rate(RATES, QUALITY, half, QUALITY) == pytest.approx(-50.0, abs=0.5)
    assert bd_rate(half, QUALITY, RATES, QUALITY) == pytest.approx(100.0, abs=1.0)


def test_bd_rate_of_identical_curves_is_zero() -> None:
    assert bd_rate(RATES, QUALITY, RATES, QUALITY) == pytest.approx(0.0, abs=1e-9)
    assert bd_quality(RATES, QUALITY, RATES, QUALITY) == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_without_overlap_is_nan() -> None:
    better = [q + 0.05 for q in QUALITY[2:]]
    assert math.isnan(bd_rate(RATES, QUALITY, RATES[2:], better))
    assert math.isnan(bd_quality(RATES, QUALITY, [1e4, 2e4], QUALITY[:2]))


def test_bd_rate_with_few_points_and_bd_quality_sign() -> None:
    # Two points each: straight-line fits, still exact for a constant rate ratio.
    assert bd_rate([100, 400], [0.9, 0.96], [50, 200], [0.9, 0.96]) == pytest.approx(-50.0)
    better = [q + 0.01 for q in QUALITY]
    assert bd_quality(RATES, QUALITY, RATES, better) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="at least 2"):
        bd_rate([100], [0.9], RATES, QUALITY)


def test_bd_rate_ignores_points_that_spend_more_for_no_better_picture() -> None:
    half = [r / 2 for r in RATES]
    # a costlier point no better than a cheaper one (the closed loop sending residuals a
    # clip did not need) is off the curve: with it left in, the cubic bends
    wasteful_rates = [*half, half[1] * 1.5]
    wasteful_quality = [*QUALITY, QUALITY[1] - 0.001]
    assert bd_rate(RATES, QUALITY, wasteful_rates, wasteful_quality) == pytest.approx(
        -50.0, abs=0.5
    )
    assert math.isnan(bd_rate(RATES, QUALITY, [10, 20], [0.9, 0.8]))  # one efficient point


def test_rate_at_quality_interpolates_log_rate() -> None:
    # quality = log10(rate) / 10: 100 kbit/s -> 0.2, 1000 -> 0.3, 10000 -> 0.4.
    rates = [1000.0, 100.0, 10000.0]  # unsorted on purpose
    quality = [0.3, 0.2, 0.4]
    assert rate_at_quality(rates, quality, 0.25) == pytest.approx(10**2.5)
    assert rate_at_quality(rates, quality, 0.37) == pytest.approx(10**3.7)
    assert rate_at_quality(rates, quality, 0.2) == pytest.approx(100.0)
    assert rate_at_quality(rates, quality, 0.41) is None  # never reached
    assert rate_at_quality(rates, quality, 0.1) is None  # below the curve's range


def test_rate_at_quality_uses_the_monotone_envelope() -> None:
    # The 300 kbit/s point is worse than the 200 one; the envelope keeps 0.95 there.
    rates = [100.0, 200.0, 300.0, 400.0]
    quality = [0.90, 0.95, 0.93, 0.97]
    assert rate_at_quality(rates, quality, 0.95) == pytest.approx(200.0)
    expected = 10 ** (math.log10(300.0) + 0.5 * (math.log10(400.0) - math.log10(300.0)))
    assert rate_at_quality(rates, quality, 0.96) == pytest.approx(expected)


# ---------------------------------------------------------------------------------- plot


def test_plot_rd_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    curves = {
        "keypoints": ([2.0, 4.0, 8.0], [0.80, 0.85, 0.88]),
        "x264": (RATES, QUALITY),
    }
    path = plot_rd(curves, tmp_path / "rd.png", "face quality against rate")
    image = cv2.imread(str(path))
    assert image is not None and image.size > 0
    assert image.shape[:2] == (600, 840)  # 7 x 5 in at 120 dpi


def test_plot_rd_grid_writes_one_panel_per_clip(tmp_path):
    import cv2

    from appliance.codec.metrics import plot_rd_grid

    curves = {"x264": ([10.0, 40.0], [0.7, 0.9]), "keypoints": ([12.0, 30.0], [0.8, 0.85])}
    path = plot_rd_grid({"a": curves, "b": curves, "c": curves, "d": curves},
                        tmp_path / "grid.png", "face MS-SSIM")  # fmt: skip
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] > image.shape[0]  # 3 columns, 2 rows
