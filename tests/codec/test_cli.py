"""``appliance codec encode|decode``: a clip to datagrams on disk and back to video."""

from __future__ import annotations

import cv2
import numpy as np

from appliance.cli import main
from appliance.codec.bitstream import Packetizer
from appliance.codec.cli import frame_groups, frame_rate, pictures
from appliance.codec.session import Receiver

from .conftest import DATA, read_clip


def test_decode_gives_one_picture_per_source_frame_at_the_sources_rate(tmp_path, capsys):
    # floor 0.9 makes the closed loop send residuals, each of which used to add a frame
    packets, video = tmp_path / "call.kpc", tmp_path / "call.mp4"
    clip = str(DATA / "clips" / "lp_d20.mp4")  # 25 fps
    args = ["--frames", "40", "--floor", "0.9", "-o", str(packets)]
    assert main(["codec", "encode", clip, *args]) == 0
    encoded = capsys.readouterr().out
    assert "40 frames" in encoded and " 0 residuals" not in encoded
    assert main(["codec", "decode", str(packets), "-o", str(video)]) == 0
    assert "40 frames at 25 fps" in capsys.readouterr().out
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 40
    assert cap.get(cv2.CAP_PROP_FPS) == 25.0
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (480, 480)


def _stamped(times: list[int]) -> list[bytes]:
    packets = Packetizer(7)
    return [packets.keypoints(b"\x00", True, 0, t % (1 << 16)) for t in times]


def test_frames_and_rate_come_from_the_timestamps():
    # 30 fps, frame 3 sent nothing (no face), the clock wrapping at 2**16 ms on the way
    start = 1962  # frame 1962 at 30 fps is 65400 ms
    indices = [start, start + 1, start + 2, start + 4, start + 5]
    times = [round(i * 1000 / 30) for i in indices]
    datagrams = _stamped(times)
    garbage = b"not a packet"
    frames = frame_groups([garbage, datagrams[0], datagrams[1], datagrams[1], garbage,
                           *datagrams[2:]])  # fmt: skip
    assert [t for t, _ in frames] == times  # unwrapped: past 65535
    assert [len(d) for _, d in frames] == [2, 3, 1, 1, 1]  # garbage stays where it came
    assert frame_rate(times) == 30.0
    ntsc = [round(i * 1000 / (30 / 1.001)) for i in range(900) if i % 7]  # and gaps
    assert frame_rate(ntsc) == 30 / 1.001
    assert frame_rate([0, 40, 80, 120, 240, 280]) == 25.0
    assert frame_rate([100]) is None


def test_a_frame_sent_nothing_shows_the_picture_before_it():
    clip = read_clip("lp_d20", 8)
    from appliance.codec.session import Receiver, Sender

    sender = Sender(*clip.size, clip.fps, stream=1)
    live = Receiver()
    datagrams, expected = [], []
    for index, frame in enumerate(clip.frames):
        face = None if index in (0, 4) else clip.landmarks[index]  # no face: nothing sent
        sent = sender.send(frame, face, index, clip.iris[index])
        for datagram in sent:
            live.feed(datagram)
        datagrams += sent
        expected.append(None if live.picture is None else live.picture.copy())
    shown = [None if p is None else p.copy()
             for p in pictures(Receiver(), frame_groups(datagrams), clip.fps)]  # fmt: skip
    assert len(shown) == len(clip.frames) and shown[0] is None
    for mine, theirs in zip(shown[1:], expected[1:], strict=True):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(shown[4], shown[3])


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
    assert "4 frames at 25 fps" in capsys.readouterr().out
    av1 = tmp_path / "av1.kpc"
    assert main(["codec", "encode", clip, "--frames", "4", "-o", str(av1)]) == 0
    assert av1.stat().st_size < 0.8 * packets.stat().st_size  # the default, AV1, is smaller


def test_the_codec_bench_reports_each_part(capsys):
    from appliance.codec.bench import bench_codec, format_codec

    result = bench_codec(frames=12)
    parts = ("keypoint_encoder_ms", "sender_with_closed_loop_ms", "receiver_ms",
             "hybrid_sender_ms", "hybrid_receiver_ms")  # fmt: skip
    for part in parts:
        assert 0 < result[part]["p50"] <= result[part]["p99"]
    assert result["size"] == "512x512" and result["frames"] == 12
    assert "receiver (decode + render)" in format_codec(result)
    assert "receiver (decode + fuse)" in format_codec(result)
    assert result["hybrid_bytes_per_frame"] > 0


def test_the_demo_picture_has_a_row_per_clip_and_four_columns(tmp_path):
    import cv2

    from appliance.codec.demo import TILE, demo

    path = demo(tmp_path, clips=[DATA / "clips" / "lp_d20.mp4"], frames=24)
    image = cv2.imread(str(path))
    assert image.shape[:2] == (TILE, 4 * TILE)  # camera | hybrid | x264 | AV1


def test_forged_time_jumps_are_not_filled_with_hours_of_video():
    # each packet claims to be 30 s after the one before: a pause is filled, a jump not
    times = [(i * 30_000) % (1 << 16) for i in range(40)]
    shown = list(pictures(Receiver(), frame_groups(_stamped(times)), 30.0))
    assert len(shown) == len(times)  # not 40 x 900 frames
    paused = list(pictures(Receiver(), frame_groups(_stamped([0, 2000])), 30.0))
    assert len(paused) == 61  # 2 s of silence is shown as the last picture
