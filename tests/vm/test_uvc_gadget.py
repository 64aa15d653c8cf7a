"""The webcam against the real Linux UVC and USB audio stacks: gadget and host in one
guest kernel.

In one boot (``guest_checks``, run inside the VM from this file): ``appliance gadget
up`` builds the gadget from the generic-x86 profile and binds it to ``usbip-vudc``; the
daemon's UVC service runs its loop on the gadget's node; the UDC is looped back to the
same kernel's ``vhci-hcd`` through a socket pair, so Linux's ``uvcvideo`` enumerates
the camera as a host would. The host side's V4L2 then lists formats, sizes and
intervals, opens each format (probe/commit through the service), reads and writes
controls, streams on and off, and finally the cable is pulled (vhci detach). The same
gadget is a microphone (f_uac2): Linux's ``snd-usb-audio`` makes a capture device of it,
and the host reads and sets its controls.

What cannot cross usbip-vudc is the isochronous payload (the host sees -EXDEV), so the
bytes of the video (and of the sound) are tested in-process (tests/uvc).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import scaled
from tests.vm.guest import check

if TYPE_CHECKING:
    from tests.vm.harness import VM, VMResult

pytestmark = pytest.mark.slow

MODULES = [
    "libcomposite",
    "usb_f_uvc",
    "usb_f_uac2",
    "usbip-vudc",
    "vhci-hcd",
    "uvcvideo",
    "snd-usb-audio",
]
UDC = "usbip-vudc.0"
BOARD = "generic-x86"


# ---------------------------------------------------------------- in the guest


def _wait(predicate: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def _gadget_cli(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "gadget", "--board", BOARD, *args],
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    return {"rc": proc.returncode, "out": proc.stdout.strip(), "err": proc.stderr.strip()[-800:]}


def _host_node() -> str | None:
    """The host side's capture node made by uvcvideo for the looped-back camera."""
    from appliance.platform import v4l2

    for node in sorted(Path("/sys/class/video4linux").glob("video*")):
        try:
            with v4l2.Device(f"/dev/{node.name}") as dev:
                driver = bytes(dev.querycap().driver).rstrip(b"\0")
                if driver == b"uvcvideo" and dev.is_capture():
                    return f"/dev/{node.name}"
        except OSError:
            continue
    return None


class Cable:
    """usbip-vudc looped back into vhci-hcd: plugging and pulling the USB cable."""

    def __init__(self) -> None:
        self.pair: tuple[socket.socket, socket.socket] | None = None

    def plug(self) -> None:
        self.pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        gadget_end, host_end = self.pair
        Path(f"/sys/devices/platform/{UDC}/usbip_sockfd").write_text(str(gadget_end.fileno()))
        # port 0 (high speed), devid 0x10002, speed 3 = USB_SPEED_HIGH
        attach = f"0 {host_end.fileno()} {0x10002} 3"
        Path("/sys/devices/platform/vhci_hcd.0/attach").write_text(attach)

    def pull(self) -> None:
        Path("/sys/devices/platform/vhci_hcd.0/detach").write_text("0")


