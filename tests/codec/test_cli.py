"""``appliance codec encode|decode``: a clip to datagrams on disk and back to video."""

from __future__ import annotations

import cv2

from appliance.cli import main

from .conftest import DATA


def test_encode_then_decode_gives_a_video_of_every_frame(tmp_path, capsys):
    packets, video = tmp_path / "call.kpc", tmp_path / "call.mp4"
    clip = str(DATA / "clips" / "lp_d20.mp4")
    assert main(["codec", "encode", clip, "--frames", "20", "-o", str(packets)]) == 0
    assert "B/frame" in capsys.readouterr().out
    assert main(["codec", "decode", str(packets), "-o", str(video), "--fps", "25"]) == 0
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (480, 480)


def test_bad_input_is_refused_with_a_message(tmp_path, capsys):
    assert main(["codec", "encode", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "x")]) == 2
    assert main(["codec", "decode", str(tmp_path / "none.kpc"), "-o", str(tmp_path / "y")]) == 2
    garbage = tmp_path / "garbage.kpc"
    garbage.write_bytes(b"\x00\x10" + b"not a packet at all!" * 3)
    assert main(["codec", "decode", str(garbage), "-o", str(tmp_path / "g.mp4")]) == 1
    err = capsys.readouterr()
    assert "no such" in err.err and "0 frames" in err.out
    clip = str(DATA / "clips" / "lp_d20.mp4")
    out = tmp_path / "never.kpc"
    assert main(["codec", "encode", clip, "--quality", "0", "-o", str(out)]) == 2
    assert "reference_quality must lie in 1..100" in capsys.readouterr().err
    assert not out.exists()  # nothing written


def test_webp_references_on_request(tmp_path, capsys):
    packets, video = tmp_path / "webp.kpc", tmp_path / "webp.mp4"
    clip = str(DATA / "clips" / "lp_d20.mp4")
    args = ["--reference-codec", "webp", "--frames", "4", "-o", str(packets)]
    assert main(["codec", "encode", clip, *args]) == 0
    assert main(["codec", "decode", str(packets), "-o", str(video), "--fps", "25"]) == 0
    assert "4 frames" in capsys.readouterr().out
    av1 = tmp_path / "av1.kpc"
    assert main(["codec", "encode", clip, "--frames", "4", "-o", str(av1)]) == 0
    assert av1.stat().st_size < 0.8 * packets.stat().st_size  # the default, AV1, is smaller


def test_the_codec_bench_reports_each_part(capsys):
    from appliance.codec.bench import bench_codec, format_codec

    result = bench_codec(frames=12)
    for part in ("keypoint_encoder_ms", "sender_with_closed_loop_ms", "receiver_ms"):
        assert 0 < result[part]["p50"] <= result[part]["p99"]
    assert result["size"] == "512x512" and result["frames"] == 12
    assert "receiver (decode + render)" in format_codec(result)


def test_the_demo_picture_has_a_row_per_moment_and_three_columns(tmp_path):
    import cv2

    from appliance.codec.demo import TILE, demo

    path = demo(tmp_path, clips=("lp_d20",), frames=24)
    image = cv2.imread(str(path))
    assert image.shape[:2] == (3 * TILE, 3 * TILE)  # camera | keypoints | x264, 3 moments
