"""The codec end to end on a real clip: what the receiver shows, what it costs, and how it
survives a bad network."""

from __future__ import annotations

import random

import numpy as np
import pytest

from appliance.codec import metrics
from appliance.codec.bitstream import BitstreamError, Codec, PacketType, parse
from appliance.codec.keypoints import KeypointCodecModel
from appliance.codec.session import (
    CodecSettings,
    ObjectGaps,
    Receiver,
    Sender,
    pack_keypoint_data,
    unpack_keypoint_data,
)

FLOOR = 0.85


def run_lossless(clip, settings: CodecSettings):
    width, height = clip.size
    sender = Sender(width, height, clip.fps, settings, stream=0x1234)
    receiver = Receiver()
    shown = []
    for index, (frame, points) in enumerate(zip(clip.frames, clip.landmarks, strict=True)):
        for datagram in sender.send(frame, points, index, clip.iris[index]):
            assert len(datagram) <= settings.mtu
            receiver.feed(datagram)
        assert receiver.picture is not None
        assert np.array_equal(receiver.picture, sender.shown), f"frame {index} differs"
        shown.append(receiver.picture.copy())
    return sender, receiver, shown


def test_the_receiver_shows_exactly_what_the_sender_checked_and_the_floor_holds(talking_head):
    sender, receiver, shown = run_lossless(talking_head, CodecSettings(floor=FLOOR))
    triples = zip(talking_head.frames, shown, talking_head.landmarks, strict=True)
    qualities = [metrics.face_ms_ssim(frame, picture, points) for frame, picture, points in triples]
    assert min(qualities) >= FLOOR
    assert np.allclose(qualities, sender.stats.quality)
    s = sender.stats
    assert s.below_floor == 0 and receiver.stats.errors == 0
    assert receiver.stats.frames == len(talking_head.frames)
    assert s.keypoint_bytes / s.keypoint_packets < 120  # the Maxine figure, headers included
    # a reference at the start; the rest of the budget is what the loop needed
    assert s.references >= 1 and s.total_bytes == (
        s.keypoint_bytes + s.reference_bytes + s.residual_bytes
    )


def test_a_higher_floor_costs_more_bits_and_gives_a_better_face(talking_head):
    low = run_lossless(talking_head, CodecSettings(floor=0.80))[0]
    high = run_lossless(talking_head, CodecSettings(floor=0.90))[0]
    assert high.stats.total_bytes > low.stats.total_bytes
    assert np.mean(high.stats.quality) > np.mean(low.stats.quality)
    assert min(high.stats.quality) >= 0.90 and min(low.stats.quality) >= 0.80


def test_intra_packets_come_at_the_period(talking_head):
    period = 10
    width, height = talking_head.size
    sender = Sender(width, height, talking_head.fps, CodecSettings(intra_period=period,
                    closed_loop=False), stream=1)  # fmt: skip
    kinds = []
    for index in range(40):
        for datagram in sender.send(talking_head.frames[index], talking_head.landmarks[index],
                                    index):  # fmt: skip
            packet = parse(datagram)
            if packet.type in (PacketType.KEYPOINTS_INTRA, PacketType.KEYPOINTS_PREDICTED):
                kinds.append(packet.type == PacketType.KEYPOINTS_INTRA)
    assert len(kinds) == 40
    assert [i for i, intra in enumerate(kinds) if intra] == [0, 10, 20, 30]


