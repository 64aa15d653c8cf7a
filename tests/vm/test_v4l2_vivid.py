"""V4L2 capture against the real kernel: the project's V4L2 code and the vivid driver.

vivid ("Virtual Video Test Driver") behaves like a webcam: its "Webcam" input offers
discrete frame sizes and intervals, many raw pixel formats (YUYV among them, no MJPEG),
and paints a colour-bar test pattern. It also has an error-injection control,
"Disconnect", that makes the node behave as an unplugged USB camera does (every ioctl
then answers ENODEV, poll() answers POLLERR|POLLHUP) until the last user closes it.

Everything runs in one guest boot (``guest_checks``, executed inside the VM from this
very file); each host-side test asserts on one part of the JSON it returns, so a failure
names the check and shows what the guest saw.
"""

from __future__ import annotations

import ctypes
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import scaled
from tests.vm.guest import check

if TYPE_CHECKING:
    from tests.vm.harness import VM, VMResult

pytestmark = pytest.mark.slow

# One capture node (node_types bit 0), one input of type 0 = "Webcam" (two bits per input).
VIVID = "vivid n_devs=1 node_types=0x1 num_inputs=1 input_types=0x0"

# vivid's default pattern, 75% colour bars, left to right, as BGR after YUYV decoding.
BARS = {
    "white": (191, 191, 191),
    "yellow": (0, 191, 191),
    "cyan": (191, 191, 0),
    "green": (0, 191, 0),
    "magenta": (191, 0, 191),
    "red": (0, 0, 191),
    "blue": (191, 0, 0),
    "black": (0, 0, 0),
}
BAR_TOLERANCE = 24  # per channel: measured within 3; a wrong byte order is off by ~190


# ---------------------------------------------------------------- in the guest


class v4l2_queryctrl(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("name", ctypes.c_char * 32),
        ("minimum", ctypes.c_int32),
        ("maximum", ctypes.c_int32),
        ("step", ctypes.c_int32),
        ("default_value", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 2),
    ]


class v4l2_control(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint32), ("value", ctypes.c_int32)]


V4L2_CTRL_FLAG_NEXT_CTRL = 0x80000000
V4L2_CTRL_TYPE_BUTTON = 4


def _find_control(device: Any, name: str) -> int | None:
    """The id of the control called ``name``, by VIDIOC_QUERYCTRL enumeration."""
    from appliance.platform import v4l2

    request = v4l2._IOWR("V", 36, v4l2_queryctrl)  # VIDIOC_QUERYCTRL
    query = v4l2_queryctrl(id=V4L2_CTRL_FLAG_NEXT_CTRL)
    for _ in range(1024):
        try:
            device._ioctl("VIDIOC_QUERYCTRL", request, query)
        except v4l2.V4L2Error:
            return None  # EINVAL: past the last control
        if query.name.decode() == name and query.type == V4L2_CTRL_TYPE_BUTTON:
            return int(query.id)
        query.id |= V4L2_CTRL_FLAG_NEXT_CTRL
    return None


def _press(device: Any, control_id: int) -> None:
    from appliance.platform import v4l2

    request = v4l2._IOWR("V", 28, v4l2_control)  # VIDIOC_S_CTRL
    device._ioctl("VIDIOC_S_CTRL", request, v4l2_control(id=control_id, value=0))


def _bar_colours(image: Any, row: int) -> list[list[int]]:
    """The mean BGR of the middle half of each of 8 equal-width bars, ``row`` +- 8 lines."""
    height, width = image.shape[:2]
    band = image[max(0, row - 8) : min(height, row + 8)]
    colours = []
    for i in range(8):
        left, right = (i * width) // 8, ((i + 1) * width) // 8
        quarter = (right - left) // 4
        cell = band[:, left + quarter : right - quarter].reshape(-1, 3)
        colours.append([round(float(v)) for v in cell.mean(axis=0)])
    return colours


