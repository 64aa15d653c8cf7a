"""USB camera capture: decoders, mode choice, and V4L2Source against a fake driver.

The fake stands in for the kernel at the ioctl/mmap boundary (the device nodes are plain
files), so Device and V4L2Source run their real code paths without /dev/video*.
"""

from __future__ import annotations

import errno
import mmap
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from appliance.capture import v4l2 as cap
from appliance.capture.base import SourceError
from appliance.platform import v4l2

# ---------------------------------------------------------------- test pictures


def card(width: int = 160, height: int = 120) -> np.ndarray:
    """A smooth picture with some edges: compresses well, so PSNR is meaningful."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [128 + 100 * np.sin(x / 13), 128 + 100 * np.cos(y / 11), (x + y) * 255 / (width + height)],
        axis=-1,
    ).astype(np.uint8)
    cv2.rectangle(image, (20, 20), (60, 50), (255, 255, 255), -1)
    return image


def jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of each header segment up to SOS."""
    found, i = [], 2
    while data[i + 1] != 0xDA:
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        found.append((data[i + 1], data[i + 4 : i + 2 + length]))
        i += 2 + length
    return found


def huffman_tables(data: bytes) -> dict[int, bytes]:
    """Table class/id -> counts+symbols, from however many DHT segments hold them."""
    tables = {}
    for marker, payload in segments(data):
        j = 0
        while marker == 0xC4 and j < len(payload):
            n = sum(payload[j + 1 : j + 17])
            tables[payload[j]] = payload[j + 1 : j + 17 + n]
            j += 17 + n
    return tables


def strip_dht(data: bytes) -> bytes:
    out, i = bytearray(data[:2]), 2
    while data[i + 1] != 0xDA:
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if data[i + 1] != 0xC4:
            out += data[i : i + 2 + length]
        i += 2 + length
    return bytes(out + data[i:])


def bgr_to_yuyv(image: np.ndarray, bytesperline: int) -> bytes:
    """BT.601 limited-range YUYV, chroma averaged over each horizontal pair, padded lines."""
    b, g, r = (image[..., k].astype(np.float64) / 255 for k in range(3))
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    height, width = y.shape
    packed = np.zeros((height, width, 2))
    packed[..., 0] = y
    packed[:, 0::2, 1] = (u[:, 0::2] + u[:, 1::2]) / 2
    packed[:, 1::2, 1] = (v[:, 0::2] + v[:, 1::2]) / 2
    lines = np.full((height, bytesperline), 0xEE, np.uint8)  # visible garbage in the padding
    lines[:, : 2 * width] = np.clip(np.rint(packed), 0, 255).astype(np.uint8).reshape(height, -1)
    return lines.tobytes()


# ---------------------------------------------------------------- decoders