class RawUsb:
    """usbfs on the host side: control requests uvcvideo would never send. The control
    interface is taken from uvcvideo for the time of the test."""

    def __init__(self, node: str) -> None:
        import ctypes
        import fcntl

        from appliance.platform.v4l2 import _IOC, _IOR, _IOWR

        class ctrl(ctypes.Structure):
            _fields_ = [
                ("bRequestType", ctypes.c_uint8),
                ("bRequest", ctypes.c_uint8),
                ("wValue", ctypes.c_uint16),
                ("wIndex", ctypes.c_uint16),
                ("wLength", ctypes.c_uint16),
                ("timeout", ctypes.c_uint32),
                ("data", ctypes.c_void_p),
            ]

        class usb_ioctl(ctypes.Structure):
            _fields_ = [("ifno", ctypes.c_int), ("code", ctypes.c_int), ("data", ctypes.c_void_p)]

        self.ctypes, self.fcntl, self.ctrl = ctypes, fcntl, ctrl
        self.CONTROL = _IOWR("U", 0, ctrl)
        self.CLAIM = _IOR("U", 15, ctypes.c_uint)
        usbdev = Path(f"/sys/class/video4linux/{Path(node).name}/device").resolve().parent
        bus, dev = int((usbdev / "busnum").read_text()), int((usbdev / "devnum").read_text())
        self.fd = os.open(f"/dev/bus/usb/{bus:03d}/{dev:03d}", os.O_RDWR)
        disconnect = usb_ioctl(ifno=0, code=_IOC(0, "U", 22, 0))
        fcntl.ioctl(self.fd, _IOWR("U", 18, usb_ioctl), disconnect)  # uvcvideo lets go
        fcntl.ioctl(self.fd, self.CLAIM, ctypes.c_uint(0))

    def control(
        self, kind: int, request: int, value: int, index: int, length: int, data: bytes = b""
    ) -> dict[str, Any]:
        buf = self.ctypes.create_string_buffer(data.ljust(length, b"\0"), max(length, 1))
        req = self.ctrl(kind, request, value, index, length, 2000, self.ctypes.addressof(buf))
        try:
            got = self.fcntl.ioctl(self.fd, self.CONTROL, req)
        except OSError as exc:
            return {"stalled": exc.errno == 32, "errno": exc.errno}
        return {"stalled": False, "data": list(buf.raw[:got])}

    def close(self) -> None:
        os.close(self.fd)


class SndCtl:
    """One ALSA card's controls by the kernel's ioctls (there is no alsa-lib to rely on)."""

    def __init__(self, card: int) -> None:
        import ctypes
        import fcntl

        from appliance.platform.v4l2 import _IOWR

        class elem_id(ctypes.Structure):
            _fields_ = [
                ("numid", ctypes.c_uint),
                ("iface", ctypes.c_int),
                ("device", ctypes.c_uint),
                ("subdevice", ctypes.c_uint),
                ("name", ctypes.c_char * 44),
                ("index", ctypes.c_uint),
            ]

        class elem_list(ctypes.Structure):
            _fields_ = [
                ("offset", ctypes.c_uint),
                ("space", ctypes.c_uint),
                ("used", ctypes.c_uint),
                ("count", ctypes.c_uint),
                ("pids", ctypes.POINTER(elem_id)),
                ("reserved", ctypes.c_ubyte * 50),
            ]

        class elem_value(ctypes.Structure):  # 1224 bytes: the size is in the ioctl number
            _fields_ = [
                ("id", elem_id),
                ("indirect", ctypes.c_uint),
                ("value", ctypes.c_long * 128),
                ("reserved", ctypes.c_ubyte * 128),
            ]

        self.ctypes, self.fcntl, self.elem_id, self.elem_value = ctypes, fcntl, elem_id, elem_value
        self.LIST = _IOWR("U", 0x10, elem_list)
        self.READ = _IOWR("U", 0x12, elem_value)
        self.WRITE = _IOWR("U", 0x13, elem_value)
        self.fd = os.open(f"/dev/snd/controlC{card}", os.O_RDWR)
        listing = elem_list()
        fcntl.ioctl(self.fd, self.LIST, listing)
        ids = (elem_id * listing.count)()
        listing.space, listing.pids = listing.count, ids
        fcntl.ioctl(self.fd, self.LIST, listing)
        self.numids = {e.name.decode(): e.numid for e in ids[: listing.used]}

    def read(self, name: str) -> int:
        value = self.elem_value()
        value.id.numid = self.numids[name]
        self.fcntl.ioctl(self.fd, self.READ, value)
        return int(value.value[0])

    def write(self, name: str, number: int) -> None:
        value = self.elem_value()
        value.id.numid = self.numids[name]
        value.value[0] = number
        self.fcntl.ioctl(self.fd, self.WRITE, value)

    def close(self) -> None:
        os.close(self.fd)


