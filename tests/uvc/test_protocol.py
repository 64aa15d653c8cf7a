"""UVC class requests answered from the tables: probe/commit, controls, and stalls for
everything else (the host side of the same code runs in tests/vm/test_uvc_gadget.py)."""

from __future__ import annotations

import random
import struct

import pytest

from appliance.hw.profile import load_profiles
from appliance.uvc.modes import modes_for
from appliance.uvc.protocol import (
    ERR_INVALID_CONTROL,
    ERR_INVALID_REQUEST,
    ERR_INVALID_UNIT,
    ERR_NONE,
    ERR_OUT_OF_RANGE,
    ERR_WRONG_STATE,
    GET_CUR,
    GET_DEF,
    GET_INFO,
    GET_LEN,
    GET_MAX,
    GET_MIN,
    GET_RES,
    SET_CUR,
    Negotiation,
    RequestHandler,
    Setup,
    StreamingControl,
    default_controls,
)

CONTROL_IF, STREAMING_IF = 0, 1
CLASS_IN, CLASS_OUT = 0xA1, 0x21  # class request to an interface


def handler(commits: list | None = None) -> RequestHandler:
    profile = next(p for p in load_profiles() if p.name == "generic-x86")
    assert profile.uvc is not None
    negotiation = Negotiation(modes_for(profile.uvc), 3072)
    on_commit = (lambda c, m: commits.append((c, m))) if commits is not None else None
    return RequestHandler(negotiation, default_controls(), CONTROL_IF, STREAMING_IF, on_commit)


def streaming(request: int, selector: int, length: int) -> Setup:
    kind = CLASS_OUT if request == SET_CUR else CLASS_IN
    return Setup(kind, request, selector << 8, STREAMING_IF, length)


def control(request: int, entity: int, selector: int, length: int) -> Setup:
    kind = CLASS_OUT if request == SET_CUR else CLASS_IN
    return Setup(kind, request, selector << 8, (entity << 8) | CONTROL_IF, length)


def error_code(h: RequestHandler) -> int:
    return h.setup(control(GET_CUR, 0, 0x02, 1)).data[0]


@pytest.mark.parametrize("size", [26, 34, 48])
def test_the_streaming_control_packs_to_each_uvc_version_and_back(size: int) -> None:
    control_in = StreamingControl(bmHint=1, bFormatIndex=2, bFrameIndex=3, dwFrameInterval=333333,
                                  dwMaxVideoFrameSize=614400, dwMaxPayloadTransferSize=3072,
                                  dwClockFrequency=48_000_000, bmFramingInfo=3)  # fmt: skip
    data = control_in.pack(size)
    assert len(data) == size
    back = StreamingControl.unpack(data)
    assert (back.bFormatIndex, back.bFrameIndex, back.dwFrameInterval) == (2, 3, 333333)
    assert back.dwMaxPayloadTransferSize == 3072
    assert back.dwClockFrequency == (48_000_000 if size >= 34 else 0)
    with pytest.raises(ValueError, match="26"):
        StreamingControl.unpack(data[:20])


def test_probe_answers_the_nearest_supported_mode_and_commit_fixes_it() -> None:
    commits: list = []
    h = handler(commits)
    # The host proposes YUYV (format 2) 1280x720 (frame 2) at 30 fps: only 10 fps exists.
    wanted = StreamingControl(bFormatIndex=2, bFrameIndex=2, dwFrameInterval=333333)
    assert h.setup(streaming(SET_CUR, 1, 34)).accept == 34
    assert h.data(wanted.pack(34))
    got = StreamingControl.unpack(h.setup(streaming(GET_CUR, 1, 34)).data)
    assert (got.bFormatIndex, got.bFrameIndex, got.dwFrameInterval) == (2, 2, 1_000_000)
    assert got.dwMaxVideoFrameSize == 1280 * 720 * 2
    assert got.dwMaxPayloadTransferSize == 3072
    # A format that does not exist falls back to the first one, frame and interval too.
    h.setup(streaming(SET_CUR, 1, 26))
    h.data(StreamingControl(bFormatIndex=9, bFrameIndex=7, dwFrameInterval=1).pack(26))
    got = StreamingControl.unpack(h.setup(streaming(GET_CUR, 1, 26)).data)
    assert (got.bFormatIndex, got.bFrameIndex, got.dwFrameInterval) == (1, 1, 333333)
    # MIN/MAX give the fastest and slowest interval of the mode being probed.
    assert (
        StreamingControl.unpack(h.setup(streaming(GET_MIN, 1, 34)).data).dwFrameInterval == 333333
    )
    assert (
        StreamingControl.unpack(h.setup(streaming(GET_MAX, 1, 34)).data).dwFrameInterval == 666667
    )
    assert StreamingControl.unpack(h.setup(streaming(GET_DEF, 1, 34)).data).bFrameIndex == 1
    assert h.setup(streaming(GET_LEN, 1, 2)).data == (34).to_bytes(2, "little")
    assert h.setup(streaming(GET_INFO, 1, 1)).data == b"\x03"

    h.setup(streaming(SET_CUR, 2, 34))
    assert h.data(StreamingControl(bFormatIndex=1, bFrameIndex=3, dwFrameInterval=666667).pack(34))
    committed, mode = commits[-1]
    assert (mode.fourcc, mode.width, mode.height) == ("MJPG", 640, 480)
    assert committed.dwFrameInterval == 666667
    assert StreamingControl.unpack(h.setup(streaming(GET_CUR, 2, 34)).data) == committed