def test_decode_yuyv_honours_bytesperline() -> None:
    width, height, stride = 64, 48, 160  # 32 bytes of padding per line
    image = np.repeat(card(width // 2, height), 2, axis=1)  # pairs share chroma exactly
    decoded = cap.decode_yuyv(bgr_to_yuyv(image, stride), width, height, stride)
    assert decoded.shape == (height, width, 3) and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - image.astype(int)).max() <= 4


def test_decode_yuyv_accepts_a_last_line_without_padding() -> None:
    width, height, stride = 32, 8, 80
    image = np.full((height, width, 3), (40, 160, 220), np.uint8)
    data = bgr_to_yuyv(image, stride)[: cap.yuyv_frame_bytes(width, height, stride)]
    decoded = cap.decode_yuyv(data, width, height, stride)
    assert np.abs(decoded.astype(int) - image.astype(int)).max() <= 4


def test_decode_yuyv_rejects_short_buffers() -> None:
    with pytest.raises(ValueError, match="needs"):
        cap.decode_yuyv(b"\x00" * 100, 32, 8, 64)
    with pytest.raises(ValueError, match="geometry"):
        cap.decode_yuyv(b"\x00" * 1000, 32, 8, 60)


def test_decode_mjpeg_round_trip() -> None:
    image = card()
    decoded = cap.decode_mjpeg(jpeg(image))
    assert decoded is not None and decoded.shape == image.shape
    assert psnr(decoded, image) > 35


def test_decode_mjpeg_tolerates_padding_after_eoi() -> None:
    assert cap.decode_mjpeg(jpeg(card()) + bytes(1000)) is not None


@pytest.mark.parametrize("keep", [0.5, 0.9, -2])
def test_decode_mjpeg_rejects_truncated_frames(keep: float) -> None:
    data = jpeg(card())
    cut = data[:keep] if isinstance(keep, int) else data[: int(len(data) * keep)]
    assert cap.decode_mjpeg(cut) is None


@pytest.mark.parametrize("data", [b"", b"\xff\xd8", b"not a jpeg at all", bytes(5000)])
def test_decode_mjpeg_rejects_garbage(data: bytes) -> None:
    assert cap.decode_mjpeg(data) is None


def test_annex_k_tables_are_the_ones_libjpeg_encodes_with() -> None:
    """cv2's encoder writes the standard tables by default: an independent copy of Annex K."""
    data = jpeg(card())
    assert huffman_tables(data) == huffman_tables(b"\xff\xd8" + cap._ANNEX_K_DHT + b"\xff\xda")


def test_mjpeg_without_huffman_tables_decodes_after_insertion() -> None:
    data = jpeg(card())
    stripped = strip_dht(data)
    assert 0xC4 not in [marker for marker, _ in segments(stripped)]
    repaired = cap.insert_huffman_tables(stripped)
    assert huffman_tables(repaired) == huffman_tables(data)
    assert [m for m, _ in segments(repaired)][-1] == 0xC4  # inserted just before SOS
    original = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    decoded = cap.decode_mjpeg(stripped)
    assert decoded is not None and original is not None
    assert np.array_equal(decoded, original)


def test_insert_huffman_tables_leaves_complete_jpegs_alone() -> None:
    data = jpeg(card())
    assert cap.insert_huffman_tables(data) is data
    assert cap.insert_huffman_tables(b"garbage") == b"garbage"


# ---------------------------------------------------------------- mode choice

FORMATS: list[v4l2.FormatInfo] = [
    (
        "MJPG",
        "Motion-JPEG",
        [(1920, 1080, [30.0, 15.0]), (1280, 720, [60.0, 30.0]), (640, 480, [30.0])],
    ),
    ("YUYV", "YUYV 4:2:2", [(1920, 1080, [5.0]), (1280, 720, [10.0]), (640, 480, [30.0])]),
    ("H264", "H.264", [(1280, 720, [30.0])]),
]


def test_choose_mode_exact_size_and_rate() -> None:
    mode = cap.choose_mode(FORMATS, 1280, 720, 30.0, ("MJPG", "YUYV"))
    assert mode == cap.Mode("MJPG", 1280, 720, 30.0)


def test_choose_mode_smallest_size_that_covers_then_largest() -> None:
    assert cap.choose_mode(FORMATS, 800, 600, 30, ("MJPG",)) == cap.Mode("MJPG", 1280, 720, 30.0)
    assert cap.choose_mode(FORMATS, 4096, 2160, 30, ("MJPG",)) == cap.Mode("MJPG", 1920, 1080, 30)


def test_choose_mode_rate_outweighs_format_preference() -> None:
    assert cap.choose_mode(FORMATS, 1280, 720, 30, ("YUYV", "MJPG")).fourcc == "MJPG"  # type: ignore[union-attr]
    assert cap.choose_mode(FORMATS, 640, 480, 30, ("YUYV", "MJPG")).fourcc == "YUYV"  # type: ignore[union-attr]


def test_choose_mode_takes_jpeg_for_mjpg() -> None:
    formats: list[v4l2.FormatInfo] = [("JPEG", "JFIF JPEG", [(640, 480, [30.0])])]
    assert cap.choose_mode(formats, 640, 480, 30, ("MJPG",)) == cap.Mode("JPEG", 640, 480, 30.0)


def test_choose_mode_none_when_nothing_preferred_is_offered() -> None:
    assert cap.choose_mode(FORMATS[2:], 1280, 720, 30, ("MJPG", "YUYV")) is None


# ---------------------------------------------------------------- a fake driver


class FakeDriver:
    """Just enough of uvcvideo behind fcntl.ioctl and mmap for Device and V4L2Source."""

    def __init__(self, formats: list[v4l2.FormatInfo], caps: int | None = None) -> None:
        self.formats = formats
        self.caps = caps or (v4l2.V4L2_CAP_VIDEO_CAPTURE | v4l2.V4L2_CAP_STREAMING)
        self.frames: list[bytes] = []
        self.flags: list[int] = []
        self.maps: dict[int, mmap.mmap] = {}
        self.queued: list[int] = []
        self.streaming = False
        self.unplugged = False
        self.pix = (0, 0, 0)
        self.sizeimage = 0
        self.sequence = 0
        self.calls: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        names = {getattr(v4l2, n): n for n in dir(v4l2) if n.startswith("VIDIOC_")}

        def ioctl(fd: int, request: int, arg: Any, mutate: bool = True) -> int:
            name = names[request]
            self.calls.append(name)
            if self.unplugged:
                raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
            return getattr(self, name.lower())(arg)

        anonymous = mmap.mmap  # the patch below replaces the module attribute

        def fake_mmap(fd: int, length: int, flags: int, prot: int, offset: int) -> mmap.mmap:
            self.maps[offset] = anonymous(-1, length)
            return self.maps[offset]

        monkeypatch.setattr(v4l2.fcntl, "ioctl", ioctl)
        monkeypatch.setattr(v4l2.mmap, "mmap", fake_mmap)

    @staticmethod
    def fail(err: int = errno.EINVAL) -> OSError:
        return OSError(err, os.strerror(err))

    def vidioc_querycap(self, arg: v4l2.v4l2_capability) -> int:
        arg.driver = b"uvcvideo"
        arg.capabilities = self.caps | v4l2.V4L2_CAP_META_CAPTURE | v4l2.V4L2_CAP_DEVICE_CAPS
        arg.device_caps = self.caps
        return 0

    def vidioc_enum_fmt(self, arg: v4l2.v4l2_fmtdesc) -> int:
        if arg.index >= len(self.formats):
            raise self.fail()
        code, description, _ = self.formats[arg.index]
        arg.pixelformat, arg.description = v4l2.fourcc(code), description.encode()
        return 0

    def _sizes(self, code: int) -> list[v4l2.FrameSize]:
        return next(s for c, _, s in self.formats if v4l2.fourcc(c) == code)

    def vidioc_enum_framesizes(self, arg: v4l2.v4l2_frmsizeenum) -> int:
        sizes = self._sizes(arg.pixel_format)
        if arg.index >= len(sizes):
            raise self.fail()
        arg.type = v4l2.V4L2_FRMSIZE_TYPE_DISCRETE
        arg.discrete.width, arg.discrete.height = sizes[arg.index][:2]
        return 0

    def vidioc_enum_frameintervals(self, arg: v4l2.v4l2_frmivalenum) -> int:
        rates = next(
            r for w, h, r in self._sizes(arg.pixel_format) if (w, h) == (arg.width, arg.height)
        )
        if arg.index >= len(rates):
            raise self.fail()
        arg.type = v4l2.V4L2_FRMIVAL_TYPE_DISCRETE
        arg.discrete.numerator, arg.discrete.denominator = 1, int(rates[arg.index])
        return 0

    def vidioc_s_fmt(self, arg: v4l2.v4l2_format) -> int:
        pix = arg.fmt.pix
        pix.bytesperline = 2 * pix.width + 64 if v4l2.fourcc_str(pix.pixelformat) == "YUYV" else 0
        pix.sizeimage = max(pix.bytesperline, 2 * pix.width) * pix.height
        self.pix = (pix.width, pix.height, pix.pixelformat)
        self.sizeimage = pix.sizeimage
        return 0

    def vidioc_g_parm(self, arg: v4l2.v4l2_streamparm) -> int:
        arg.parm.capture.capability = v4l2.V4L2_CAP_TIMEPERFRAME
        arg.parm.capture.timeperframe.numerator = 1
        arg.parm.capture.timeperframe.denominator = 30
        return 0

    def vidioc_s_parm(self, arg: v4l2.v4l2_streamparm) -> int:
        return 0  # keeps whatever was asked

    def vidioc_reqbufs(self, arg: v4l2.v4l2_requestbuffers) -> int:
        arg.count = min(arg.count, 3)  # drivers may grant fewer
        return int(arg.count)  # and some kernels return the count: not an error

    def vidioc_querybuf(self, arg: v4l2.v4l2_buffer) -> int:
        arg.length, arg.m.offset = self.sizeimage, arg.index * 4096
        return 0

    def vidioc_qbuf(self, arg: v4l2.v4l2_buffer) -> int:
        self.queued.append(arg.index)
        return 0

    def vidioc_dqbuf(self, arg: v4l2.v4l2_buffer) -> int:
        if not self.streaming:
            raise self.fail()
        if not self.frames or not self.queued:
            raise self.fail(errno.EAGAIN)
        index, data = self.queued.pop(0), self.frames.pop(0)
        self.maps[index * 4096][: len(data)] = data
        self.sequence += 1
        arg.index, arg.bytesused, arg.sequence = index, len(data), self.sequence
        arg.flags = self.flags.pop(0) if self.flags else 0
        arg.timestamp.tv_sec, arg.timestamp.tv_usec = 12, 500000
        return 0

    def vidioc_streamon(self, arg: Any) -> int:
        self.streaming = True
        return 0

    def vidioc_streamoff(self, arg: Any) -> int:
        self.streaming = False
        return 0


@pytest.fixture
def node(tmp_path: Path) -> Path:
    path = tmp_path / "video0"
    path.write_bytes(b"")  # poll() on a plain file is always ready
    return path


def open_source(
    node: Path, driver: FakeDriver, monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> cap.V4L2Source:
    driver.install(monkeypatch)
    source = cap.V4L2Source(str(node), **kw)
    source.open()
    return source


def test_open_missing_node_names_the_path() -> None:
    source = cap.V4L2Source("/dev/video97")
    with pytest.raises(SourceError, match="/dev/video97"):
        source.open()


def test_open_metadata_node_is_refused(node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    driver = FakeDriver(FORMATS, caps=v4l2.V4L2_CAP_META_CAPTURE | v4l2.V4L2_CAP_STREAMING)
    with pytest.raises(SourceError, match="video0 is not a capture node"):
        open_source(node, driver, monkeypatch)


def test_open_without_decodable_formats(node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SourceError, match="offers H264"):
        open_source(node, FakeDriver(FORMATS[2:]), monkeypatch)


def test_capture_mjpeg_drops_corrupt_frames(node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    driver = FakeDriver(FORMATS)
    source = open_source(node, driver, monkeypatch, width=1280, height=720, fps=30)
    assert source.size == (1280, 720) and source.fps == 30.0
    assert driver.pix == (1280, 720, v4l2.V4L2_PIX_FMT_MJPEG)
    assert driver.queued == [0, 1, 2] and driver.streaming
    image = card(1280, 720)
    good = jpeg(image)
    driver.frames = [good[: len(good) // 2], good, strip_dht(good)]
    frame = source.read(timeout=0.1)
    assert frame is not None and source.corrupt_frames == 1
    assert frame.image.shape == (720, 1280, 3) and psnr(frame.image, image) > 35
    assert frame.meta["format"] == "MJPG" and frame.meta["driver_sequence"] == 2
    assert frame.source == "v4l2://" + str(node) and frame.seq == 1
    assert sorted(driver.queued) == [0, 1, 2]  # requeued straight away
    second = source.read(timeout=0.1)
    assert second is not None and second.seq == 2
    assert source.read(timeout=0.01) is None  # nothing left: a timeout, not an error
    source.close()
    assert not driver.streaming
    assert driver.calls[-2:] == ["VIDIOC_STREAMOFF", "VIDIOC_REQBUFS"]
    source.close()


def test_capture_yuyv_with_padded_lines(node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    driver = FakeDriver(FORMATS)
    source = open_source(node, driver, monkeypatch, width=640, height=480, prefer=("YUYV",))
    image = np.repeat(card(320, 480), 2, axis=1)
    driver.frames = [bgr_to_yuyv(image, 2 * 640 + 64)[:1000], bgr_to_yuyv(image, 2 * 640 + 64)]
    frame = source.read(timeout=0.1)
    assert frame is not None and frame.meta["format"] == "YUYV"
    assert source.corrupt_frames == 1  # the short one
    assert np.abs(frame.image.astype(int) - image.astype(int)).max() <= 4
    source.close()


def test_frames_the_driver_flags_as_damaged_are_dropped(
    node: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = FakeDriver(FORMATS)
    source = open_source(node, driver, monkeypatch)
    driver.frames = [jpeg(card())] * 2
    driver.flags = [v4l2.V4L2_BUF_FLAG_ERROR, 0]
    assert source.read(timeout=0.1) is not None
    assert source.corrupt_frames == 1
    source.close()


def test_unplugged_camera_raises_disconnected(node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    driver = FakeDriver(FORMATS)
    source = open_source(node, driver, monkeypatch)
    driver.unplugged = True
    with pytest.raises(SourceError, match="disconnected"):
        source.read(timeout=0.1)
    source.close()  # still fine


def test_vanished_node_raises_disconnected(node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = open_source(node, FakeDriver(FORMATS), monkeypatch)
    node.unlink()
    with pytest.raises(SourceError, match="disconnected"):
        source.read(timeout=0.01)


# ---------------------------------------------------------------- device listing


def test_list_capture_devices_without_any() -> None:
    if list(Path("/dev").glob("video*")):
        pytest.skip("this machine has video nodes")
    assert cap.list_capture_devices() == []


def test_list_capture_devices_in_number_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("video10", "video2", "video1", "videofoo", "media0"):
        (tmp_path / name).write_bytes(b"")
    driver = FakeDriver(FORMATS)
    driver.install(monkeypatch)
    metadata = str(tmp_path / "video1")
    real_ioctl = v4l2.fcntl.ioctl

    def ioctl(fd: int, request: int, arg: Any, mutate: bool = True) -> int:
        result = real_ioctl(fd, request, arg, mutate)
        if os.readlink(f"/proc/self/fd/{fd}") == metadata:
            arg.device_caps = v4l2.V4L2_CAP_META_CAPTURE | v4l2.V4L2_CAP_STREAMING
        return result

    monkeypatch.setattr(v4l2.fcntl, "ioctl", ioctl)
    assert cap.list_capture_devices(str(tmp_path)) == [
        str(tmp_path / "video2"),
        str(tmp_path / "video10"),
    ]


def test_list_capture_devices_skips_nodes_that_are_not_v4l2(tmp_path: Path) -> None:
    (tmp_path / "video0").write_bytes(b"")  # a real ioctl on it fails with ENOTTY
    assert cap.list_capture_devices(str(tmp_path)) == []