def guest_checks() -> dict[str, Any]:
    """Runs inside the VM, vivid loaded: every check, its findings as JSON-able data."""
    from appliance.capture.base import SourceError
    from appliance.capture.v4l2 import V4L2Source, describe_capture_devices
    from appliance.platform import v4l2

    results: dict[str, Any] = {}
    nodes = describe_capture_devices()
    path = next((p for p, card in nodes if "vivid" in card.lower()), "")

    def devices() -> dict[str, Any]:
        return {"nodes": nodes, "path": path}

    def formats() -> dict[str, Any]:
        with v4l2.Device(path) as device:
            listed = device.formats()
            pix = device.get_format()
        return {
            "formats": [
                [code, desc, [[w, h, rates] for w, h, rates in sizes]]
                for code, desc, sizes in listed
            ],
            "default": [int(pix.width), int(pix.height), v4l2.fourcc_str(pix.pixelformat)],
        }

    def capture() -> dict[str, Any]:
        source = V4L2Source(path, 640, 480, 30, prefer=("MJPG", "YUYV"))
        source.open()
        try:
            mode = [source._mode.fourcc, *source.size, source.fps, source._bytesperline]
            started = time.monotonic()
            frames = [source.read(timeout=scaled(5.0)) for _ in range(10)]
            elapsed = time.monotonic() - started
        finally:
            source.close()
        got = [f for f in frames if f is not None]
        last = got[-1].image if got else None
        return {
            "mode": mode,
            "frames": len(got),
            "seconds_for_10": round(elapsed, 2),
            "shapes": sorted({str(f.image.shape) for f in got}),
            "dtypes": sorted({str(f.image.dtype) for f in got}),
            "sequences": [f.meta["driver_sequence"] for f in got],
            "timestamps": [f.meta["driver_timestamp"] for f in got],
            "seqs": [f.seq for f in got],
            "std": round(float(last.std()), 1) if last is not None else 0.0,
            # Two bands far apart: a wrong stride shears the bars, so they would differ.
            "bars_upper": _bar_colours(last, 200) if last is not None else [],
            "bars_lower": _bar_colours(last, 400) if last is not None else [],
        }

    def reopen() -> dict[str, Any]:
        # Open, read, close, twice: a close that leaked the fd or the buffers would leave the
        # queue owned, and the next open's REQBUFS would answer EBUSY.
        shapes = []
        for _ in range(2):
            source = V4L2Source(path, 640, 480, 30)
            source.open()
            try:
                frame = source.read(timeout=scaled(5.0))
                shapes.append(None if frame is None else list(frame.image.shape))
            finally:
                source.close()
        # And stop/start on one open fd: REQBUFS 0 after munmap must really free the
        # buffers, or the second REQBUFS answers EBUSY.
        with v4l2.Device(path) as device:
            device.set_format(320, 180, "YUYV")
            counts = [device.start(4)]
            first = device.dequeue(5.0)
            device.stop()
            counts.append(device.start(3))
            second = device.dequeue(5.0)
            device.stop()
        return {
            "shapes": shapes,
            "buffer_counts": counts,
            "dequeued": [b is not None for b in (first, second)],
        }

    def disconnect() -> dict[str, Any]:
        with v4l2.Device(path) as probe:
            control_id = _find_control(probe, "Disconnect")
        if control_id is None:
            raise RuntimeError("vivid offers no 'Disconnect' button control")
        source = V4L2Source(path, 640, 480, 30)
        source.open()
        outcome: dict[str, Any] = {"control_id": hex(control_id), "frames_before": 0}
        streaming = threading.Event()

        def reader() -> None:
            # Like the daemon's capture thread: read until the source fails.
            try:
                for _ in range(200):
                    if source.read(timeout=scaled(2.0)) is not None:
                        outcome["frames_before"] += 1
                        streaming.set()
                outcome["error"] = None
            except SourceError as exc:
                outcome["error"] = str(exc)
                outcome["error_at"] = time.monotonic()

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        if not streaming.wait(10.0):
            raise RuntimeError("no frame before the disconnect")
        control = v4l2.Device(path)
        pressed = time.monotonic()
        _press(control, control_id)
        thread.join(15.0)
        outcome["reader_stopped"] = not thread.is_alive()
        if "error_at" in outcome:
            outcome["error_after_s"] = round(outcome.pop("error_at") - pressed, 2)
        # While unplugged (a control fd still open): no capture node can be opened.
        outcome["nodes_while_gone"] = describe_capture_devices()
        try:
            V4L2Source(path, 640, 480, 30).open()
            outcome["open_while_gone"] = "opened"
        except SourceError as exc:
            outcome["open_while_gone"] = str(exc)
        control.close()
        # vivid "replugs" when the last user closes: capture must work again.
        source = V4L2Source(path, 640, 480, 30)
        source.open()
        try:
            outcome["frame_after_replug"] = source.read(timeout=scaled(5.0)) is not None
        finally:
            source.close()
        return outcome

    def unload() -> dict[str, Any]:
        # The module cannot go while a node is open; once everything is closed (no fd, no
        # mapping left behind by the code under test) rmmod must succeed.
        source = V4L2Source(path, 640, 480, 30)
        source.open()
        busy = subprocess.run(["rmmod", "vivid"], capture_output=True, text=True)
        source.close()
        gone = subprocess.run(["rmmod", "vivid"], capture_output=True, text=True)
        outcome: dict[str, Any] = {
            "rmmod_while_open": [busy.returncode, busy.stderr.strip()],
            "rmmod_after_close": [gone.returncode, gone.stderr.strip()],
            "nodes_after": describe_capture_devices(),
        }
        try:
            V4L2Source(path, 640, 480, 30).open()
            outcome["open_after"] = "opened"
        except SourceError as exc:
            outcome["open_after"] = str(exc)
        return outcome

    check(results, "devices", devices)
    if path:
        for name, fn in [
            ("formats", formats),
            ("capture", capture),
            ("reopen", reopen),
            ("disconnect", disconnect),
            ("unload", unload),  # last: it removes the driver
        ]:
            check(results, name, fn)
    return results


