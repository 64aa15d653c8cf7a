"""WAV in and out: what is read, what is refused and why, before any sample is decoded."""

from __future__ import annotations

import os
import struct
import threading
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.audio.wav import parse_wav, read_wav, write_wav

from .conftest import AUDIO

_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def wav_bytes(
    payload: bytes,
    code: int = 1,
    channels: int = 1,
    rate: int = 48_000,
    bits: int = 16,
    extensible: bool = False,
    extra: bytes = b"",
) -> bytes:
    """A WAV file's bytes: an optional extra chunk, fmt, then data."""
    align = channels * bits // 8
    fmt = struct.pack(
        "<HHIIHH", 0xFFFE if extensible else code, channels, rate, rate * align, align, bits
    )
    if extensible:
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", code) + _GUID_TAIL
    chunks = extra + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def test_a_written_file_reads_back_to_the_16_bit_grid(tmp_path):
    x = np.sin(np.linspace(0, 40, 4800)).astype(np.float32) * 0.8
    write_wav(tmp_path / "a.wav", x, 48_000)
    y, rate = read_wav(tmp_path / "a.wav")
    assert rate == 48_000 and y.dtype == np.float32 and len(y) == len(x)
    assert np.abs(y - x).max() <= 1 / 32768
    write_wav(tmp_path / "loud.wav", np.array([2.0, -2.0]), 16_000)
    assert read_wav(tmp_path / "loud.wav")[0].tolist() == [32767 / 32768, -1.0]  # clipped


def test_float_extensible_and_stereo_files_are_averaged_to_mono():
    stereo = np.array([[0.5, -0.25], [1.0, 0.0]], dtype="<f4")
    y, rate = parse_wav(wav_bytes(stereo.tobytes(), code=3, channels=2, bits=32, rate=16_000))
    assert rate == 16_000 and y.tolist() == [0.125, 0.5]
    hot = np.array([3.0, -1.5], dtype="<f4").tobytes()  # float files may exceed full scale
    assert parse_wav(wav_bytes(hot, code=3, bits=32))[0].tolist() == [1.0, -1.0]
    pcm = np.array([[16384, 0], [-32768, -32768]], dtype="<i2").tobytes()
    y, _ = parse_wav(wav_bytes(pcm, channels=2, extensible=True, extra=b"LIST\x02\x00\x00\x00ab"))
    assert y.tolist() == [0.25, -1.0]


def test_the_shared_speech_reads_as_48_khz_mono():
    y, rate = read_wav(AUDIO / "speech" / "en_vctk_p286_m.wav")
    assert rate == 48_000 and y.ndim == 1 and 6.5 < len(y) / rate < 7.0
    assert 0.8 < np.abs(y).max() <= 1.0  # peak-normalised to -1 dBFS


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"RIFX" + bytes(40), "not a RIFF/WAVE"),
        (wav_bytes(bytes(6), bits=24), "only 16-bit PCM and 32-bit float"),
        (wav_bytes(bytes(6), bits=8), "only 16-bit PCM and 32-bit float"),
        (wav_bytes(bytes(8), code=3, bits=16), "only 16-bit PCM and 32-bit float"),
        (wav_bytes(bytes(8), code=2), "format 0x0002"),
        (wav_bytes(bytes(4), channels=0), "0 channels"),
        (wav_bytes(bytes(4), rate=0), "sample rate 0"),
        (wav_bytes(np.array([np.nan], "<f4").tobytes(), code=3, bits=32), "not finite"),
        (wav_bytes(bytes(8))[:-4], "runs past the end"),
        (b"RIFF\x04\x00\x00\x00WAVEdata\x02\x00\x00\x00\x00\x00", "data chunk before the fmt"),
        (b"RIFF\x04\x00\x00\x00WAVE", "no fmt chunk"),
        (wav_bytes(b"")[: -len(b"data\x00\x00\x00\x00")], "no data chunk"),
    ],
)
def test_malformed_files_are_refused_with_the_reason(data, message):
    with pytest.raises(ValueError, match=message):
        parse_wav(data)


def test_the_limits_are_checked_before_the_samples_are_read(tmp_path, monkeypatch):
    path = tmp_path / "long.wav"
    path.write_bytes(wav_bytes(bytes(48_000 * 2 * 3)))  # 3 s
    with pytest.raises(ValueError, match="over the 1000-byte limit"):
        read_wav(path, max_bytes=1000)
    with pytest.raises(ValueError, match=r"3\.0 s, over the 2 s limit"):
        read_wav(path, max_seconds=2)
    # refused from the header's figures alone: no sample is decoded
    monkeypatch.setattr(np, "frombuffer", lambda *a, **k: pytest.fail("decoded"))
    with pytest.raises(ValueError, match="over the 2 s limit"):
        parse_wav(path.read_bytes(), max_seconds=2)


def test_only_regular_files_are_read(tmp_path):
    # a FIFO has no size to check: fed 3 MB it must not be read whole past max_bytes
    fifo = tmp_path / "in.wav"
    os.mkfifo(fifo)
    fed, done = [], threading.Event()

    def feed():
        while not done.is_set():  # until a reader opens it
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader yet
                time.sleep(0.001)
                continue
            os.set_blocking(fd, True)
            try:
                with open(fd, "wb") as fh:
                    fh.write(wav_bytes(bytes(3_000_000)))
                fed.append(True)
            except BrokenPipeError:
                pass
            return

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        with pytest.raises(ValueError, match="a FIFO, not a regular file"):
            read_wav(fifo, max_bytes=1000)
    finally:
        done.set()
        writer.join(5.0)
    assert not fed and not writer.is_alive()
    with pytest.raises(ValueError, match="a device, not a regular file"):
        read_wav("/dev/null")
    with pytest.raises(ValueError, match="a directory, not a regular file"):
        read_wav(tmp_path)


def test_no_more_than_max_bytes_is_read(tmp_path, monkeypatch):
    # the size is checked first, but a file that grows after it is still cut off: both
    # stat calls say 10 bytes here, as they would have before it grew
    path = tmp_path / "grows.wav"
    path.write_bytes(wav_bytes(bytes(48_000 * 2)))
    real_fstat = os.fstat
    monkeypatch.setattr(
        os, "fstat", lambda fd: os.stat_result((*real_fstat(fd)[:6], 10, *real_fstat(fd)[7:]))
    )
    monkeypatch.setattr(
        os, "stat", lambda p, **k: os.stat_result((0o100644, *[0] * 5, 10, 0, 0, 0))
    )
    with pytest.raises(ValueError, match="over the 1000-byte limit"):
        read_wav(path, max_bytes=1000)
    monkeypatch.undo()
    assert len(read_wav(path, max_bytes=48_000 * 2 + 44)[0]) == 48_000


@pytest.mark.fuzz
@given(
    st.binary(max_size=200)
    | st.builds(lambda b, n: wav_bytes(b)[:n] + b, st.binary(max_size=64), st.integers(0, 60))
)
def test_any_bytes_give_samples_or_a_value_error(data):
    try:
        samples, rate = parse_wav(data)
    except ValueError:
        return
    assert samples.dtype == np.float32 and samples.ndim == 1 and rate >= 1
    assert np.isfinite(samples).all() and np.abs(samples).max(initial=0) <= 1.0
