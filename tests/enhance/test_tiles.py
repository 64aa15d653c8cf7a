"""Tiling: any picture size through a fixed-size network, stitched without seams."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from appliance.enhance.tiles import upscale_tiled

RADIUS = 3  # the fake network's receptive radius


def local_network(batch: np.ndarray) -> np.ndarray:
    """A stand-in with a receptive field: a 7x7 blur plus a gradient, then x2 nearest."""
    x = batch[0, 0]
    blurred = cv2.blur(x, (2 * RADIUS + 1, 2 * RADIUS + 1), borderType=cv2.BORDER_CONSTANT)
    y = blurred + 0.1 * cv2.Sobel(x, cv2.CV_32F, 1, 0, borderType=cv2.BORDER_CONSTANT)
    return np.repeat(np.repeat(y, 2, axis=0), 2, axis=1)[None, None]


def whole(plane: np.ndarray, margin: int) -> np.ndarray:
    padded = np.pad(plane, margin, mode="reflect")
    out = local_network(padded[None, None].astype(np.float32))[0, 0]
    return out[2 * margin : -2 * margin, 2 * margin : -2 * margin]


@pytest.mark.parametrize("shape", [(100, 130), (37, 41), (5, 300), (20, 20)])
def test_tiles_stitch_to_the_whole_picture_result(shape: tuple[int, int]) -> None:
    plane = np.random.default_rng(0).random(shape).astype(np.float32)
    out = upscale_tiled(plane, local_network, tile=24, margin=RADIUS + 1)
    assert out.shape == (2 * shape[0], 2 * shape[1])
    assert np.allclose(out, whole(plane, RADIUS + 1), atol=1e-5)


def test_a_margin_smaller_than_the_receptive_field_shows_seams() -> None:
    plane = np.random.default_rng(1).random((60, 60)).astype(np.float32)
    out = upscale_tiled(plane, local_network, tile=24, margin=1)
    assert not np.allclose(out, whole(plane, RADIUS + 1), atol=1e-3)


def test_a_one_pixel_picture_and_bad_arguments() -> None:
    out = upscale_tiled(np.full((1, 1), 0.5, np.float32), local_network, tile=16, margin=4)
    assert out.shape == (2, 2) and np.isfinite(out).all()
    with pytest.raises(ValueError, match="one plane"):
        upscale_tiled(np.zeros((4, 4, 3), np.float32), local_network, 16, 4)
    with pytest.raises(ValueError, match="no core"):
        upscale_tiled(np.zeros((4, 4), np.float32), local_network, 8, 4)
