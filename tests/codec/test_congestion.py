"""The receiver's reports and the sender's estimate: on made-up reports, and a real call
through a simulated bottleneck whose capacity drops mid-call."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import numpy as np

from appliance.codec.bitstream import Packet, Packetizer, PacketType, Report, parse
from appliance.codec.congestion import FLOOR_KBPS, ArrivalMonitor, BandwidthEstimator
from appliance.codec.session import CodecSettings, Receiver, Sender


def report(kbps: float, lost: int = 0, delay_ms: int = 0) -> Report:
    return Report(500, round(kbps * 500 / 8), 50, lost, delay_ms)


def test_reports_round_trip_and_only_the_sender_reads_them():
    packets = Packetizer(5)
    datagram = packets.report(Report(500, 1234, 40, 2, -7), 99)
    packet = parse(datagram)
    assert packet.type == PacketType.REPORT and packet.payload == Report(500, 1234, 40, 2, -7)
    receiver = Receiver()
    assert receiver.feed(datagram) is False and receiver.tracker.stats.foreign == 1


def test_the_monitor_counts_losses_and_a_growing_delay():
    monitor = ArrivalMonitor(interval_s=0.5)
    packets = Packetizer(5)
    for i in range(25):
        datagram = packets.stream_frame(b"x" * 30, False, 1, (i * 40) % (1 << 16))
        if i % 5 == 4:
            continue  # lost on the way
        # each packet waits 2 ms longer than the one before: a queue is filling
        monitor.arrived(parse(datagram), len(datagram), 1000.0 + i * 40 + 2 * i)
    assert monitor.report(1400.0) is None  # the interval is not over
    got = monitor.report(1600.0)
    assert got is not None and got.received == 20 and got.lost == 4
    assert got.bytes == 20 * len(datagram) and got.interval_ms == 600
    assert 40 <= got.delay_ms <= 50  # 2 ms per packet over 23 packets
    silence = monitor.report(2200.0)  # nothing arrived since: said so
    assert silence is not None and silence.received == 0 and silence.bytes == 0


def test_the_estimate_falls_on_a_filling_queue_and_on_loss_and_grows_when_clear():
    estimator = BandwidthEstimator(100.0, start_kbps=50.0)
    assert estimator.update(report(48.0, delay_ms=40)) == 0.85 * 48.0
    assert estimator.state == "overuse"
    before = estimator.kbps
    assert estimator.update(report(40.0, lost=10)) < before and estimator.state == "loss"
    before = estimator.kbps
    assert estimator.update(report(40.0, lost=3)) == before and estimator.state == "hold"
    grown = [estimator.update(report(40.0)) for _ in range(30)]
    assert all(b >= a for a, b in itertools.pairwise(grown))
    assert grown[-1] <= 1.5 * 40.0 + 8.0  # never far past what actually arrives
    before = estimator.kbps
    assert estimator.update(Report(500, 0, 0, 0, 0)) == before / 2  # nothing got through
    for _ in range(50):
        estimator.update(report(1.0, lost=40))
    assert estimator.kbps == FLOOR_KBPS


def test_a_quiet_stream_reads_a_few_ms_of_growth_as_its_own_frames_not_a_queue():
    from appliance.codec.congestion import CLEAR_OVERUSE_MS, OVERUSE_MS

    estimator = BandwidthEstimator(100.0, start_kbps=50.0)
    # sending a fifth of the estimate: one big frame's serialization, not a filling queue
    estimator.update(report(10.0, delay_ms=round(OVERUSE_MS) + 3))
    assert estimator.state == "hold" and estimator.kbps == 50.0
    # a link that fell far below the stream: the delay grows by a lot, whatever the rate
    assert estimator.update(report(10.0, delay_ms=round(CLEAR_OVERUSE_MS) + 1)) == 0.85 * 10.0
    assert estimator.state == "overuse"


@dataclass(order=True)
class Delivery:
    at: float
    order: int
    datagram: bytes = field(compare=False)


class Bottleneck:
    """A FIFO link of ``kbps`` with a 400 ms queue (tail drop) and 20 ms propagation."""

    def __init__(self, kbps: float) -> None:
        self.kbps = kbps
        self.free_at = 0.0  # when the link finishes what it holds
        self.queue: list[Delivery] = []
        self.count = 0
        self.dropped = 0

    def send(self, datagram: bytes, now: float) -> None:
        start = max(now, self.free_at)
        if start - now > 0.4:
            self.dropped += 1
            return
        self.free_at = start + len(datagram) * 8 / (self.kbps * 1000)
        self.count += 1
        heapq.heappush(self.queue, Delivery(self.free_at + 0.02, self.count, datagram))

    def arrived(self, now: float) -> list[Delivery]:
        out = []
        while self.queue and self.queue[0].at <= now:
            out.append(heapq.heappop(self.queue))
        return out


def test_a_call_follows_a_bottleneck_down_and_back_up(talking_head):
    fps = talking_head.fps
    frames = [*talking_head.frames, *talking_head.frames[::-1]] * 3  # 720 frames, 28.8 s
    points = [*talking_head.landmarks, *talking_head.landmarks[::-1]] * 3
    width, height = talking_head.size
    sender = Sender(width, height, fps, CodecSettings(target_kbps=80.0), stream=0x6363)
    receiver = Receiver(request_interval=0.2)
    link = Bottleneck(kbps=60.0)
    sent_kbps = []  # per second
    second = 0
    for index, frame in enumerate(frames):
        now = index / fps
        if index == round(10 * fps):
            link.kbps = 15.0  # the network gets worse ...
        if index == round(20 * fps):
            link.kbps = 60.0  # ... and better again
        for datagram in sender.send(frame, points[index], index):
            link.send(datagram, now)
            second += len(datagram)
        for delivery in link.arrived(now):
            receiver.feed(delivery.datagram, now=delivery.at)
        for datagram in receiver.requests(now=now):
            sender.feedback(datagram)
        if (index + 1) % round(fps) == 0:
            sent_kbps.append(second * 8 / 1000)
            second = 0
    sender.close()
    # the two drops each freeze the picture for 2-3 s while the link's queue drains
    # (0.80 of the frames sent are shown here; rungs send 7.5 fps to every frame)
    sent = sender.stream_sender.counts["frames"]
    assert receiver.stats.faults == 0 and receiver.stats.frames > 0.75 * sent
    before, during, after = sent_kbps[6:10], sent_kbps[15:20], sent_kbps[26:]
    assert np.median(before) > 20.0  # it used the good network
    assert np.median(during) <= 15.0 * 1.1  # it fitted the bad one within about 5 s
    assert np.median(after) > np.median(during)  # and came back up
    assert sender.estimator is not None and sender.estimator.state != "start"
    assert isinstance(parse(receiver._packets.report(report(1.0), 0)), Packet)
