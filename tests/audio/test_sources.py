"""Audio sources by URI: the file loops within its limits, the synthetic voice is
deterministic with a click at each mouth opening, and ALSA failures are clear errors."""

from __future__ import annotations

import math
import stat
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from appliance.audio import sources
from appliance.audio.sources import (
    BLOCK,
    BLOCK_NS,
    CLICK_S,
    RATE,
    AlsaSource,
    AudioSourceError,
    FileAudioSource,
    SyntheticAudioSource,
    open_audio_source,
)
from appliance.audio.uri import parse_audio_sink, parse_audio_source
from appliance.audio.wav import write_wav
from appliance.capture.synthetic import SyntheticSource, speech_schedule


def tone(n: int, rate: int = RATE) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)


def read_all(source: sources.AudioSource, blocks: int) -> list[sources.AudioBlock]:
    out = []
    for _ in range(blocks):
        block = source.read(1.0)
        assert block is not None
        out.append(block)
    return out


def test_uris_have_one_spelling_and_clear_errors() -> None:
    assert parse_audio_source("alsa:hw:1,0").target == "hw:1,0"
    assert parse_audio_source("alsa://plughw:CARD=Mic,DEV=0").uri == "alsa:plughw:CARD=Mic,DEV=0"
    assert parse_audio_source("synthetic://").scheme == "synthetic"
    assert parse_audio_source("file:///x.wav").target == "/x.wav"
    assert parse_audio_sink("null").scheme == "null"
    assert parse_audio_sink("gadget").uri == parse_audio_sink("gadget://").uri == "gadget"
    assert parse_audio_sink("alsa:hw:UAC2Gadget").target == "hw:UAC2Gadget"
    for bad in ("alsa:", "alsa:hw:0; rm -rf /", "v4l2:///dev/video0", "file://", "synthetic://x"):
        with pytest.raises(ValueError, match=r"alsa|file|synthetic"):
            parse_audio_source(bad)
    with pytest.raises(ValueError, match="null"):
        parse_audio_sink("memory://x")


def test_file_source_loops_with_block_timestamps(tmp_path: Path) -> None:
    signal = tone(5 * BLOCK + 100)  # not a whole number of blocks: the loop joins mid-block
    write_wav(tmp_path / "a.wav", signal, RATE)
    with open_audio_source(f"file://{tmp_path / 'a.wav'}", realtime=False) as source:
        blocks = read_all(source, 13)
    got = np.concatenate([b.samples for b in blocks])
    pcm = np.round(signal * 32768) / 32768  # as stored in 16-bit
    np.testing.assert_allclose(got, np.resize(pcm, len(got)), atol=1e-6)
    assert [b.seq for b in blocks] == list(range(13))
    assert all(b.samples.dtype == np.float32 and len(b.samples) == BLOCK for b in blocks)
    assert all(b.t_capture_ns - a.t_capture_ns == BLOCK_NS for a, b in pairwise(blocks))


