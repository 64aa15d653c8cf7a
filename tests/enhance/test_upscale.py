"""The x2 upscaler on real pictures: sharper than bicubic, any size and format, bad input."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from appliance.enhance.upscale import UpscaleError, Upscaler
from engines.sr.imresize import bgr_to_y, imresize, to_uint8
from tests.conftest import shared_data


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    diff = (np.round(bgr_to_y(a)) - np.round(bgr_to_y(b)))[2:-2, 2:-2]
    return 10 * math.log10(255.0**2 / float(np.mean(diff**2)))


def test_sharper_than_bicubic_on_a_real_picture(upscaler: Upscaler) -> None:
    hr = cv2.imread(str(shared_data("sr/set5/img_005.png")))
    h, w = (s - s % 2 for s in hr.shape[:2])
    hr = hr[:h, :w]
    lr = to_uint8(imresize(hr, 0.5))
    ours = upscaler.upscale(lr)
    bicubic = to_uint8(imresize(lr, 2.0))
    assert ours.shape == hr.shape and ours.dtype == np.uint8
    gain = psnr_y(ours, hr) - psnr_y(bicubic, hr)
    print(f"\nSet5 img_005 x2: network {psnr_y(ours, hr):.2f} dB, bicubic +{gain:.2f} dB")
    assert gain > 1.0
    # The chroma comes from bicubic: hue does not shift.
    hue = cv2.cvtColor(ours, cv2.COLOR_BGR2YCrCb)[..., 1:].astype(int)
    ref = cv2.cvtColor(cv2.resize(lr, (w, h), interpolation=cv2.INTER_CUBIC), cv2.COLOR_BGR2YCrCb)
    assert np.abs(hue - ref[..., 1:].astype(int)).mean() < 1.5


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 333, 3), (31, 17), (20, 22, 4), (9, 9, 1)])
def test_any_size_grey_and_alpha(upscaler: Upscaler, shape: tuple[int, ...]) -> None:
    image = np.random.default_rng(0).integers(0, 256, shape, np.uint8)
    out = upscaler.upscale(image)
    channels = () if len(shape) == 2 or shape[-1] == 1 else (shape[-1],)
    assert out.shape == (2 * shape[0], 2 * shape[1], *channels) and out.dtype == np.uint8


def test_a_flat_grey_picture_stays_flat(upscaler: Upscaler) -> None:
    out = upscaler.upscale(np.full((40, 50), 128, np.uint8))
    assert np.abs(out.astype(int) - 128).max() <= 1


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((8, 8, 3), np.float32), "8-bit"),
        (np.zeros((8, 8, 2), np.uint8), "grey, BGR or BGRA"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
        ("not a picture", "numpy array"),
    ],
)
def test_bad_input_is_refused_clearly(upscaler: Upscaler, image: object, message: str) -> None:
    with pytest.raises(UpscaleError, match=message):
        upscaler.upscale(image)  # type: ignore[arg-type]