def _sound_cards() -> dict[str, int]:
    """ALSA card id -> number, as /sys/class/sound lists them."""
    cards = {}
    for card in Path("/sys/class/sound").glob("card*"):
        cards[(card / "id").read_text().strip()] = int(card.name.removeprefix("card"))
    return cards


def _usb_descriptors(vendor: int, product: int) -> str | None:
    """The device and configuration descriptors the host read, as hex."""
    for dev in Path("/sys/bus/usb/devices").iterdir():
        try:
            ids = int((dev / "idVendor").read_text(), 16), int((dev / "idProduct").read_text(), 16)
        except (OSError, ValueError):
            continue
        if ids == (vendor, product):
            return (dev / "descriptors").read_bytes().hex()
    return None


def guest_checks() -> dict[str, Any]:
    import numpy as np

    from appliance.hw.profile import load_profiles
    from appliance.platform import v4l2
    from appliance.uvc.service import UvcService

    if not Path("/sys/kernel/config/usb_gadget").is_dir():
        subprocess.run(["mount", "-t", "configfs", "none", "/sys/kernel/config"], check=True)
    profile = next(p for p in load_profiles() if p.name == BOARD)
    results: dict[str, Any] = {}
    service = UvcService(profile)
    cable = Cable()
    host: dict[str, Any] = {}

    def gadget_up() -> dict[str, Any]:
        first = _gadget_cli("up", "--udc", UDC, "--serial", "vm-test-1")
        second = _gadget_cli("up", "--udc", UDC, "--serial", "vm-test-1")
        status = _gadget_cli("status", "--json")
        return {
            "first": first,
            "second": second,
            "status": json.loads(status["out"]) if status["rc"] == 0 else status,
        }

    check(results, "gadget_up", gadget_up)

    stop_frames = threading.Event()

    def feed() -> None:  # what the pipeline's UVC sink does: the newest picture
        level = 0
        while not stop_frames.wait(1 / 30):
            level = (level + 8) % 256
            if service.streaming:
                service.frames.put(np.full((720, 1280, 3), level, np.uint8))

    feeder = threading.Thread(target=feed, daemon=True)

    def enumerate_on_host() -> dict[str, Any]:
        service.start()
        assert _wait(lambda: service.function is not None, 10), service.problem
        state_before = service.gadget.state()
        cable.plug()
        node = _wait(_host_node, 30)
        assert node, "uvcvideo made no capture node"
        host["node"] = node
        with v4l2.Device(node) as dev:
            card = bytes(dev.querycap().card).rstrip(b"\0").decode()
            formats = [
                {"format": fourcc, "sizes": [[w, h, rates] for w, h, rates in sizes]}
                for fourcc, _desc, sizes in dev.formats()
            ]
        return {
            "node": node,
            "card": card,
            "formats": formats,
            "udc_state_before": state_before,
            "udc_state": _wait(lambda: service.gadget.state() == "configured", 10)
            and service.gadget.state(),
            "events": dict(service.function.events) if service.function else None,
        }

    check(results, "enumerate", enumerate_on_host)

    def microphone() -> dict[str, Any]:
        from appliance.uvc import gadget, uac2

        cards = _wait(lambda: len(_sound_cards()) >= 2 and _sound_cards(), 30) or _sound_cards()
        host_card = next((n for i, n in cards.items() if i != uac2.ALSA_CARD_ID), None)
        assert host_card is not None, f"snd-usb-audio made no card: {cards}"
        proc = Path(f"/proc/asound/card{host_card}")
        host, device = SndCtl(host_card), SndCtl(cards[uac2.ALSA_CARD_ID])
        try:
            names = sorted(host.numids)
            values = {name: host.read(name) for name in names}
            device_before = {name: device.read(name) for name in sorted(device.numids)}
            switch = next(n for n in names if n.endswith("Capture Switch"))
            host.write(switch, 0)  # the host mutes the microphone (SET_CUR)...
            muted = host.read(switch)
            # ...and the gadget's own card, where the daemon plays, sees it.
            device_after = {name: device.read(name) for name in sorted(device.numids)}
        finally:
            host.close()
            device.close()
        return {
            "cards": Path("/proc/asound/cards").read_text(),
            "stream": (proc / "stream0").read_text(),
            "usbmixer": (proc / "usbmixer").read_text(),
            "pcm": sorted(p.name for p in Path("/dev/snd").glob(f"pcmC{host_card}D*")),
            "controls": values,
            "muted": muted,
            "device_before": device_before,
            "device_after": device_after,
            "descriptors": _usb_descriptors(gadget.VENDOR_ID, gadget.PRODUCT_ID),
        }

    check(results, "microphone", microphone)

    def probe_commit() -> dict[str, Any]:
        opened = []
        assert service.function is not None
        negotiation = service.function.handler.negotiation
        for mode in negotiation.modes:
            with v4l2.Device(host["node"]) as dev:
                chosen = dev.set_format(mode.width, mode.height, mode.fourcc)
                probe = negotiation.probe
                opened.append(
                    {
                        "asked": [mode.fourcc, mode.width, mode.height],
                        "host_got": [
                            v4l2.fourcc_str(chosen.pixelformat),
                            int(chosen.width),
                            int(chosen.height),
                        ],
                        "probe": [probe.bFormatIndex, probe.bFrameIndex, probe.dwFrameInterval],
                        "index": [mode.format_index, mode.frame_index],
                    }
                )
        committed = []
        function = service.function
        feeder.start()  # the pipeline's pictures, from here on
        for mode in negotiation.modes:  # STREAMON commits: each mode, streamed briefly
            with v4l2.Device(host["node"]) as dev:
                dev.set_format(mode.width, mode.height, mode.fourcc)
                dev.set_fps(1e7 / mode.default_interval)
                dev.start(4)
                on = _wait(lambda: function.streaming, 10)
                sent = _wait(lambda: function.sent > 0, 10)
                c = negotiation.committed
                dev.stop()
                _wait(lambda: not function.streaming, 10)
            committed.append(
                {
                    "index": [mode.format_index, mode.frame_index],
                    "committed": None if c is None else [c.bFormatIndex, c.bFrameIndex],
                    "streamed": bool(on),
                    "queued": bool(sent),
                }
            )
            function.sent = 0
        return {"opened": opened, "committed": committed, "events": dict(function.events)}

    check(results, "probe_commit", probe_commit)

    def controls() -> dict[str, Any]:
        assert service.function is not None
        handler = service.function.handler
        with v4l2.Device(host["node"]) as dev:
            listed = dev.controls()
            brightness = listed["Brightness"]
            before = dev.get_control(brightness["id"])
            kept = dev.set_control(brightness["id"], 17)
            after = dev.get_control(brightness["id"])
        # The DATA event reaches the daemon's thread just after the host's call returns.
        _wait(lambda: handler.controls[(2, 0x02)].value == 17, 5)
        return {
            "listed": listed,
            "before": before,
            "kept": kept,
            "after": after,
            "daemon_value": handler.controls[(2, 0x02)].value,
            "daemon_adjust": service.function.adjust.brightness,
            "stalls": handler.stalls,
        }

    check(results, "controls", controls)

    def stream() -> dict[str, Any]:
        assert service.function is not None
        function = service.function
        with v4l2.Device(host["node"]) as dev:
            dev.set_format(640, 480, "YUYV")
            dev.set_fps(15)
            committed_before = function.handler.negotiation.committed
            error = None
            try:
                dev.start(4)
            except OSError as exc:  # the isochronous endpoint cannot cross vudc
                error = str(exc)
            on = _wait(lambda: function.streaming, 10)
            mode = function.mode
            sent = _wait(lambda: function.sent >= 3, 10) and function.sent
            committed = function.handler.negotiation.committed
            dev.stop()
            off = _wait(lambda: not function.streaming, 10)
        return {
            "host_start_error": error,
            "streaming_seen": bool(on),
            "committed_before": committed_before is not None,
            "committed": None
            if committed is None
            else [committed.bFormatIndex, committed.bFrameIndex, committed.dwFrameInterval],
            "mode": None if mode is None else [mode.fourcc, mode.width, mode.height],
            "interval_s": function.interval_s,
            "frames_queued": sent,
            "stopped": bool(off),
            "events": dict(function.events),
        }

    check(results, "stream", stream)

    def malformed() -> dict[str, Any]:
        assert service.function is not None
        handler = service.function.handler
        stalls_before = handler.stalls
        usb = RawUsb(host["node"])
        try:
            answers = {
                "hue": usb.control(0xA1, 0x81, 0x06 << 8, (2 << 8) | 0, 2),
                "no_such_unit": usb.control(0xA1, 0x81, 0x02 << 8, (9 << 8) | 0, 2),
                "error_code": usb.control(0xA1, 0x81, 0x02 << 8, 0, 1),
                "vendor": usb.control(0xC1, 0x01, 0, 0, 4),
                "set_too_long": usb.control(0x21, 0x01, 0x02 << 8, (2 << 8) | 0, 4, bytes(4)),
                "brightness": usb.control(0xA1, 0x81, 0x02 << 8, (2 << 8) | 0, 2),
            }
        finally:
            usb.close()
        return {
            "answers": answers,
            "stalls": handler.stalls - stalls_before,
            "loop_alive": service._thread is not None and service._thread.is_alive(),
        }

    check(results, "malformed", malformed)

    def disconnect() -> dict[str, Any]:
        assert service.function is not None
        function = service.function
        cable.pull()
        gone = _wait(lambda: _host_node() is None, 10)
        seen = _wait(lambda: function.events.get("disconnect", 0) > 0, 10)
        return {
            "host_node_gone": bool(gone),
            "disconnect_event": bool(seen),
            "udc_state": service.gadget.state(),
            "status": service.status(),
        }

    check(results, "disconnect", disconnect)
    stop_frames.set()
    service.stop(2.0)

    def gadget_down() -> dict[str, Any]:
        down = _gadget_cli("down")
        status = _gadget_cli("status", "--json")
        return {
            "down": down,
            "status": json.loads(status["out"]) if status["rc"] == 0 else status,
            "leftover": os.path.exists("/sys/kernel/config/usb_gadget/appliance"),
            "sound_cards": _sound_cards(),
        }

    check(results, "gadget_down", gadget_down)
    return results