def test_file_source_is_paced_at_real_time(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", tone(RATE), RATE)
    with FileAudioSource(tmp_path / "a.wav") as source:
        blocks = read_all(source, 10)
        assert source.read(timeout=0.0) is None  # the next one is not due yet
    span = blocks[-1].t_capture_ns - blocks[0].t_capture_ns
    assert span == 9 * BLOCK_NS


def test_file_source_is_bounded_and_refuses_odd_rates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_wav(tmp_path / "long.wav", tone(3 * RATE), RATE)
    monkeypatch.setattr(sources, "MAX_FILE_SECONDS", 2.0)
    with pytest.raises(AudioSourceError, match="over the 2 s limit"):
        FileAudioSource(tmp_path / "long.wav").open()
    write_wav(tmp_path / "cd.wav", tone(44100, 44100), 44100)
    with pytest.raises(AudioSourceError, match=r"44100 Hz is not an integer ratio"):
        FileAudioSource(tmp_path / "cd.wav").open()
    with pytest.raises(AudioSourceError, match=r"missing\.wav"):
        FileAudioSource(tmp_path / "missing.wav").open()


def test_file_source_resamples_16k(tmp_path: Path) -> None:
    write_wav(tmp_path / "wb.wav", tone(16000, 16000), 16000)
    with FileAudioSource(tmp_path / "wb.wav", realtime=False) as source:
        got = np.concatenate([b.samples for b in read_all(source, 100)])
    middle = got[2000:40000]
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    assert abs(np.argmax(spectrum) * RATE / len(middle) - 440) < 2  # still 440 Hz at 48 kHz
    assert 0.45 < np.abs(middle).max() < 0.55


def test_synthetic_voice_is_deterministic_and_follows_the_face() -> None:
    a, b = SyntheticAudioSource(realtime=False), SyntheticAudioSource(realtime=False)
    a.open()
    b.open()
    first = np.concatenate([blk.samples for blk in read_all(a, 300)])
    np.testing.assert_array_equal(first, np.concatenate([blk.samples for blk in read_all(b, 300)]))
    np.testing.assert_array_equal(first, a.render(0, 300 * BLOCK))
    # another cycle of the schedule is the same sound
    period = int(a.period_s * RATE)
    np.testing.assert_array_equal(a.render(period + 1000, 4800), a.render(1000, 4800))

    starts, durations, _ = speech_schedule(0)
    np.testing.assert_array_equal(a.onsets_s(a.period_s), starts)
    face = SyntheticSource(64, 48, fps=1000.0)  # one frame per ms of scene time
    x = a.render(0, 20 * RATE)
    onsets = a.onsets_s(20.0)
    assert len(onsets) > 20
    for onset, duration in zip(onsets, durations[: len(onsets)], strict=True):
        n0 = math.ceil(onset * RATE)
        # the click: loud right at the onset, gone within CLICK_S
        assert np.abs(x[n0 : n0 + 24]).max() > 0.2, onset
        # the face's mouth (nearly) shut at the onset, open mid-syllable, as the voice
        assert face.pose(math.ceil(onset * 1000)).mouth_open < 0.05
        assert face.pose(math.ceil((onset + duration / 2) * 1000)).mouth_open > 0.2
        m = int((onset + duration / 2) * RATE)
        assert np.abs(x[m - 480 : m + 480]).max() > 0.01
    # silence where nobody speaks: between the last syllable of a phrase and the next one
    ends = starts + durations
    gaps = [(e, s) for e, s in zip(ends[:-1], starts[1:], strict=True) if s - e > 0.3]
    assert gaps
    for end, start in gaps:
        if start < 20.0:
            assert not x[math.ceil(end * RATE) + 1 : int(start * RATE) - 1].any()
    assert CLICK_S < 0.005


def fake_tool(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_alsa_source_without_arecord_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(AudioSourceError, match="'arecord' not found; install alsa-utils"):
        AlsaSource("hw:1,0").open()


def test_alsa_source_reports_a_missing_device(tmp_path: Path) -> None:
    cmd = fake_tool(
        tmp_path,
        "arecord",
        'echo "arecord: main:831: audio open error: No such file or directory" >&2; exit 1',
    )
    with pytest.raises(AudioSourceError, match="status 1: arecord: main:831: audio open error"):
        AlsaSource("hw:9,0", command=cmd).open()


def test_alsa_source_reads_reports_death_and_reopens(tmp_path: Path) -> None:
    # ten blocks of a constant, an overrun report, then the process dies
    args = tmp_path / "args"
    cmd = fake_tool(
        tmp_path,
        "arecord",
        f'printf "%s\\n" "$@" > "{args}"\n'
        "printf 'overrun!!! (at least 1.0 ms long)\\n' >&2\n"
        "head -c 9600 /dev/zero | tr '\\0' '\\100'\nexit 3",
    )
    source = AlsaSource("hw:1,0", command=cmd)
    for _ in range(2):  # the second round: reopened after the death, like a re-plug
        args.unlink(missing_ok=True)
        source.open()
        blocks = read_all(source, 10)
        assert all(np.allclose(b.samples, 0x4040 / 32768) for b in blocks)
        assert sum(b.xruns for b in blocks) == 1
        with pytest.raises(AudioSourceError, match="exited with status 3"):
            source.read(1.0)
        source.close()
        # what arecord was asked for: the device, 16-bit little-endian, 48 kHz, mono, raw
        assert args.read_text().splitlines() == [
            "-D",
            "hw:1,0",
            "-f",
            "S16_LE",
            "-r",
            "48000",
            "-c",
            "1",
            "-t",
            "raw",
            "--buffer-time=40000",
        ]


def test_alsa_source_that_closes_its_output_but_hangs_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "EXIT_WAIT_S", 0.2)
    cmd = fake_tool(
        tmp_path,
        "arecord",
        "head -c 1920 /dev/zero\necho 'arecord: stuck' >&2\nexec >&-\nexec sleep 30",
    )
    source = AlsaSource("hw:1,0", command=cmd)
    source.open()
    proc = source._proc
    assert proc is not None
    assert len(read_all(source, 2)) == 2  # the blocks it did write come first
    start = time.monotonic()
    with pytest.raises(AudioSourceError, match=r"exited with status -9: arecord: stuck"):
        source.read(1.0)
    assert time.monotonic() - start < 1.0
    assert proc.returncode == -9 and source._proc is None


def test_alsa_source_read_error_is_a_source_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cmd = fake_tool(tmp_path, "arecord", "exec cat /dev/zero")
    source = AlsaSource("hw:1,0", command=cmd)
    source.open()
    proc = source._proc

    def broken(fd: int, n: int) -> bytes:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(sources.os, "read", broken)
    source._buffer.clear()
    with pytest.raises(AudioSourceError, match=r"reading it failed: .*Input/output error"):
        source.read(1.0)
    monkeypatch.undo()
    assert proc is not None and proc.poll() is not None  # the process was ended too


def test_alsa_source_timestamps_never_go_backwards(tmp_path: Path) -> None:
    # 3 s of audio at once, more than a pipe holds: arecord after a stall (or a slow
    # reader) hands over a backlog that arrives in pieces
    cmd = fake_tool(tmp_path, "arecord", "head -c 288000 /dev/zero | tr '\\0' '\\1'\nexec sleep 5")
    source = AlsaSource("hw:1,0", command=cmd)
    source.open()
    start = time.monotonic_ns()
    blocks = read_all(source, 300)
    end = time.monotonic_ns()
    source.close()
    stamps = [b.t_capture_ns for b in blocks]
    steps = [b - a for a, b in pairwise(stamps)]
    assert min(steps) >= 0, [i for i, d in enumerate(steps) if d < 0]
    # all of it was captured before it was read: the first block 3 s before the last
    assert start - 4 * 10**9 < stamps[0] <= stamps[-1] < end
