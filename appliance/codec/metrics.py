"""Keypoint face codec, evaluation: face quality, landmark error and rate-distortion figures.

The keypoint codec does not send pixels: it sends landmarks and re-renders the face, so
whole-frame PSNR against x264/VP8/AV1 would mostly measure the background, which the
codecs treat very differently. The figures here therefore look at the **face** only:

- **face MS-SSIM** (``face_ms_ssim``), the quality figure of the rate-distortion curves:
  both frames are cropped at the same square around the *source* frame's landmarks (so a
  decoder that moves the face is penalised, not re-centred) and compared at the face's
  **native size**, luma only. Not resampled to a common grid: shrinking a large face
  averages its blur away, so a grid flatters exactly the soft pictures of a call at a low
  rate (lp_d14's 418 px face, SVT-AV1 at its floor: 0.923 on a 256 px grid, 0.892 at its
  own size; this codec's 0.70 floor: 0.867 and 0.851).
  A box under MS-SSIM's minimum side (``MS_SSIM_MIN_SIDE``, 176 px) is enlarged to it,
  both pictures alike (INTER_CUBIC). MS-SSIM (Wang, Simoncelli, Bovik 2003) rather than
  PSNR because a generative decoder is not pixel-aligned, and at equal PSNR MS-SSIM rates
  a small shift above blur or noise (the astronaut's head, 256 px, 24.6 dB: 1 px shift
  0.966, blur 0.940, noise 0.891). It still falls fast with shifts of a few px (4 px:
  0.77), so a decoder that misplaces the face is not let off. The sender's
  closed loop holds its floor on this same figure. ``face_psnr`` (same box, native
  pixels) is kept for the pixel codecs, where it is the customary number.
- **AKD**, the average keypoint distance (``akd``, ``akd_series``): the landmark tracker
  run on the decoded frame against the source's landmarks, i.e. whether the rendered face
  has the expression and pose that were sent (the talking-head literature's measure).
- **Bjøntegaard deltas** (``bd_rate``, ``bd_quality``; VCEG-M33): one number for "how
  many bits does codec B save over codec A at equal quality", and ``rate_at_quality``
  for "how many bits does each codec need to reach this quality".
- ``plot_rd`` draws the curves (matplotlib, only needed for the plots).

The SSIM arithmetic follows the paper and the common implementations exactly (11-tap
Gaussian window, sigma 1.5, 'valid' filtering, K1 = 0.01, K2 = 0.03, five scales with
the paper's weights), so the figures are comparable with published ones; the single-scale
``ssim`` equals ``skimage.metrics.structural_similarity`` with Gaussian weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

PEAK = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# The coarsest of the five scales is 1/16 of the input and must still hold one window.
MS_SSIM_MIN_SIDE = SSIM_WINDOW * 2 ** (len(MS_SSIM_WEIGHTS) - 1)

_C1 = (SSIM_K1 * PEAK) ** 2
_C2 = (SSIM_K2 * PEAK) ** 2
_BT601 = (0.114, 0.587, 0.299)  # B, G, R weights: OpenCV frames are BGR


# ---------------------------------------------------------------------------- face crop


def _landmark_xy(landmarks: npt.ArrayLike, name: str = "landmarks") -> np.ndarray:
    """The (N, 2) xy of an (N, 2+) landmark array, or a clear ValueError."""
    array = np.asarray(landmarks, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 2:
        raise ValueError(f"{name} must be an (N, 2) or (N, 3) array, got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty: no points to measure")
    xy = array[:, :2]
    if not np.all(np.isfinite(xy)):
        bad = int(np.count_nonzero(~np.isfinite(xy).all(axis=1)))
        raise ValueError(f"{name} hold {bad} non-finite points (NaN or inf)")
    return xy


def _place(centre: float, side: int, limit: int) -> tuple[int, int]:
    """[start, end) of ``side`` px centred on ``centre``, moved inside [0, limit) if it
    fits there, else clipped to the whole range."""
    if side >= limit:
        return 0, limit
    start = math.floor(centre - side / 2.0)
    start = min(max(start, 0), limit - side)
    return start, start + side


def face_box(
    landmarks: npt.ArrayLike, width: int, height: int, margin: float = 0.2
) -> tuple[int, int, int, int]:
    """Square (x0, y0, x1, y1), ends exclusive, around the landmarks' xy bounding box.

    The side is ``max(box w, box h) * (1 + 2 * margin)``, centred on the box centre. A box
    that would cross the frame edge is shifted inside (keeping its size, so the face is
    not scaled differently near the edge); only a box larger than the frame is clipped,
    and then it is no longer square. Landmarks inside the frame always lie inside the box.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width} x {height}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    xy = _landmark_xy(landmarks)
    low, high = xy.min(axis=0), xy.max(axis=0)
    span = float(np.max(high - low))
    # At least two px more than the span, so flooring the start cannot cut off the last row.
    side = max(math.ceil(span * (1.0 + 2.0 * margin)), math.ceil(span) + 2)
    centre_x, centre_y = (low + high) / 2.0
    x0, x1 = _place(float(centre_x), side, width)
    y0, y1 = _place(float(centre_y), side, height)
    return x0, y0, x1, y1