# ---------------------------------------------------------------- on the host


@pytest.fixture(scope="module")
def guest(vm: VM) -> tuple[dict[str, Any], VMResult]:
    return vm.call(__file__, "guest_checks", modules=MODULES, timeout=300)


def _part(guest: tuple[dict[str, Any], VMResult], name: str) -> dict[str, Any]:
    results, run = guest
    part = results[name]
    assert part["ok"], f"{name} failed in the guest:\n{part.get('error')}\n{run.describe()}"
    return part


def _profile_modes() -> list[dict[str, Any]]:
    from appliance.hw.profile import load_profiles

    profile = next(p for p in load_profiles() if p.name == BOARD)
    assert profile.uvc is not None
    names = {"mjpeg": "MJPG", "yuyv": "YUYV"}
    return [
        {
            "format": names[f.format],
            "sizes": [[fr.width, fr.height, sorted(fr.fps, reverse=True)] for fr in f.frames],
        }
        for f in profile.uvc.formats
    ]


def test_gadget_up_builds_the_profile_and_is_idempotent(guest) -> None:
    part = _part(guest, "gadget_up")
    assert part["first"]["rc"] == 0, part["first"]
    assert "gadget up on usbip-vudc.0" in part["first"]["out"]
    assert part["second"]["rc"] == 0 and "already up" in part["second"]["out"]
    status = part["status"]
    assert status["udc"] == UDC
    modes = [[m["format"], m["width"], m["height"]] for m in status["modes"]]
    expected = [[f["format"], w, h] for f in _profile_modes() for w, h, _ in f["sizes"]]
    assert modes == expected
    audio = status["audio"]  # the profile's microphone, linked beside the camera
    assert audio["linked"] and not audio["speaker"]
    assert (audio["sample_rate"], audio["channels"], audio["sample_size"]) == (48000, 1, 2)
    assert audio["controls"] == ["mute", "volume"]
    assert audio["alsa"] == "hw:CARD=UAC2Gadget,DEV=0"
    # Debian's 6.1 cannot set the terminal type (its f_uac2 fixes MICROPHONE): said so.
    assert audio["terminal_type"].startswith(("0x0201", "not settable on this kernel"))


