"""Backgrounds and the blend: blur without the person's halo, pictures, colours."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.background.compose import (
    Backdrop,
    blend,
    blurred_background,
    cover,
    parse_color,
    read_picture,
)
from appliance.background.frames import BackgroundError, as_bgr, reduce, work_factor


def test_blend_is_exact_where_the_matte_is_0_or_255() -> None:
    rng = np.random.default_rng(0)
    front = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    back = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    matte = np.zeros((24, 32), np.uint8)
    matte[:, 16:] = 255
    matte[:, 15] = 128
    out = blend(front, back, matte)
    assert np.array_equal(out[:, 16:], front[:, 16:])
    assert np.array_equal(out[:, :15], back[:, :15])
    half = (front[:, 15].astype(int) + back[:, 15]) / 2
    assert np.abs(out[:, 15] - half).max() <= 1.5


def test_blurred_background_does_not_smear_the_person_into_it() -> None:
    """A bright person on a dark room: around them the blur stays dark (premultiplied),
    where a plain blur of the frame would glow."""
    room = np.full((360, 640, 3), 40, np.uint8)
    frame = room.copy()
    cv2.circle(frame, (320, 180), 80, (250, 250, 250), -1)
    matte = np.zeros((360, 640), np.uint8)
    cv2.circle(matte, (320, 180), 80, 255, -1)
    sigma = 12.0
    back = blurred_background(frame, matte, sigma, 640, 360)
    ring = np.zeros((360, 640), np.uint8)
    cv2.circle(ring, (320, 180), 88, 1, 8)  # 4..12 px outside the person
    plain = cv2.GaussianBlur(frame, (0, 0), sigma)
    assert plain[ring > 0].mean() > 80  # the halo this guards against
    assert abs(back[ring > 0].mean() - 40) < 3
    assert back.shape == (360, 640, 3) and back.dtype == np.uint8


def test_blur_strength_follows_sigma() -> None:
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (180, 320, 3), dtype=np.uint8)
    matte = np.zeros((180, 320), np.uint8)
    detail = [
        float(
            np.abs(cv2.Laplacian(blurred_background(frame, matte, s, 320, 180), cv2.CV_32F)).mean()
        )
        for s in (1.0, 4.0, 16.0)
    ]
    assert detail[0] > detail[1] > detail[2]


def test_parse_color_is_bgr() -> None:
    assert parse_color("#ff8000") == (0, 128, 255)
    assert parse_color("#30404A") == (0x4A, 0x40, 0x30)
    for bad in ("#ff80", "ff8000zz", "#gg0000"):
        with pytest.raises(BackgroundError, match=r"#rrggbb"):
            parse_color(bad)


def test_cover_fills_the_frame_and_crops_the_centre() -> None:
    tall = np.zeros((400, 300, 3), np.uint8)
    tall[:, :, 0] = 10
    tall[190:210, 140:160] = (0, 0, 255)  # a red mark in the middle
    out = cover(tall, 640, 360)  # scaled to 640 wide (533 high), middle rows kept
    assert out.shape == (360, 640, 3)
    assert tuple(out[180, 320]) == (0, 0, 255)
    assert out[:2].mean() > 0 and out[-2:].mean() > 0  # no letterbox bars
    wide = cover(np.full((10, 1000, 3), 7, np.uint8), 33, 17)
    assert wide.shape == (17, 33, 3) and (wide == 7).all()


def test_read_picture_says_why_it_cannot(tmp_path: Path) -> None:
    with pytest.raises(BackgroundError, match="no such file"):
        read_picture(str(tmp_path / "missing.png"))
    with pytest.raises(BackgroundError, match="not a file"):
        read_picture(str(tmp_path))
    bogus = tmp_path / "bogus.png"
    bogus.write_text("not a picture")
    with pytest.raises(BackgroundError, match="not a picture"):
        read_picture(str(bogus))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(BackgroundError, match="not a picture"):
        read_picture(str(empty))
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((20, 30, 3), 99, np.uint8))
    assert read_picture(str(good)).shape == (20, 30, 3)
    huge = tmp_path / "huge.png"
    cv2.imwrite(str(huge), np.zeros((10, 5000), np.uint8))  # grey: comes back BGR
    assert read_picture(str(huge)).shape == (8, 4096, 3)


def test_backdrop_caches_per_frame_size() -> None:
    backdrop = Backdrop()
    assert backdrop.image(64, 48) is None
    backdrop.use("x.png", np.full((100, 100, 3), 5, np.uint8))
    first = backdrop.image(64, 48)
    assert first is not None and first.shape == (48, 64, 3)
    assert backdrop.image(64, 48) is first
    assert backdrop.image(32, 24) is not first
    assert backdrop.fill(8, 6, (1, 2, 3)) is backdrop.fill(8, 6, (1, 2, 3))
    assert tuple(backdrop.fill(8, 6, (1, 2, 3))[5, 7]) == (1, 2, 3)


def test_frames_accepts_grey_and_bgra_and_refuses_the_rest() -> None:
    grey = np.full((10, 12), 77, np.uint8)
    assert as_bgr(grey).shape == (10, 12, 3) and (as_bgr(grey) == 77).all()
    assert as_bgr(np.zeros((10, 12, 4), np.uint8)).shape == (10, 12, 3)
    bgr = np.zeros((10, 12, 3), np.uint8)
    assert as_bgr(bgr) is bgr
    with pytest.raises(BackgroundError, match=r"uint8 image, got float32 \(10, 12, 3\)"):
        as_bgr(np.zeros((10, 12, 3), np.float32))
    with pytest.raises(BackgroundError, match=r"HxWx3.*\(10, 12, 2\)"):
        as_bgr(np.zeros((10, 12, 2), np.uint8))
    with pytest.raises(BackgroundError, match="too small"):
        as_bgr(np.zeros((1, 12, 3), np.uint8))


def test_work_picture_is_an_integer_reduction() -> None:
    assert work_factor(720) == 2 and work_factor(1080) == 3 and work_factor(359) == 1
    assert reduce(np.zeros((720, 1280, 3), np.uint8), 2).shape == (360, 640, 3)
    assert reduce(np.zeros((3, 3), np.uint8), 8).shape == (1, 1)
