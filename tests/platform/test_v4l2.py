"""The V4L2 binding: struct layouts and ioctl numbers against videodev2.h, and error paths."""

from __future__ import annotations

import ctypes
import errno
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from appliance.platform import v4l2

LP64 = ctypes.sizeof(ctypes.c_long) == 8
LINUX_LP64 = LP64 and platform.system() == "Linux" and platform.machine() in ("x86_64", "aarch64")
needs_lp64 = pytest.mark.skipif(not LINUX_LP64, reason="layouts are for x86_64/aarch64 Linux")

SIZES = {
    "v4l2_capability": 104,
    "v4l2_fmtdesc": 64,
    "v4l2_frmsizeenum": 44,
    "v4l2_frmivalenum": 52,
    "v4l2_pix_format": 48,
    "v4l2_format": 208,
    "v4l2_streamparm": 204,
    "v4l2_requestbuffers": 20,
    "v4l2_buffer": 88,
    "v4l2_event_subscription": 32,
    "v4l2_event": 136,
}

IOCTLS = {
    "VIDIOC_QUERYCAP": 0x80685600,
    "VIDIOC_ENUM_FMT": 0xC0405602,
    "VIDIOC_G_FMT": 0xC0D05604,
    "VIDIOC_S_FMT": 0xC0D05605,
    "VIDIOC_REQBUFS": 0xC0145608,
    "VIDIOC_QUERYBUF": 0xC0585609,
    "VIDIOC_QBUF": 0xC058560F,
    "VIDIOC_DQBUF": 0xC0585611,
    "VIDIOC_STREAMON": 0x40045612,
    "VIDIOC_STREAMOFF": 0x40045613,
    "VIDIOC_G_PARM": 0xC0CC5615,
    "VIDIOC_S_PARM": 0xC0CC5616,
    "VIDIOC_ENUM_FRAMESIZES": 0xC02C564A,
    "VIDIOC_ENUM_FRAMEINTERVALS": 0xC034564B,
    "VIDIOC_DQEVENT": 0x80885659,
    "VIDIOC_SUBSCRIBE_EVENT": 0x4020565A,
    "VIDIOC_UNSUBSCRIBE_EVENT": 0x4020565B,
}

# (struct, C member designator): offsets the kernel and the gadget/capture code depend on.
# The ctypes path differs where the header uses anonymous unions.
OFFSETS = [
    ("v4l2_capability", "device_caps", 88),
    ("v4l2_fmtdesc", "pixelformat", 44),
    ("v4l2_frmsizeenum", "stepwise.max_height", 28),
    ("v4l2_frmivalenum", "stepwise.max.denominator", 32),
    ("v4l2_format", "fmt.pix.width", 8),
    ("v4l2_format", "fmt.pix.bytesperline", 24),
    ("v4l2_format", "fmt.pix.sizeimage", 28),
    ("v4l2_streamparm", "parm.capture.timeperframe.denominator", 16),
    ("v4l2_streamparm", "parm.output.timeperframe.numerator", 12),
    ("v4l2_requestbuffers", "flags", 16),
    ("v4l2_buffer", "timestamp", 24),
    ("v4l2_buffer", "timecode", 40),
    ("v4l2_buffer", "sequence", 56),
    ("v4l2_buffer", "memory", 60),
    ("v4l2_buffer", "m.offset", 64),
    ("v4l2_buffer", "length", 72),
    ("v4l2_buffer", "request_fd", 80),
    ("v4l2_event", "u.data", 8),
    ("v4l2_event", "pending", 72),
    ("v4l2_event", "timestamp", 80),
    ("v4l2_event", "id", 96),
]


def ctypes_offset(struct: type[ctypes.Structure], path: str) -> int:
    """Offset of a dotted member path; anonymous unions resolve through _anonymous_."""
    offset, current = 0, struct
    for name in path.split("."):
        field = getattr(current, name)
        offset += field.offset
        current = dict(_all_fields(current))[name]
    return offset


def _all_fields(struct: Any) -> list[tuple[str, type]]:
    fields = [(f[0], f[1]) for f in struct._fields_]
    for anon in getattr(struct, "_anonymous_", ()):
        fields += _all_fields(dict(fields)[anon])
    return fields


@needs_lp64
@pytest.mark.parametrize(("name", "size"), SIZES.items())
def test_struct_sizes_match_lp64_kernel_abi(name: str, size: int) -> None:
    assert ctypes.sizeof(getattr(v4l2, name)) == size