def test_controls_answer_every_get_and_apply_set_cur() -> None:
    h = handler()
    seen: list[int] = []
    h.controls[(2, 0x02)].on_change = seen.append
    brightness = {req: h.setup(control(req, 2, 0x02, 2)).data for req in
                  (GET_CUR, GET_MIN, GET_MAX, GET_RES, GET_DEF)}  # fmt: skip
    assert {r: struct.unpack("<h", d)[0] for r, d in brightness.items()} == {
        GET_CUR: 0, GET_MIN: -64, GET_MAX: 64, GET_RES: 1, GET_DEF: 0,
    }  # fmt: skip
    assert h.setup(control(GET_INFO, 2, 0x02, 1)).data == b"\x03"
    assert h.setup(control(GET_LEN, 2, 0x02, 2)).data == b"\x02\x00"
    assert h.setup(control(SET_CUR, 2, 0x02, 2)).accept == 2
    assert h.data(struct.pack("<h", -20))
    assert seen == [-20]
    assert struct.unpack("<h", h.setup(control(GET_CUR, 2, 0x02, 2)).data)[0] == -20
    # Zoom on the camera terminal drives the framing.
    assert h.setup(control(SET_CUR, 1, 0x0B, 2)).accept == 2
    assert h.data(struct.pack("<H", 150)) and h.controls[(1, 0x0B)].value == 150


def test_an_out_of_range_value_changes_nothing_and_says_why() -> None:
    h = handler()
    seen: list[int] = []
    h.controls[(2, 0x03)].on_change = seen.append
    h.setup(control(SET_CUR, 2, 0x03, 2))
    assert not h.data(struct.pack("<H", 101))
    assert h.controls[(2, 0x03)].value == 50 and seen == []
    assert error_code(h) == ERR_OUT_OF_RANGE
    assert error_code(h) == ERR_NONE  # read once, then cleared


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (Setup(0x80, 0x06, 0x0100, 0, 18), ERR_INVALID_REQUEST),  # a standard request
        (control(GET_CUR, 9, 0x02, 2), ERR_INVALID_UNIT),  # no such entity
        (control(GET_CUR, 2, 0x0F, 2), ERR_INVALID_CONTROL),  # hue: not implemented
        (control(SET_CUR, 2, 0x02, 4), ERR_INVALID_REQUEST),  # wrong length for brightness
        (control(0x99, 2, 0x02, 2), ERR_INVALID_REQUEST),  # no such request code
        (streaming(SET_CUR, 1, 10), 0x08),  # a probe of no UVC version's size
        (streaming(GET_CUR, 6, 1), ERR_INVALID_CONTROL),  # stream error code: not kept
        (streaming(GET_RES, 1, 34), ERR_INVALID_REQUEST),
        (Setup(CLASS_IN, GET_CUR, 0x0100, 5, 2), ERR_INVALID_UNIT),  # another interface
    ],
)
def test_malformed_or_unexpected_requests_stall_deliberately(request_: Setup, why: int) -> None:
    h = handler()
    reply = h.setup(request_)
    assert reply.stall
    assert h.stalls == 1
    assert error_code(h) == why


def test_data_without_a_set_is_refused() -> None:
    h = handler()
    assert not h.data(b"\x01\x02")
    assert error_code(h) == ERR_WRONG_STATE


def test_garbage_never_raises_and_leaves_the_tables_valid() -> None:
    h = handler()
    rng = random.Random(7)
    for _ in range(5000):
        raw = bytes(rng.randrange(256) for _ in range(8))
        if rng.random() < 0.5:  # aim some at the real interfaces and entities
            raw = bytes([rng.choice((CLASS_IN, CLASS_OUT)), rng.choice((1, 0x81, 0x82, 0x86)),
                         0, rng.randrange(1, 12), rng.choice((0, 1)), rng.choice((0, 1, 2)),
                         rng.randrange(60), 0])  # fmt: skip
        reply = h.setup(Setup.unpack(raw))
        if reply.accept:
            h.data(bytes(rng.randrange(256) for _ in range(rng.randrange(61))))
    for c in h.controls.values():
        assert c.value is not None and c.accepts(c.value)
    assert h.negotiation.mode(h.negotiation.probe)  # still a real mode
