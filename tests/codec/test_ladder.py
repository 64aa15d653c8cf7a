"""The hybrid's ladder and the controller that walks it, on made-up costs and on a real
stream that changes rung mid-call."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from appliance.codec.ladder import (
    TABLE,
    UNTRIED,
    RateController,
    expected_kbps,
    ladder_for,
    start_rung,
)
from appliance.codec.session import CodecSettings, Receiver, Sender

FPS = 25.0
SIZE = (512, 512)
LADDER = ladder_for(*SIZE, FPS)


def run(controller: RateController, kbps: float, seconds: float) -> list[int]:
    """Feed frames costing ``kbps`` whatever the rung; the rung index after each."""
    per_frame = round(kbps * 1000 / 8 / FPS)
    out = []
    start = getattr(controller, "frame", 0)
    for i in range(round(seconds * FPS)):
        controller.sent(per_frame, start + i)
        out.append(controller.index)
    controller.frame = start + round(seconds * FPS)
    return out


def test_the_ladder_goes_from_cheap_to_rich_in_each_family():
    costs = [expected_kbps(step, *SIZE, FPS) for step in LADDER]
    assert costs == sorted(costs)
    for family in (True, False):  # fused, full size
        quality = [step.ms_ssim for step in LADDER if bool(step.rung.side) == family]
        assert len(quality) >= 3 and all(b > a for a, b in itertools.pairwise(quality))
    best = max(range(len(LADDER)), key=lambda i: LADDER[i].ms_ssim)
    assert start_rung(LADDER, 1.0, *SIZE, FPS) == 0  # nothing fits: the cheapest
    assert start_rung(LADDER, 1e6, *SIZE, FPS) == best
    # the best that fits, whichever family
    fits = [i for i in range(len(LADDER)) if costs[i] <= 20.0]
    assert start_rung(LADDER, 20.0, *SIZE, FPS) == max(fits, key=lambda i: LADDER[i].ms_ssim)


def test_the_full_size_comes_earlier_on_a_small_frame_than_on_a_large_one():
    def first_full(width: int, height: int) -> float:
        ladder = ladder_for(width, height, FPS)
        return next(expected_kbps(s, width, height, FPS) for s in ladder if s.rung.side == 0)

    small, reference, large = first_full(320, 240), first_full(*SIZE), first_full(1280, 720)
    assert small < reference < large
    assert {s.rung for s in ladder_for(320, 240, FPS)} <= {s.rung for s in TABLE}
    assert ladder_for(320, 240, FPS) != LADDER  # a ladder per size, not one for all
    # at the reference size and rate the table's own figures come back
    assert expected_kbps(TABLE[-1], *SIZE, 27.5) == pytest.approx(TABLE[-1].kbps)


def test_over_the_target_it_drops_at_once_to_the_rung_that_fits_and_settles():
    controller = RateController(60.0, *SIZE, FPS)
    controller.index = start = start_rung(LADDER, 60.0, *SIZE, FPS)  # as if it had climbed there
    # the content costs twice the table's figure at every rung: too rich for the target;
    # the other family, not yet sent, is assumed UNTRIED times dearer still
    family = bool(LADDER[start].rung.side)
    ratio = [2.0 if bool(s.rung.side) == family else 2.0 * UNTRIED for s in LADDER]
    cost = [expected_kbps(step, *SIZE, FPS) * r for step, r in zip(LADDER, ratio, strict=True)]
    indices = []
    for frame in range(round(4 * FPS)):
        index = controller.index
        controller.sent(round(cost[index] * 1000 / 8 / FPS), frame)
        indices.append(controller.index)
    fits = [i for i in range(len(LADDER)) if cost[i] <= 60.0]
    best = max(fits, key=lambda i: LADDER[i].ms_ssim)
    assert indices[0] == start and indices[-1] == best  # one judgement, one move
    assert controller.changes == 1


def test_under_the_target_it_steps_up_while_the_next_rung_fits():
    controller = RateController(200.0, *SIZE, FPS)
    controller.index = 0  # started low (the stream was cheaper than feared)
    cost = expected_kbps(LADDER[0], *SIZE, FPS)
    indices = run(controller, cost, seconds=10.0)
    quality = [LADDER[i].ms_ssim for i in indices]
    assert indices[-1] > 0 and controller.changes >= 2 and quality == sorted(quality)
    # never better than the rung whose table cost fits under the target
    assert max(quality) <= LADDER[start_rung(LADDER, 200.0 * 0.8, *SIZE, FPS)].ms_ssim


def test_a_new_target_is_judged_at_once_and_bad_targets_are_refused():
    controller = RateController(200.0, *SIZE, FPS)
    run(controller, 190.0, seconds=2.0)
    before = controller.index
    controller.retarget(10.0)
    controller.sent(round(190.0 * 1000 / 8 / FPS), controller.frame)
    assert controller.index < before and controller.changes >= 1
    with pytest.raises(ValueError):
        RateController(0.0, *SIZE, FPS)


def test_a_call_changes_rung_mid_stream_and_the_receiver_follows(talking_head):
    width, height = talking_head.size
    # fused rungs only (9 kbit/s, then 20: the full-size family, not yet sent, is
    # assumed too dear for 20), so that pictures are sent and followed
    sender = Sender(width, height, talking_head.fps, CodecSettings(target_kbps=9.0), stream=9)
    receiver = Receiver()
    rungs, in_step = [], 0
    for index, frame in enumerate(talking_head.frames[:90]):
        if index == 30:
            sender.controller.retarget(20.0)  # the network got better
        held = set(receiver.streams.pictures)  # before this frame's datagrams
        for datagram in sender.send(frame, talking_head.landmarks[index], index):
            receiver.feed(datagram)
        rungs.append(sender.stream_sender.rung)
        # pictures and keys are paced, so the receiver lags at first and after a change
        # (and shows a key's frames upscaled until its picture is in); whenever it shows
        # the newest frame with its picture, it is the sender's very picture
        newest = receiver.frame_seq == (sender.packets.peek("frames") - 1) % (1 << 16)
        key = receiver.streams.keys.get(receiver._chain_ref)
        if newest and key is not None and key[0] in held:
            assert np.array_equal(receiver.picture, sender.shown), f"frame {index}"
            in_step += 1
    sender.close()
    assert len(set(rungs)) >= 2 and receiver.stats.errors == 0
    assert sender.stream_sender.counts["keys"] >= 2  # a new rung starts with a key frame
    sent = sender.stream_sender.counts["frames"]  # the cheap rungs send 7.5 to 15 fps
    assert receiver.stats.frames >= 0.8 * sent and in_step >= 10


def test_each_family_is_scaled_by_what_it_really_cost_and_an_untried_one_cautiously():
    controller = RateController(30.0, *SIZE, FPS)
    fused = next(i for i, s in enumerate(LADDER) if s.rung.side and s.ms_ssim > 0.9)
    full = next(i for i, s in enumerate(LADDER) if not s.rung.side)
    controller.index = fused
    run(controller, expected_kbps(LADDER[fused], *SIZE, FPS), seconds=2.0)  # as the table
    assert controller._scaled(full) == pytest.approx(UNTRIED * controller._cost(full))
    controller.index, controller._judge_at = full, None
    controller._sent.clear()
    dear = 4.0 * expected_kbps(LADDER[full], *SIZE, FPS)  # a detailed scene
    controller.retarget(1000.0)  # room for anything: only the scale is looked at
    run(controller, dear, seconds=2.0)
    assert controller._ratio[True] == pytest.approx(4.0, rel=0.05)
    assert controller._ratio[False] == pytest.approx(1.0, rel=0.05)  # fused: as it was