def luma(image_bgr: npt.ArrayLike) -> np.ndarray:
    """BT.601 luma, float64 0..255 (unrounded, unlike ``cv2.cvtColor``), of a BGR or BGRA
    frame; a 2-D (or single-channel) image is taken to be luma already."""
    image = np.asarray(image_bgr)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return image.astype(np.float64)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got {image.shape}")
    weights = np.array([_BT601 + (0.0,) * (image.shape[2] - 3)])
    # one cv2 pass: the closed loop takes the luma of every frame's face
    return cv2.transform(image.astype(np.float64), weights)


def face_crop(
    image_bgr: npt.ArrayLike, box: tuple[int, int, int, int], min_side: int = 1
) -> np.ndarray:
    """The luma of ``box`` at its native size, float64; a box whose shorter side is under
    ``min_side`` is enlarged (INTER_CUBIC, aspect kept) until it is ``min_side``."""
    x0, y0, x1, y1 = box
    image = np.asarray(image_bgr)
    height, width = image.shape[:2]
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(f"box {box} is empty or outside the {width} x {height} frame")
    crop = luma(image[y0:y1, x0:x1])
    short = min(crop.shape)
    if short >= min_side:
        return crop
    scale = min_side / short
    size = (
        max(min_side, round(crop.shape[1] * scale)),
        max(min_side, round(crop.shape[0] * scale)),
    )
    return cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC)


# ---------------------------------------------------------------------------------- SSIM


def _gaussian_taps() -> np.ndarray:
    """The 11 normalised taps of the SSIM window (separable: the 2-D window is outer(t, t))."""
    offsets = np.arange(SSIM_WINDOW, dtype=np.float64) - (SSIM_WINDOW - 1) / 2.0
    taps = np.exp(-(offsets**2) / (2.0 * SSIM_SIGMA**2))
    return taps / taps.sum()


_TAPS = _gaussian_taps()
_HALF = (SSIM_WINDOW - 1) // 2


