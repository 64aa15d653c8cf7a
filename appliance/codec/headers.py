"""The size a coded picture declares, read from its header without decoding it.

A receiver must know how big a picture is before a decoder allocates it: a forged PNG
of 32768x32000 fits in 1 MB and a lossless WebP of 16383x16383 in a few bytes, and
OpenCV would allocate gigabytes for either before finding anything wrong. OpenCV has no
way to ask for the size alone, so the few header fields that hold it are read here
(PNG IHDR, WebP VP8/VP8L/VP8X, JPEG SOFn, AV1 sequence header), and anything this reader
does not understand is refused: a receiver only has to read what senders send.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from appliance.codec.bitstream import BitstreamError, Codec

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SEQUENTIAL = {0xC0, 0xC1}  # baseline and extended sequential Huffman
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_OBU_SEQUENCE_HEADER = 1
_VP8X_ANIMATION = 0x02


def picture_size(codec: Codec, data: bytes) -> tuple[int, int]:
    """(width, height) that ``data`` declares; BitstreamError if no such header is found.
    For AV1 it is the sequence header's largest frame size."""
    readers = {Codec.PNG: _png, Codec.WEBP: _webp, Codec.JPEG: _jpeg, Codec.AV1: _av1}
    reader = readers.get(codec)
    if reader is None:
        raise BitstreamError(f"{codec.name} pictures are not decoded by this receiver")
    try:
        width, height = reader(bytes(data))
    except (struct.error, IndexError):
        raise BitstreamError(f"truncated {codec.name} header") from None
    if width < 1 or height < 1:
        raise BitstreamError(f"{codec.name} picture declares {width}x{height}")
    return width, height


def _png(data: bytes) -> tuple[int, int]:
    # the IHDR chunk must come first (PNG 1.2, 5.6), so its place is fixed
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise BitstreamError("not a PNG picture")
    width, height = struct.unpack_from(">II", data, 16)
    return width, height


def _webp(data: bytes) -> tuple[int, int]:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise BitstreamError("not a WebP picture")
    chunks = _riff_chunks(data, 12)
    fourcc, body = next(chunks, (b"", b""))
    if fourcc != b"VP8X":
        return _webp_image(fourcc, body)
    flags = body[0]
    if flags & _VP8X_ANIMATION:
        raise BitstreamError("animated WebP")  # a picture is one frame
    canvas = (
        int.from_bytes(body[4:7], "little") + 1,
        int.from_bytes(body[7:10], "little") + 1,
    )
    for fourcc, body in chunks:  # the image chunk after ICCP/ALPH; libwebp wants both to agree
        if fourcc in (b"VP8 ", b"VP8L"):
            if _webp_image(fourcc, body) != canvas:
                raise BitstreamError("WebP image and canvas differ in size")
            return canvas
    raise BitstreamError("WebP without an image chunk")


def _riff_chunks(data: bytes, at: int) -> Iterator[tuple[bytes, bytes]]:
    while at + 8 <= len(data):
        fourcc, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
        yield fourcc, data[at + 8 : at + 8 + size]
        at += 8 + size + (size & 1)


def _webp_image(fourcc: bytes, body: bytes) -> tuple[int, int]:
    if fourcc == b"VP8 ":
        # a key frame's 3-byte tag (bit 0 clear), start code, 14-bit sizes (RFC 6386, 9.1)
        if body[0] & 1 or body[3:6] != b"\x9d\x01\x2a":
            raise BitstreamError("WebP VP8 data is not a key frame")
        width, height = struct.unpack_from("<HH", body, 6)
        return width & 0x3FFF, height & 0x3FFF
    if fourcc == b"VP8L":
        if len(body) < 5 or body[0] != 0x2F:
            raise BitstreamError("not a WebP lossless header")
        bits = int.from_bytes(body[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise BitstreamError(f"unknown WebP chunk {fourcc!r}")


def _jpeg(data: bytes) -> tuple[int, int]:
    if data[:2] != b"\xff\xd8":
        raise BitstreamError("not a JPEG picture")
    at = 2
    while True:
        if data[at] != 0xFF:
            raise BitstreamError("JPEG marker expected")
        while data[at] == 0xFF:  # fill bytes
            at += 1
        marker = data[at]
        at += 1
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length field
            continue
        if marker in (0xD9, 0xDA):
            raise BitstreamError("JPEG scan before its frame header")
        (length,) = struct.unpack_from(">H", data, at)
        if marker in _SOF:
            if marker not in _SEQUENTIAL:  # progressive: thousands of scans, seconds each
                raise BitstreamError("only sequential (baseline) JPEG pictures are accepted")
            height, width = struct.unpack_from(">HH", data, at + 3)
            return width, height  # a height of 0 (set later by DNL) is refused above
        if length < 2:
            raise BitstreamError("bad JPEG segment length")
        at += length


def _av1(data: bytes) -> tuple[int, int]:
    at = 0
    while at < len(data):  # low-overhead OBUs: each carries its size (AV1 5.3)
        header = data[at]
        kind, extension, has_size = (header >> 3) & 0x0F, header & 0x04, header & 0x02
        if header & 0x80 or not has_size:
            raise BitstreamError("AV1 OBU without a size field")
        at += 2 if extension else 1
        size, at = _leb128(data, at)
        if kind == _OBU_SEQUENCE_HEADER:
            return _av1_sequence_size(_Bits(data[at : at + size]))
        at += size
    raise BitstreamError("AV1 picture without a sequence header")


def _leb128(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = data[at + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, at + i + 1
    raise BitstreamError("AV1 OBU size longer than 8 bytes")


class _Bits:
    """MSB-first bit reader (AV1 4.10.2 f(n)); BitstreamError past the end."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def f(self, n: int) -> int:
        if self.pos + n > 8 * len(self.data):
            raise BitstreamError("truncated AV1 sequence header")
        value = 0
        for _ in range(n):
            bit = (self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1
            value, self.pos = value << 1 | bit, self.pos + 1
        return value

    def uvlc(self) -> int:
        zeros = 0
        while not self.f(1):
            zeros += 1
            if zeros >= 32:
                raise BitstreamError("AV1 uvlc too long")
        return self.f(zeros) + (1 << zeros) - 1


def _av1_sequence_size(bits: _Bits) -> tuple[int, int]:
    """max_frame_width and max_frame_height of a sequence header OBU (AV1 5.5.1)."""
    bits.f(3)  # seq_profile
    bits.f(1)  # still_picture
    if bits.f(1):  # reduced_still_picture_header
        bits.f(5)  # seq_level_idx
    else:
        model_info, delay_length = False, 0
        if bits.f(1):  # timing_info_present_flag
            bits.f(32), bits.f(32)  # num_units_in_display_tick, time_scale
            if bits.f(1):  # equal_picture_interval
                bits.uvlc()
            model_info = bool(bits.f(1))
            if model_info:
                delay_length = bits.f(5) + 1
                bits.f(32), bits.f(5), bits.f(5)
        display_delay = bits.f(1)
        for _ in range(bits.f(5) + 1):  # operating points
            bits.f(12)  # operating_point_idc
            if bits.f(5) > 7:  # seq_level_idx
                bits.f(1)  # seq_tier
            if model_info and bits.f(1):
                bits.f(delay_length), bits.f(delay_length), bits.f(1)
            if display_delay and bits.f(1):
                bits.f(4)
    width_bits, height_bits = bits.f(4) + 1, bits.f(4) + 1
    return bits.f(width_bits) + 1, bits.f(height_bits) + 1
