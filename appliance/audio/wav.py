"""WAV files in and out, read with limits checked before anything is decoded.

``read_wav`` takes PCM 16-bit and IEEE float 32-bit (plain or WAVE_FORMAT_EXTENSIBLE),
any channel count up to ``MAX_CHANNELS`` averaged to mono, and refuses everything else
with a ValueError that says what was wrong. Only a regular file is read (a FIFO, a
device or a socket has no size to check and may never end); its size is checked before
it is read, and no more than ``max_bytes`` + 1 bytes are read in any case (a file that
grew meanwhile is refused too). The duration the header claims is checked before the
samples are decoded, so a huge or lying file costs no more than its header.
``write_wav`` writes mono 16-bit PCM.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import numpy as np

MAX_BYTES = 256 * 1024 * 1024  # an hour of 48 kHz stereo 16-bit is 691 MB: ~20 min of it
MAX_SECONDS = 1200.0
MAX_CHANNELS = 32
MAX_RATE = 384_000

_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
# WAVE_FORMAT_EXTENSIBLE's SubFormat is a GUID whose first two bytes are the format code
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_CHUNK = struct.Struct("<4sI")
_FMT = struct.Struct("<HHIIHH")


def read_wav(
    path: Path | str, max_bytes: int = MAX_BYTES, max_seconds: float = MAX_SECONDS
) -> tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], sample rate) of a WAV file; float samples
    beyond full scale are clipped."""
    path = Path(path)
    info = os.stat(path)  # refused before it is opened: opening a device may do things
    _check_regular(path, info.st_mode, max_bytes, info.st_size)
    # non-blocking: a FIFO put in its place meanwhile must not hang the open
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        _check_regular(path, info.st_mode, max_bytes, info.st_size)
        os.set_blocking(fd, True)
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path}: over the {max_bytes}-byte limit (it grew while read)")
    return parse_wav(data, max_seconds, name=str(path))


def _check_regular(path: Path, mode: int, max_bytes: int, size: int) -> None:
    if not stat.S_ISREG(mode):
        kinds = {
            "a FIFO": stat.S_ISFIFO,
            "a device": lambda m: stat.S_ISCHR(m) or stat.S_ISBLK(m),
            "a directory": stat.S_ISDIR,
            "a socket": stat.S_ISSOCK,
        }
        kind = next((k for k, test in kinds.items() if test(mode)), "something else")
        raise ValueError(f"{path}: {kind}, not a regular file; only files are read")
    if size > max_bytes:
        raise ValueError(f"{path}: {size} bytes, over the {max_bytes}-byte limit")


def parse_wav(
    data: bytes, max_seconds: float = MAX_SECONDS, name: str = "WAV"
) -> tuple[np.ndarray, int]:
    """``read_wav`` on bytes already in memory."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{name}: not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int] | None = None  # code, channels, rate, bits
    offset = 12
    while offset + _CHUNK.size <= len(data):
        chunk_id, chunk_size = _CHUNK.unpack_from(data, offset)
        body = offset + _CHUNK.size
        if chunk_size > len(data) - body:
            raise ValueError(f"{name}: chunk {chunk_id!r} runs past the end of the file")
        if chunk_id == b"fmt ":
            fmt = _format(data[body : body + chunk_size], name)
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError(f"{name}: data chunk before the fmt chunk")
            return _decode(data[body : body + chunk_size], *fmt, max_seconds, name)
        offset = body + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
    raise ValueError(f"{name}: no {'data' if fmt else 'fmt'} chunk")


def _format(chunk: bytes, name: str) -> tuple[int, int, int, int]:
    if len(chunk) < _FMT.size:
        raise ValueError(f"{name}: fmt chunk of {len(chunk)} bytes is too short")
    code, channels, rate, _, block_align, bits = _FMT.unpack_from(chunk)
    if code == _EXTENSIBLE:
        if len(chunk) < 40 or chunk[26:40] != _GUID_TAIL:
            raise ValueError(f"{name}: WAVE_FORMAT_EXTENSIBLE with an unknown sub-format")
        code = struct.unpack_from("<H", chunk, 24)[0]
    if (code, bits) not in ((_PCM, 16), (_FLOAT, 32)):
        raise ValueError(
            f"{name}: format {code:#06x} with {bits} bits; only 16-bit PCM and 32-bit float"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise ValueError(f"{name}: {channels} channels (1 to {MAX_CHANNELS} are read)")
    if not 1 <= rate <= MAX_RATE:
        raise ValueError(f"{name}: sample rate {rate} Hz (1 to {MAX_RATE} are read)")
    if block_align != channels * bits // 8:
        raise ValueError(f"{name}: block align {block_align} for {channels} x {bits} bits")
    return code, channels, rate, bits


def _decode(
    payload: bytes, code: int, channels: int, rate: int, bits: int, max_seconds: float, name: str
) -> tuple[np.ndarray, int]:
    frame_bytes = channels * bits // 8
    frames = len(payload) // frame_bytes  # a trailing partial frame is dropped, as players do
    if frames / rate > max_seconds:
        raise ValueError(f"{name}: {frames / rate:.1f} s, over the {max_seconds:g} s limit")
    raw = np.frombuffer(payload, dtype="<i2" if code == _PCM else "<f4", count=frames * channels)
    samples = raw.astype(np.float32).reshape(frames, channels)
    if code == _PCM:
        samples /= 32768.0
    elif not np.isfinite(samples).all():
        raise ValueError(f"{name}: float samples that are not finite")
    else:  # float may exceed full scale; everything after this expects [-1, 1], as a DAC
        np.clip(samples, -1.0, 1.0, out=samples)
    return samples.mean(axis=1, dtype=np.float32), rate


def write_wav(path: Path | str, samples: np.ndarray, rate: int) -> None:
    """Mono 16-bit PCM; samples outside [-1, 1] are clipped."""
    mono = np.asarray(samples, dtype=np.float64)
    if mono.ndim != 1:
        raise ValueError(f"write_wav takes mono samples, got shape {mono.shape}")
    pcm = np.clip(np.round(mono * 32768.0), -32768, 32767).astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE"
    fmt = _FMT.pack(_PCM, 1, rate, rate * 2, 2, 16)
    body = _CHUNK.pack(b"fmt ", len(fmt)) + fmt + _CHUNK.pack(b"data", len(pcm)) + pcm
    Path(path).write_bytes(header + body)