def _window_mean(image: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local mean, 'valid' mode: filter, then drop the border rows and
    columns whose window reached past the edge (what the border mode made up)."""
    filtered = cv2.sepFilter2D(image, cv2.CV_64F, _TAPS, _TAPS, borderType=cv2.BORDER_REFLECT)
    return filtered[_HALF:-_HALF, _HALF:-_HALF]


def _pair(a: npt.ArrayLike, b: npt.ArrayLike, min_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 2-D arrays of one shape, at least ``min_side`` on each side."""
    first = np.asarray(a, dtype=np.float64)
    second = np.asarray(b, dtype=np.float64)
    if first.shape != second.shape:
        raise ValueError(f"images differ in shape: {first.shape} vs {second.shape}")
    if first.ndim != 2:
        raise ValueError(f"expected 2-D luma images, got shape {first.shape}")
    if min(first.shape) < min_side:
        raise ValueError(f"images of {first.shape} are too small: need at least {min_side} px")
    return first, second


def ssim_components(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """SSIM's (luminance, contrast-structure) maps, 'valid' size (each side 10 px shorter).

    SSIM = luminance * contrast-structure pointwise. Population (biased) variances, as in
    the paper. Works in float64: the moments are differences of numbers near 255^2, where
    float32 would lose most of a low-contrast patch's variance.
    """
    first, second = _pair(a, b, SSIM_WINDOW)
    mean_a = _window_mean(first)
    mean_b = _window_mean(second)
    luminance = (2.0 * mean_a * mean_b + _C1) / (mean_a * mean_a + mean_b * mean_b + _C1)
    return luminance, _contrast_structure(first, second, mean_a, mean_b)


def _contrast_structure(
    first: np.ndarray, second: np.ndarray, mean_a: np.ndarray, mean_b: np.ndarray
) -> np.ndarray:
    """(2 cov + C2) / (var_a + var_b + C2), in place where it can be: at a face's native
    size a float64 temporary costs about as much as a filter pass."""
    numerator = _window_mean(first * second)
    numerator -= mean_a * mean_b
    numerator *= 2.0
    numerator += _C2
    denominator = _window_mean(first * first)
    denominator -= mean_a * mean_a
    var_b = _window_mean(second * second)
    var_b -= mean_b * mean_b
    denominator += var_b
    denominator += _C2
    numerator /= denominator
    return numerator


def ssim(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Mean SSIM of two equal-shape luma images (0..255), Gaussian window, 'valid' mode."""
    luminance, contrast_structure = ssim_components(a, b)
    return float(np.mean(luminance * contrast_structure))


def _halve(image: np.ndarray) -> np.ndarray:
    """2 x 2 average pooling; an odd last row or column is dropped."""
    rows, cols = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    even = image[:rows, :cols]
    return 0.25 * (even[0::2, 0::2] + even[1::2, 0::2] + even[0::2, 1::2] + even[1::2, 1::2])


def ms_ssim(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Multi-scale SSIM (Wang, Simoncelli, Bovik 2003) of two equal-shape luma images 0..255.

    Five scales, halved by 2 x 2 average pooling; contrast-structure at the four finer ones,
    full SSIM at the coarsest, combined as prod(mean_j ** weight_j). A negative mean (an
    anti-correlated scale, e.g. a checkerboard shifted by one cell) is clamped to 0 before
    the power, as TensorFlow's ``ssim_multiscale`` and pytorch_msssim do: a fractional power
    of a negative number is undefined. Needs at least ``MS_SSIM_MIN_SIDE`` (176) px a side.
    """
    first, second = _pair(a, b, MS_SSIM_MIN_SIDE)
    result = 1.0
    last = len(MS_SSIM_WEIGHTS) - 1
    for weight in MS_SSIM_WEIGHTS[:last]:
        # the finer scales need no luminance term: skip computing it
        term = _contrast_structure(first, second, _window_mean(first), _window_mean(second))
        result *= max(float(np.mean(term)), 0.0) ** weight
        first, second = _halve(first), _halve(second)
    luminance, contrast_structure = ssim_components(first, second)
    return (
        result * max(float(np.mean(luminance * contrast_structure)), 0.0) ** MS_SSIM_WEIGHTS[last]
    )


def _same_frame_size(source: np.ndarray, decoded: np.ndarray) -> None:
    if source.shape[:2] != decoded.shape[:2]:
        raise ValueError(
            f"decoded frame is {decoded.shape[:2]}, source {source.shape[:2]}: "
            "the face box is in source pixels, so both must be the same size"
        )


def _face_pair(
    source_bgr: npt.ArrayLike, decoded_bgr: npt.ArrayLike, landmarks: npt.ArrayLike, min_side: int
) -> tuple[np.ndarray, np.ndarray]:
    """Both frames' face crops at the source landmarks' box, native size (or ``min_side``)."""
    source = np.asarray(source_bgr)
    decoded = np.asarray(decoded_bgr)
    _same_frame_size(source, decoded)
    height, width = source.shape[:2]
    box = face_box(landmarks, width, height)
    return face_crop(source, box, min_side), face_crop(decoded, box, min_side)


def face_ms_ssim(
    source_bgr: npt.ArrayLike, decoded_bgr: npt.ArrayLike, landmarks: npt.ArrayLike
) -> float:
    """The codecs' quality figure (and the closed loop's): MS-SSIM of the face luma,
    cropped at the box of the SOURCE frame's ``landmarks`` in both frames and compared at
    the box's native size. A box under ``MS_SSIM_MIN_SIDE`` (176 px) is enlarged to it in
    both frames alike (INTER_CUBIC): MS-SSIM's coarsest scale needs that many pixels."""
    source_face, decoded_face = _face_pair(source_bgr, decoded_bgr, landmarks, MS_SSIM_MIN_SIDE)
    return ms_ssim(source_face, decoded_face)


# ---------------------------------------------------------------------------------- PSNR


def _same_shape(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    first = np.asarray(a, dtype=np.float64)
    second = np.asarray(b, dtype=np.float64)
    if first.shape != second.shape or first.size == 0:
        raise ValueError(f"images differ in shape or are empty: {first.shape} vs {second.shape}")
    return first, second


def psnr(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """PSNR in dB for peak 255; ``math.inf`` for identical images."""
    first, second = _same_shape(a, b)
    mse = float(np.mean((first - second) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(PEAK * PEAK / mse)


def face_psnr(
    source_bgr: npt.ArrayLike, decoded_bgr: npt.ArrayLike, landmarks: npt.ArrayLike
) -> float:
    """PSNR of the face luma in the same box as ``face_ms_ssim``, native pixels (never
    enlarged: PSNR has no minimum size)."""
    source_face, decoded_face = _face_pair(source_bgr, decoded_bgr, landmarks, 1)
    return psnr(source_face, decoded_face)


# ------------------------------------------------------------------------ keypoint error


def akd(landmarks_source: npt.ArrayLike, landmarks_decoded: npt.ArrayLike) -> float:
    """Average keypoint distance: mean Euclidean xy distance (px) between corresponding
    landmarks. Depth is ignored (monocular depth is a guess), so an (N, 2) set may be
    compared with an (N, 3) one; the point counts must match."""
    source = _landmark_xy(landmarks_source, "source landmarks")
    decoded = _landmark_xy(landmarks_decoded, "decoded landmarks")
    if source.shape != decoded.shape:
        raise ValueError(
            f"landmark counts differ: {source.shape[0]} source vs {decoded.shape[0]} decoded"
        )
    return float(np.mean(np.linalg.norm(source - decoded, axis=1)))


def _detected(landmarks: npt.ArrayLike | None) -> np.ndarray | None:
    """The landmarks as float64, or None where no face was found (None or non-finite)."""
    if landmarks is None:
        return None
    array = np.asarray(landmarks, dtype=np.float64)
    return array if bool(np.all(np.isfinite(array))) else None


def akd_series(
    sources: Sequence[npt.ArrayLike | None], decodeds: Sequence[npt.ArrayLike | None]
) -> tuple[float, int]:
    """(mean AKD, missed faces) over a clip; each element is a landmark array or None
    (no face detected).

    A frame counts only if the source has a face: with none there is nothing to miss. A
    decoded frame whose face was not found (None, or non-finite landmarks) is counted as
    missed rather than averaged, since no distance describes it; report both numbers. The
    mean is NaN when no frame has a face on both sides.
    """
    if len(sources) != len(decodeds):
        raise ValueError(f"{len(sources)} source frames vs {len(decodeds)} decoded frames")
    distances: list[float] = []
    missed = 0
    for source_points, decoded_points in zip(sources, decodeds, strict=True):
        source = _detected(source_points)
        if source is None:
            continue
        decoded = _detected(decoded_points)
        if decoded is None:
            missed += 1
        else:
            distances.append(akd(source, decoded))
    mean = float(np.mean(distances)) if distances else math.nan
    return mean, missed


# -------------------------------------------------------------------------- Bjøntegaard


def _curve(rates: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(log10 rate, quality) of one rate-distortion curve, checked."""
    rate_array = np.asarray(rates, dtype=np.float64)
    quality_array = np.asarray(quality, dtype=np.float64)
    if rate_array.ndim != 1 or rate_array.shape != quality_array.shape:
        raise ValueError(
            f"rates and quality must be 1-D of one length, got {rate_array.shape} "
            f"and {quality_array.shape}"
        )
    if rate_array.size < 2:
        raise ValueError(f"a curve needs at least 2 points, got {rate_array.size}")
    if not (np.all(np.isfinite(rate_array)) and np.all(np.isfinite(quality_array))):
        raise ValueError("rates and quality must be finite")
    if np.any(rate_array <= 0):
        raise ValueError("rates must be positive (their logarithm is fitted)")
    return np.log10(rate_array), quality_array


def _envelope(log_rate: np.ndarray, quality: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The curve's efficient points: those no cheaper point matches in quality. A
    closed-loop codec can spend more bits for no better picture (a setting that sends
    more residuals on a clip that did not need them); such a point is not on the
    rate-distortion curve, and left in, it bends the cubic fit into nonsense."""
    order = np.argsort(log_rate, kind="stable")
    keep, best = [], -math.inf
    for index in order:
        if quality[index] > best:
            keep.append(index)
            best = quality[index]
    return log_rate[keep], quality[keep]


def _mean_of_fit(x: np.ndarray, y: np.ndarray, low: float, high: float) -> float:
    """Mean over [low, high] of the polynomial fit y(x): cubic as in VCEG-M33, lower
    degree when there are fewer than four points."""
    degree = min(3, x.size - 1)
    antiderivative = np.polyint(np.polyfit(x, y, degree))
    area = np.polyval(antiderivative, high) - np.polyval(antiderivative, low)
    return float(area / (high - low))


def _mean_difference(
    x_ref: np.ndarray, y_ref: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> float:
    """Mean of (test fit - ref fit) over the x range both curves cover; NaN without one."""
    low = max(float(x_ref.min()), float(x_test.min()))
    high = min(float(x_ref.max()), float(x_test.max()))
    if not high > low:
        return math.nan
    return _mean_of_fit(x_test, y_test, low, high) - _mean_of_fit(x_ref, y_ref, low, high)


def bd_rate(
    rates_ref: Sequence[float],
    quality_ref: Sequence[float],
    rates_test: Sequence[float],
    quality_test: Sequence[float],
) -> float:
    """Bjøntegaard delta rate (VCEG-M33): the mean bitrate change, in percent, of the test
    codec against the reference at equal quality; negative means the test needs fewer bits.

    Each curve is first reduced to its efficient points (``_envelope``); then
    log10(rate) is fitted as a cubic in quality for each curve and the fits are averaged
    over the quality interval both curves cover. Returns NaN (rather than raising, so one
    mismatched pair does not abort a table) when the quality ranges do not overlap: the
    curves then say nothing about equal quality (so also when a curve keeps a single
    efficient point: it covers no interval). Only trust it inside the measured range; the
    cubic is unreliable beyond it, which is why nothing is extrapolated.
    """
    log_ref, q_ref = _envelope(*_curve(rates_ref, quality_ref))
    log_test, q_test = _envelope(*_curve(rates_test, quality_test))
    difference = _mean_difference(q_ref, log_ref, q_test, log_test)
    if math.isnan(difference):
        return math.nan
    return (10.0**difference - 1.0) * 100.0


def bd_quality(
    rates_ref: Sequence[float],
    quality_ref: Sequence[float],
    rates_test: Sequence[float],
    quality_test: Sequence[float],
) -> float:
    """Bjøntegaard delta quality: the mean quality difference (test - ref, in the quality's
    own units) at equal rate; positive means the test is better. Quality is fitted as a
    cubic in log10(rate); NaN when the rate ranges do not overlap."""
    log_ref, q_ref = _envelope(*_curve(rates_ref, quality_ref))
    log_test, q_test = _envelope(*_curve(rates_test, quality_test))
    return _mean_difference(log_ref, q_ref, log_test, q_test)


def rate_at_quality(
    rates: Sequence[float], quality: Sequence[float], target: float
) -> float | None:
    """The bitrate a curve needs to reach ``target`` quality, or None if it cannot be read.

    The points are sorted by rate and quality replaced by its running maximum (a codec can
    always spend more bits for the quality it reached at fewer), then log(rate) is
    interpolated linearly between the two points that bracket ``target``. None when the
    curve never reaches ``target``, and also when even its lowest-rate point is above
    ``target`` ("below the curve's range": how few bits would do is not measured); if that
    point is exactly at ``target`` its rate is returned.
    """
    log_rate, quality_array = _curve(rates, quality)
    order = np.argsort(log_rate, kind="stable")
    log_rate = log_rate[order]
    envelope = np.maximum.accumulate(quality_array[order])
    if envelope[0] == target:
        return float(10.0 ** log_rate[0])
    if envelope[0] > target or envelope[-1] < target:
        return None
    upper = int(np.argmax(envelope >= target))  # first point at or above target; >= 1 here
    lower = upper - 1  # strictly below target, so the bracket has nonzero height
    fraction = (target - envelope[lower]) / (envelope[upper] - envelope[lower])
    log_value = log_rate[lower] + fraction * (log_rate[upper] - log_rate[lower])
    return float(10.0**log_value)


# ---------------------------------------------------------------------------------- plot


Curves = Mapping[str, tuple[Sequence[float], Sequence[float]]]


def _figure(width: float, height: float) -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # headless device and CI: never look for a display
        from matplotlib.figure import Figure
    except ImportError as error:
        raise RuntimeError(
            "plots need matplotlib, which the firmware does not ship: pip install matplotlib"
        ) from error
    # A bare Figure, not pyplot: no global figure registry to leak or share between threads.
    return Figure(figsize=(width, height))


def _draw(axes: Any, curves: Curves, title: str, xlabel: str, ylabel: str, log_x: bool) -> None:
    for name, (rates, quality) in curves.items():
        order = np.argsort(np.asarray(rates, dtype=np.float64), kind="stable")
        axes.plot(
            np.asarray(rates, dtype=np.float64)[order],
            np.asarray(quality, dtype=np.float64)[order],
            marker="o",
            label=name,
        )
    if log_x:
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(ScalarFormatter())  # 10, 100: not 10^1, 10^2
        axes.xaxis.set_minor_formatter(NullFormatter())  # unlabelled: they overlap
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, which="both", alpha=0.3)
    if curves:
        axes.legend(fontsize="small")


def plot_rd(
    curves: Curves,
    path: str | Path,
    title: str,
    xlabel: str = "kbit/s",
    ylabel: str = "face MS-SSIM",
    log_x: bool = True,
) -> Path:
    """Write a rate-distortion PNG: one marked line per codec, ``curves[name] = (rates,
    quality)``. Returns the path written."""
    figure = _figure(7.0, 5.0)
    _draw(figure.add_subplot(), curves, title, xlabel, ylabel, log_x)
    figure.tight_layout()
    output = Path(path)
    figure.savefig(output, dpi=120)
    return output


def plot_rd_grid(
    panels: Mapping[str, Curves], path: str | Path, ylabel: str, xlabel: str = "kbit/s"
) -> Path:
    """Several clips' rate-distortion curves side by side, one panel per clip."""
    columns = min(3, max(1, len(panels)))
    rows = -(-len(panels) // columns)
    figure = _figure(4.6 * columns, 3.6 * rows)
    for k, (title, curves) in enumerate(panels.items()):
        _draw(figure.add_subplot(rows, columns, k + 1), curves, title, xlabel, ylabel, True)
    figure.tight_layout()
    output = Path(path)
    figure.savefig(output, dpi=100)
    return output
