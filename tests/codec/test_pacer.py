"""Objects paced over frames, frame packets at once, a queue that never grows past its
bound."""

from __future__ import annotations

from appliance.codec.bitstream import Codec, Packetizer, Reference
from appliance.codec.pacer import MIN_ROOM, Pacer, is_object


def picture(packets: Packetizer, ref_id: int, size: int) -> list[bytes]:
    return packets.reference(Reference(ref_id, Codec.AV1, 480, 480, 0, bytes(size)), 0)


def test_objects_are_spread_over_frames_and_frame_packets_pass_at_once():
    packets = Packetizer(1)
    pacer = Pacer(fps=25.0)
    big = picture(packets, 0, 4000)  # 4 datagrams
    frame = packets.stream_frame(b"x" * 20, False, 1, 0)
    assert all(is_object(d) for d in big) and not is_object(frame)
    first = pacer.send([*big, frame], kbps=20.0)  # 250 B of budget a frame at 2.5 x
    assert frame in first and sum(is_object(d) for d in first) == 1
    released = sum(is_object(d) for d in first)
    frames = 1
    while pacer.queue:
        out = pacer.send([packets.stream_frame(b"y", False, 1, 0)], kbps=20.0)
        released += sum(is_object(d) for d in out)
        frames += 1
    assert released == len(big) and 10 <= frames <= 25  # ~4.1 KB at 6.25 KB/s, 25 fps
    assert pacer.send([frame], kbps=20.0) == [frame]  # no credit saved up meanwhile


def test_the_oldest_objects_go_when_the_queue_outgrows_its_bound():
    packets = Packetizer(1)
    pacer = Pacer(fps=25.0)
    for ref_id in range(10):  # 40 KB of pictures into a 4 kbit/s pace
        pacer.send(picture(packets, ref_id, 4000), kbps=4.0)
    assert pacer.waiting <= MIN_ROOM
    assert pacer.queue[-1][0][1] == 9 and len(pacer.queue[-1][1]) == 4  # the newest, whole
    assert pacer.dropped > 0 and all(len(f) == 4 for _, f in pacer.queue)