def test_the_host_enumerates_exactly_the_profiles_formats_sizes_and_rates(guest) -> None:
    part = _part(guest, "enumerate")
    assert part["card"]  # uvcvideo named the camera
    listed = [
        {
            "format": f["format"],
            "sizes": [[w, h, sorted(r, reverse=True)] for w, h, r in f["sizes"]],
        }
        for f in part["formats"]
    ]
    assert listed == _profile_modes()
    assert part["udc_state"] == "configured"
    assert part["events"].get("connect", 0) >= 1 or part["events"].get("setup", 0) >= 1


def _descriptors(hex_text: str) -> tuple[bytes, list[tuple[tuple[int, int] | None, bytes]]]:
    """(device descriptor, [(interface class and subclass, descriptor)] of the rest)."""
    raw = bytes.fromhex(hex_text)
    device, found, i = raw[:18], [], 18
    interface: tuple[int, int] | None = None
    while i + 2 <= len(raw) and raw[i]:
        d = raw[i : i + raw[i]]
        if d[1] == 0x04:  # INTERFACE
            interface = (d[5], d[6])
        found.append((interface, d))
        i += raw[i]
    return device, found


def test_the_host_sees_one_device_with_a_camera_and_a_microphone(guest) -> None:
    part = _part(guest, "microphone")
    device, descriptors = _descriptors(part["descriptors"])
    assert tuple(device[4:7]) == (0xEF, 0x02, 0x01)  # interface association triplet
    iads = [tuple(d[4:7]) for _, d in descriptors if d[1] == 0x0B]
    assert iads == [(0x0E, 0x03, 0x00), (0x01, 0x00, 0x20)]  # UVC, then UAC2 (IP 2.0)
    audio_control = [d for cls, d in descriptors if cls == (1, 1) and d[1] == 0x24]
    input_terminals = [int.from_bytes(d[4:6], "little") for d in audio_control if d[2] == 0x02]
    assert input_terminals == [0x0201]  # MICROPHONE, not UNDEFINED (Windows: Code 10)
    streaming_eps = [d[2] for cls, d in descriptors if cls == (1, 2) and d[1] == 0x05]
    assert len(streaming_eps) == 1 and streaming_eps[0] & 0x80  # one IN: no speaker, no feedback


