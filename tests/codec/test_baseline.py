"""The conventional codecs the keypoint codec is compared with (x264, VP8, SVT-AV1 via PyAV).

A small synthetic clip (the astronaut, 128x96, panning 2 px right and 1 px down a frame)
goes through each codec: every frame must come back once, at the input size, with a sane
PSNR, at a rate near the target, and more bits must buy a better picture.
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
from skimage import data

from appliance.codec import baseline
from appliance.codec.baseline import CODECS, BaselineResult, available, encode_decode
from tests.conftest import shared_data

pytest.importorskip("av", reason="PyAV (pip install av) is needed for the baseline codecs")

FPS = 25.0
N_FRAMES = 30


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-10))


def mean_psnr(frames: list[np.ndarray], result: BaselineResult) -> float:
    return float(np.mean([psnr(a, b) for a, b in zip(frames, result.decoded, strict=True)]))


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    picture = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    picture = cv2.resize(picture, (256, 256), interpolation=cv2.INTER_AREA)
    return [
        np.ascontiguousarray(picture[40 + i : 136 + i, 30 + 2 * i : 158 + 2 * i])
        for i in range(N_FRAMES)
    ]


@pytest.fixture(params=CODECS)
def codec(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if not available()[name]:
        pytest.skip(f"this PyAV build cannot both encode and decode {name}")
    return name


def test_available_names_every_codec() -> None:
    assert set(available()) == set(CODECS)


def test_round_trip(clip: list[np.ndarray], codec: str) -> None:
    result = encode_decode(clip, FPS, codec, 500)
    assert result.codec == codec
    assert len(result.decoded) == len(result.frame_bytes) == N_FRAMES
    assert all(d.shape == clip[0].shape and d.dtype == np.uint8 for d in result.decoded)
    # Zero latency: every frame produced its own packet; the first is the keyframe.
    assert all(size > 0 for size in result.frame_bytes)
    assert result.frame_bytes[0] == max(result.frame_bytes)
    assert mean_psnr(clip, result) > 25
    # Decoded in order: each frame is closer to its own input than to a neighbour's.
    for i in (5, 15, 25):
        assert psnr(clip[i], result.decoded[i]) > psnr(clip[i], result.decoded[i + 3])


def test_rate_follows_target(clip: list[np.ndarray], codec: str) -> None:
    low, high = (encode_decode(clip, FPS, codec, kbps) for kbps in (60, 250))
    for result in (low, high):
        assert 0.3 < result.kbps / result.kbps_target < 3, (codec, result.kbps)
        assert result.kbps == pytest.approx(sum(result.frame_bytes) * 8 * FPS / N_FRAMES / 1000)
        assert result.mean_bytes == pytest.approx(sum(result.frame_bytes) / N_FRAMES)
    assert sum(high.frame_bytes) > sum(low.frame_bytes)
    assert mean_psnr(clip, high) > mean_psnr(clip, low)


def test_ntsc_frame_rate(clip: list[np.ndarray]) -> None:
    if not available()["x264"]:
        pytest.skip("this PyAV build lacks x264")
    result = encode_decode(clip[:10], 30000 / 1001, "x264", 200)
    assert len(result.decoded) == 10
    assert result.kbps == pytest.approx(sum(result.frame_bytes) * 8 * 29.97 / 10 / 1000, 1e-3)


@pytest.mark.parametrize(
    ("frames", "fps", "codec", "kbps", "message"),
    [
        ([np.zeros((96, 127, 3), np.uint8)], 25, "x264", 100, "even"),
        ([np.zeros((95, 128, 3), np.uint8)], 25, "x264", 100, "even"),
        ([np.zeros((96, 128), np.uint8)], 25, "x264", 100, "BGR"),
        ([np.zeros((96, 128, 3), np.uint8), np.zeros((96, 96, 3), np.uint8)], 25, "x264", 100,
         "frame 1"),
        ([np.zeros((96, 128, 3), np.float32)], 25, "x264", 100, "uint8"),
        ([np.zeros((96, 128, 3), np.uint8)], 25, "h265", 100, "unknown codec"),
        ([np.zeros((96, 128, 3), np.uint8)], 25, "x264", 0, "kbps"),
        ([np.zeros((96, 128, 3), np.uint8)], 25, "x264", -5, "kbps"),
        ([np.zeros((96, 128, 3), np.uint8)], 0, "x264", 100, "fps"),
        ([], 25, "x264", 100, "no frames"),
    ],
)  # fmt: skip
def test_bad_input(
    frames: list[np.ndarray], fps: float, codec: str, kbps: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        encode_decode(frames, fps, codec, kbps)


def test_missing_pyav_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError
    with pytest.raises(RuntimeError, match="pip install av"):
        available()
    with pytest.raises(RuntimeError, match="pip install av"):
        baseline.encode_decode([np.zeros((96, 128, 3), np.uint8)], 25, "x264", 100)


def test_real_clip_x264_rate() -> None:
    if not available()["x264"]:
        pytest.skip("this PyAV build lacks x264")
    capture = cv2.VideoCapture(str(shared_data("clips/lp_d0.mp4")))
    frames: list[np.ndarray] = []
    while len(frames) < 25:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 25
    result = encode_decode(frames, 25, "x264", 50)
    assert len(result.decoded) == 25
    assert 0.5 < result.kbps / 50 < 2, result.kbps


def test_the_encoders_leave_the_callers_scheduling_as_it_was(clip: list[np.ndarray]) -> None:
    """SVT-AV1 run as root makes its caller SCHED_FIFO 99; a VM started after that
    starved everything (a test suite that hung)."""
    import os

    before = os.sched_getscheduler(0), os.sched_getparam(0)
    for codec in baseline.CODECS:
        if baseline.available().get(codec):
            baseline.encode_decode(clip[:6], 25.0, codec, 200.0)
    assert (os.sched_getscheduler(0), os.sched_getparam(0)) == before