# ---------------------------------------------------------------- on the host


@pytest.fixture(scope="module")
def guest(vm: VM) -> tuple[dict[str, Any], VMResult]:
    return vm.call(__file__, "guest_checks", modules=[VIVID], timeout=150)


def _part(guest: tuple[dict[str, Any], VMResult], name: str) -> dict[str, Any]:
    data, run = guest
    part = data.get(name)
    assert part is not None, f"guest did not run {name!r}\n{run.describe()}"
    assert part["ok"], f"guest check {name!r} raised:\n{part['error']}\n{run.describe()}"
    return dict(part)


def test_vivid_node_is_listed(guest: tuple[dict[str, Any], VMResult]) -> None:
    part = _part(guest, "devices")
    assert part["path"].startswith("/dev/video"), part


def test_formats_enumerated(guest: tuple[dict[str, Any], VMResult]) -> None:
    part = _part(guest, "formats")
    formats = {code: sizes for code, _desc, sizes in part["formats"]}
    assert "YUYV" in formats, sorted(formats)
    sizes = {(w, h): rates for w, h, rates in formats["YUYV"]}
    assert (640, 480) in sizes, sorted(sizes)
    assert sizes[(640, 480)], "no frame rates listed for 640x480"
    assert all(rate > 0 for rate in sizes[(640, 480)])


def test_capture_yuyv_colour_bars(guest: tuple[dict[str, Any], VMResult]) -> None:
    part = _part(guest, "capture")
    fourcc, width, height, fps, bytesperline = part["mode"]
    assert (fourcc, width, height) == ("YUYV", 640, 480), part["mode"]
    assert fps > 0 and bytesperline >= 2 * width, part["mode"]
    assert part["frames"] == 10, part
    assert part["shapes"] == ["(480, 640, 3)"] and part["dtypes"] == ["uint8"], part
    assert part["seconds_for_10"] < 10, part
    assert part["seqs"] == list(range(1, 11)), part["seqs"]
    assert part["sequences"] == sorted(set(part["sequences"])), part["sequences"]
    assert part["timestamps"] == sorted(part["timestamps"]), part["timestamps"]
    assert part["std"] > 30, "the frame is (nearly) uniform"
    for band in ("bars_upper", "bars_lower"):
        for (name, want), got in zip(BARS.items(), part[band], strict=True):
            off = max(abs(a - b) for a, b in zip(want, got, strict=True))
            assert off <= BAR_TOLERANCE, f"{band}: {name} bar is {got}, expected ~{want}"


def test_close_releases_buffers(guest: tuple[dict[str, Any], VMResult]) -> None:
    part = _part(guest, "reopen")
    assert part["shapes"] == [[480, 640, 3]] * 2, part
    assert all(count >= 1 for count in part["buffer_counts"]), part
    assert part["dequeued"] == [True, True], part


def test_disconnect_raises_source_error(guest: tuple[dict[str, Any], VMResult]) -> None:
    part = _part(guest, "disconnect")
    assert part["frames_before"] >= 1, part
    assert part["reader_stopped"], f"read() kept going after the disconnect: {part}"
    assert part["error"] and "disconnected" in part["error"], part
    assert part["error_after_s"] < 5, part
    assert part["nodes_while_gone"] == [], part
    assert part["open_while_gone"] != "opened", part
    assert part["frame_after_replug"], part


def test_unload_after_close(guest: tuple[dict[str, Any], VMResult]) -> None:
    part = _part(guest, "unload")
    assert part["rmmod_while_open"][0] != 0, f"rmmod succeeded with the node open: {part}"
    assert part["rmmod_after_close"][0] == 0, f"something still holds vivid: {part}"
    assert part["nodes_after"] == [], part
    assert part["open_after"] != "opened", part


def test_guest_kernel_stayed_healthy(guest: tuple[dict[str, Any], VMResult]) -> None:
    _data, run = guest
    for bad in ("BUG:", "Oops", "WARNING:", "general protection"):
        assert bad not in run.dmesg, f"{bad!r} in the guest's dmesg\n{run.describe()}"