def test_snd_usb_audio_makes_a_48k_mono_capture_device(guest) -> None:
    part = _part(guest, "microphone")
    assert "UAC2Gadget" in part["cards"]  # the gadget's own card, for the daemon
    assert "AI Conference Camera" in part["cards"]  # the host's card of the camera
    stream = part["stream"]
    assert "Capture:" in stream and "Playback:" not in stream
    for line in ("Format: S16_LE", "Channels: 1", "Rates: 48000"):
        assert line in stream, stream
    assert [p[-1] for p in part["pcm"]] == ["c"]  # capture PCMs only


def test_the_host_reads_and_sets_the_microphones_controls(guest) -> None:
    part = _part(guest, "microphone")
    assert "ctlerr=0" in part["usbmixer"], part["usbmixer"]
    assert "Volume: min=-25600, max=0" in part["usbmixer"]  # GET_RANGE answered: -100..0 dB
    controls = part["controls"]
    switch = next(v for n, v in controls.items() if n.endswith("Capture Switch"))
    volume = next(v for n, v in controls.items() if n.endswith("Capture Volume"))
    assert switch == 1 and volume >= 0  # GET_CUR answered: unmuted, a volume step
    assert part["muted"] == 0
    # u_audio's switch on the gadget's card is "on" (1) while the host has not muted.
    assert part["device_before"]["PCM Playback Switch"] == 1
    assert part["device_after"]["PCM Playback Switch"] == 0