class LossyChannel:
    """Drops, duplicates, reorders, truncates and invents datagrams (seeded)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.held: list[bytes] = []

    def pass_(self, datagrams: list[bytes], lossy: bool) -> list[bytes]:
        if not lossy:
            out, self.held = self.held + datagrams, []
            return out
        out = []
        for d in datagrams:
            r = self.rng.random()
            if r < 0.10:
                continue  # lost
            if r < 0.15:
                out += [d, d]  # duplicated
            elif r < 0.22:
                self.held.append(d)  # delayed: arrives with a later frame
            elif r < 0.25:
                out.append(d[: self.rng.randrange(len(d))])  # truncated
            else:
                out.append(d)
            if self.rng.random() < 0.05:
                out.append(self.rng.randbytes(self.rng.randrange(1, 60)))  # garbage
        if self.held and self.rng.random() < 0.5:
            out += self.held
            self.held = []
        self.rng.shuffle(out)
        return out


def lossy_call(
    sender: Sender, receiver: Receiver, clip, lossy_until: int, seed: int,
    frames: int | None = None,
) -> int | None:  # fmt: skip
    """The clip through a ``LossyChannel`` until frame ``lossy_until``, then a clean one,
    REQUESTs answered; the first frame from which the receiver shows exactly the
    sender's picture again (and keeps doing so), or None."""
    channel = LossyChannel(seed)
    exact_after = None
    for index, frame in enumerate(clip.frames[:frames]):
        sent = sender.send(frame, clip.landmarks[index], index, clip.iris[index])
        for datagram in channel.pass_(sent, index < lossy_until):
            receiver.feed(datagram)  # must never raise
        for request in receiver.requests(now=index / clip.fps):
            sender.feedback(request)
        same = receiver.picture is not None and np.array_equal(receiver.picture, sender.shown)
        if index >= lossy_until and same and exact_after is None:
            exact_after = index
        if exact_after is not None:
            assert same, f"frame {index}: the receiver drifted again after recovering"
    return exact_after


def test_loss_duplication_reordering_and_garbage_never_break_the_receiver(talking_head):
    width, height = talking_head.size
    settings = CodecSettings(floor=FLOOR, intra_period=15)
    sender = Sender(width, height, talking_head.fps, settings, stream=0x0BAD)
    receiver = Receiver(request_interval=0.2)
    lossy_until = 60
    exact_after = lossy_call(sender, receiver, talking_head, lossy_until, seed=3)
    t = receiver.tracker.stats
    assert t.garbage > 0 and t.duplicates > 0  # the channel really was bad ...
    assert receiver.stats.requests > 0  # ... the receiver asked for help ...
    assert exact_after is not None  # ... and shows the sender's picture again
    # within one refresh: an intra period, plus the round trip of a request
    assert exact_after - lossy_until <= settings.intra_period + 2


def test_reference_keypoint_data_round_trips_and_rejects_garbage():
    model = KeypointCodecModel.load()
    rng = np.random.default_rng(1)
    shape = rng.integers(-40, 40, 468 * 3).astype(np.int32)
    vector = rng.integers(-30, 30, model.size).astype(np.int32)
    data = pack_keypoint_data(model, shape, vector)
    back_shape, back_vector = unpack_keypoint_data(model, data)
    assert np.array_equal(back_shape, shape) and np.array_equal(back_vector, vector)
    for bad in (b"", data[:2], bytes([9]) + data[1:], data[:-3] + b"\xff\xff\xff"):
        with pytest.raises(BitstreamError):
            unpack_keypoint_data(model, bad)


def test_object_gaps_wait_for_reordered_packets_then_call_a_loss():
    gaps = ObjectGaps(patience=3)
    gaps.object_seen(10)
    gaps.object_seen(12)  # 11 is missing ...
    assert not gaps.tick()
    gaps.object_seen(11)  # ... only late
    assert not any(gaps.tick() for _ in range(5)) and gaps.lost == 0
    gaps.object_seen(14)  # 13 is missing for good
    assert [gaps.tick() for _ in range(5)] == [False, False, False, True, False]
    assert gaps.lost == 1


def test_bad_settings_and_frames_are_refused(talking_head):
    with pytest.raises(ValueError, match="floor"):
        CodecSettings(floor=1.5)
    with pytest.raises(ValueError, match="reference_quality"):
        CodecSettings(reference_quality=0)
    with pytest.raises(ValueError, match="residual_quality"):
        CodecSettings(residual_quality=0)
    with pytest.raises(ValueError, match="not PNG"):
        CodecSettings(reference_codec=Codec.PNG)
    assert CodecSettings(reference_quality=40).region_quality == 65  # follows the reference
    assert CodecSettings(reference_quality=90).region_quality == 100
    assert CodecSettings(residual_quality=30).region_quality == 30
    width, height = talking_head.size
    sender = Sender(width, height, talking_head.fps, stream=1)
    with pytest.raises(ValueError, match="the stream is"):
        sender.send(talking_head.frames[0][:, :100], talking_head.landmarks[0], 0)
    assert sender.send(talking_head.frames[0], None, 0) == []  # no face: nothing sent
    assert sender.stats.skipped == 1
