"""Reference and residual pictures: AV1 key frames and WebP, through the real codecs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from appliance.codec import metrics
from appliance.codec.bitstream import BitstreamError, Codec
from appliance.codec.pictures import (
    decode_picture,
    encode_picture,
    quality_to_crf,
    reference_codecs,
)


def test_this_machine_codes_av1_references() -> None:
    assert reference_codecs() == (Codec.AV1, Codec.WEBP)


def test_av1_reference_costs_less_than_webp_for_the_same_face_quality(talking_head) -> None:
    frame, face = talking_head.frames[0], talking_head.landmarks[0]
    webp = encode_picture(frame, 25, Codec.WEBP)
    webp_quality = metrics.face_ms_ssim(frame, decode_picture(Codec.WEBP, webp), face)
    av1 = encode_picture(frame, 25, Codec.AV1)
    size = (frame.shape[1], frame.shape[0])
    av1_quality = metrics.face_ms_ssim(frame, decode_picture(Codec.AV1, av1, size), face)
    assert av1_quality > webp_quality - 0.005  # about the same picture ...
    assert len(av1) < 0.7 * len(webp)  # ... for well under three quarters of the bytes


def test_sizes_that_are_not_multiples_of_8_come_back_whole(talking_head) -> None:
    crop = np.ascontiguousarray(talking_head.frames[0][13:214, 7:170])  # 163x201, odd
    data = encode_picture(crop, 60, Codec.AV1)
    picture = decode_picture(Codec.AV1, data, (163, 201))
    assert picture.shape == crop.shape
    assert np.abs(picture.astype(int) - crop).mean() < 6  # the same picture, not padding


def test_decoding_is_deterministic(talking_head) -> None:
    """The sender renders from its own decode of what it sent: it must be the receiver's."""
    data = encode_picture(talking_head.frames[3], 30, Codec.AV1)
    assert np.array_equal(decode_picture(Codec.AV1, data), decode_picture(Codec.AV1, data))


@pytest.mark.parametrize("codec", [Codec.AV1, Codec.WEBP, Codec.JPEG])
def test_garbage_and_truncated_pictures_are_bitstream_errors(codec, talking_head) -> None:
    good = encode_picture(
        talking_head.frames[0], 40, Codec.AV1 if codec == Codec.AV1 else Codec.WEBP
    )
    for data in (b"", b"\x00" * 40, os.urandom(300), good[: len(good) // 3]):
        with pytest.raises(BitstreamError):
            decode_picture(codec, data, (480, 480))


def test_a_picture_of_another_size_than_its_header_is_refused(talking_head) -> None:
    data = encode_picture(talking_head.frames[0], 40, Codec.AV1)
    # smaller or larger than its header: refused before dav1d sees it (its sequence
    # header says; a forged huge key frame is never allocated)
    with pytest.raises(BitstreamError, match="is 480x480, its header says 640x480"):
        decode_picture(Codec.AV1, data, (640, 480))
    with pytest.raises(BitstreamError, match="is 480x480, its header says 240x240"):
        decode_picture(Codec.AV1, data, (240, 240))
    with pytest.raises(BitstreamError, match="header says 200x100"):
        decode_picture(Codec.WEBP, encode_picture(talking_head.frames[0], 40), (200, 100))


def test_codecs_the_sender_does_not_code_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="not H264"):
        encode_picture(np.zeros((64, 64, 3), np.uint8), 50, Codec.H264)
    with pytest.raises(BitstreamError, match="H264 pictures are not decoded"):
        decode_picture(Codec.H264, b"\x00\x00\x01")


def test_quality_maps_onto_the_av1_quantizer() -> None:
    assert [quality_to_crf(q) for q in (1, 25, 50, 100)] == [62, 47, 32, 0]
    with pytest.raises(ValueError, match=r"1\.\.100"):
        quality_to_crf(0)


def test_coding_leaves_the_thread_scheduling_as_it_was() -> None:
    """SVT-AV1 run as root makes the calling thread SCHED_FIFO; a daemon thread must not
    keep that (it would starve the others, and every child process would inherit it)."""
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    encode_picture(np.full((64, 96, 3), 90, np.uint8), 50, Codec.AV1)
    assert (os.sched_getscheduler(0), os.sched_getparam(0)) == before