def test_opening_each_format_runs_probe_through_the_daemon(guest) -> None:
    part = _part(guest, "probe_commit")
    for opened in part["opened"]:
        assert opened["host_got"] == opened["asked"], opened
        assert opened["probe"][:2] == opened["index"], opened
    assert part["events"]["setup"] >= 2 * len(part["opened"])


def test_controls_read_and_write_through_the_daemon(guest) -> None:
    part = _part(guest, "controls")
    brightness = part["listed"]["Brightness"]
    assert (brightness["minimum"], brightness["maximum"], brightness["default"]) == (-64, 64, 0)
    assert part["before"] == 0
    assert part["kept"] == 17 and part["after"] == 17
    assert part["daemon_value"] == 17 and part["daemon_adjust"] == 17


def test_every_mode_is_committed_and_streamed_through_the_daemon(guest) -> None:
    part = _part(guest, "probe_commit")
    for mode in part["committed"]:
        assert mode["committed"] == mode["index"], mode
        assert mode["streamed"] and mode["queued"], mode


def test_malformed_and_unexpected_requests_stall_and_the_loop_goes_on(guest) -> None:
    part = _part(guest, "malformed")
    answers = part["answers"]
    assert answers["hue"]["stalled"] and answers["no_such_unit"]["stalled"]
    assert answers["error_code"] == {"stalled": False, "data": [0x05]}  # invalid unit
    assert answers["vendor"]["stalled"]  # refused by f_uvc itself
    assert answers["set_too_long"]["stalled"]
    assert answers["brightness"] == {"stalled": False, "data": [17, 0]}  # still answering
    assert part["stalls"] >= 3
    assert part["loop_alive"]


def test_streamon_reaches_the_daemon_and_streamoff_stops_it(guest) -> None:
    part = _part(guest, "stream")
    assert part["streaming_seen"], part
    assert part["committed"] is not None and part["committed"][2] == 666_667
    assert part["mode"] == ["YUYV", 640, 480]
    assert part["frames_queued"] >= 3
    assert part["stopped"]
    assert part["events"]["streamon"] >= 1 and part["events"]["streamoff"] >= 1


def test_a_pulled_cable_is_a_disconnect(guest) -> None:
    part = _part(guest, "disconnect")
    assert part["host_node_gone"]
    assert part["disconnect_event"]
    assert part["status"]["streaming"] is False


def test_gadget_down_removes_everything(guest) -> None:
    part = _part(guest, "gadget_down")
    assert part["down"]["rc"] == 0
    assert part["status"]["state"] == "absent"
    assert not part["leftover"]
    assert part["sound_cards"] == {}  # the gadget's card went with it, the host's on unplug


def test_the_guest_kernel_stayed_healthy(guest) -> None:
    _, run = guest
    for bad in ("BUG:", "Oops", "WARNING:", "general protection"):
        assert bad not in run.dmesg, run.dmesg[-3000:]