@needs_lp64
@pytest.mark.parametrize(("struct", "member", "offset"), OFFSETS)
def test_member_offsets(struct: str, member: str, offset: int) -> None:
    assert ctypes_offset(getattr(v4l2, struct), member) == offset


@needs_lp64
@pytest.mark.parametrize(("name", "number"), IOCTLS.items())
def test_ioctl_numbers(name: str, number: int) -> None:
    assert getattr(v4l2, name) == number


HEADER = Path("/usr/include/linux/videodev2.h")


@needs_lp64
@pytest.mark.skipif(
    not (HEADER.exists() and shutil.which("cc")), reason="needs a C compiler and kernel headers"
)
def test_layout_agrees_with_installed_kernel_header(tmp_path: Path) -> None:
    """Independent check: let the C compiler lay out the real header and compare."""
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/videodev2.h>"]
    lines.append("int main(void) {")
    expected = []
    for name in SIZES:
        lines.append(f'printf("%zu\\n", sizeof(struct {name}));')
        expected.append(ctypes.sizeof(getattr(v4l2, name)))
    for struct, member, _ in OFFSETS:
        lines.append(f'printf("%zu\\n", offsetof(struct {struct}, {member}));')
        expected.append(ctypes_offset(getattr(v4l2, struct), member))
    for name in IOCTLS:
        lines.append(f'printf("%lu\\n", (unsigned long){name});')
        expected.append(getattr(v4l2, name))
    lines.append("return 0; }")
    source = tmp_path / "layout.c"
    source.write_text("\n".join(lines))
    binary = tmp_path / "layout"
    subprocess.run(["cc", "-o", str(binary), str(source)], check=True, capture_output=True)
    printed = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    assert [int(v) for v in printed.split()] == expected


def test_fourcc() -> None:
    assert v4l2.fourcc("MJPG") == 0x47504A4D == v4l2.V4L2_PIX_FMT_MJPEG
    assert v4l2.V4L2_PIX_FMT_YUYV == 0x56595559
    assert v4l2.V4L2_PIX_FMT_NV12 == 0x3231564E
    assert v4l2.fourcc_str(v4l2.V4L2_PIX_FMT_JPEG) == "JPEG"
    with pytest.raises(ValueError, match="four characters"):
        v4l2.fourcc("MJPEG")


def test_ioctl_encoding_rejects_oversized_argument() -> None:
    with pytest.raises(ValueError):
        v4l2._IOC(v4l2._IOC_READ, "V", 0, 1 << 14)


def test_open_missing_node_names_the_call_and_path() -> None:
    with pytest.raises(v4l2.V4L2Error) as info:
        v4l2.Device("/nonexistent/video0")
    assert info.value.errno == errno.ENOENT
    assert "open on /nonexistent/video0" in str(info.value)
    assert isinstance(info.value, OSError)
    assert not info.value.disconnected


@pytest.mark.parametrize("err", [errno.ENODEV, errno.EIO, errno.ENXIO])
def test_vanished_device_errors_are_disconnects(err: int) -> None:
    exc = v4l2._error("VIDIOC_DQBUF", "/dev/video0", err)
    assert isinstance(exc, v4l2.V4L2Disconnected)
    assert exc.disconnected
    assert "VIDIOC_DQBUF" in str(exc)


def test_other_errors_are_not_disconnects() -> None:
    exc = v4l2._error("VIDIOC_S_FMT", "/dev/video0", errno.EBUSY)
    assert type(exc) is v4l2.V4L2Error
    assert not exc.disconnected


def test_ioctl_on_a_non_v4l2_file_fails_with_the_ioctl_name(tmp_path: Path) -> None:
    """Real ioctl(2) calls (on a plain file: ENOTTY) accept the ctypes structures."""
    node = tmp_path / "video0"
    node.write_bytes(b"")
    with v4l2.Device(str(node)) as device:
        with pytest.raises(v4l2.V4L2Error, match="VIDIOC_QUERYCAP") as info:
            device.querycap()
        assert info.value.errno == errno.ENOTTY
        assert device.frame_sizes(v4l2.V4L2_PIX_FMT_MJPEG) == []  # no list to enumerate
        with pytest.raises(v4l2.V4L2Error, match="VIDIOC_DQBUF"):
            device.dequeue(0.0)  # nothing allocated
    device.close()  # twice is fine
    with pytest.raises(v4l2.V4L2Error) as closed:
        device.querycap()
    assert closed.value.errno == errno.EBADF
