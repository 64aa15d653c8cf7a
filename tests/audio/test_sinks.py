"""Audio sinks: bounded WAV file, memory, null, and aplay failures as clear errors."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.sinks import (
    AlsaSink,
    AudioSinkError,
    MemorySink,
    NullSink,
    WavFileSink,
    open_audio_sink,
)
from appliance.audio.sources import BLOCK, RATE
from appliance.audio.wav import read_wav

from .conftest import FailsOnce


def block(value: float) -> np.ndarray:
    return np.full(BLOCK, value, dtype=np.float32)


def fake_tool(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_by_uri() -> None:
    assert isinstance(open_audio_sink("null"), NullSink)
    assert isinstance(open_audio_sink("memory://"), MemorySink)
    assert isinstance(open_audio_sink("file:///tmp/x.wav"), WavFileSink)
    assert isinstance(open_audio_sink("alsa:hw:UAC2Gadget"), AlsaSink)
    assert NullSink().write(block(0.1))


def test_memory_sink_keeps_the_last_seconds() -> None:
    sink = MemorySink(max_seconds=0.05)  # 2400 samples: 5 blocks
    for i in range(8):
        sink.write(block(i / 10))
    got = sink.samples()
    assert len(got) == 5 * BLOCK
    np.testing.assert_allclose(got[::BLOCK], [0.3, 0.4, 0.5, 0.6, 0.7], atol=1e-6)


def test_wav_sink_stops_at_its_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    sink = open_audio_sink(f"file://{path}")
    assert isinstance(sink, WavFileSink)
    sink.max_bytes = 44 + 2000  # two blocks and a bit
    sink.open()
    assert sink.write(block(0.25)) and sink.write(block(-0.25))
    assert not sink.write(block(0.5))  # partly written, then full
    assert sink.full and not sink.write(block(0.5))
    sink.close()
    sink.close()
    assert path.stat().st_size == 44 + 2000
    samples, rate = read_wav(path)
    assert rate == RATE and len(samples) == 1000
    np.testing.assert_allclose(samples[:BLOCK], 0.25, atol=1e-4)
    np.testing.assert_allclose(samples[2 * BLOCK :], 0.5, atol=1e-4)


def test_alsa_sink_without_aplay_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(AudioSinkError, match="'aplay' not found; install alsa-utils"):
        AlsaSink("hw:UAC2Gadget").open()


def test_alsa_sink_reports_a_missing_device(tmp_path: Path) -> None:
    cmd = fake_tool(
        tmp_path, "aplay", 'echo "aplay: main:831: audio open error: No such device" >&2; exit 1'
    )
    with pytest.raises(AudioSinkError, match="status 1: aplay: main:831: audio open error"):
        AlsaSink("hw:UAC2Gadget", command=cmd).open()


def test_alsa_sink_delivers_pcm16(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    cmd = fake_tool(tmp_path, "aplay", f'cat > "{out}"')
    sink = AlsaSink("hw:UAC2Gadget", command=cmd)
    sink.open()
    for value in (0.5, -0.5):
        assert sink.write(block(value))
    sink.close()
    pcm = np.frombuffer(out.read_bytes(), dtype="<i2")
    np.testing.assert_array_equal(pcm, [16384] * BLOCK + [-16384] * BLOCK)


def test_alsa_sink_that_stalls_drops_blocks_then_is_declared_gone(tmp_path: Path) -> None:
    cmd = fake_tool(tmp_path, "aplay", "exec sleep 30")  # never reads its input
    sink = AlsaSink("hw:UAC2Gadget", command=cmd)
    sink.open()
    start = time.monotonic()
    delivered = []
    with pytest.raises(AudioSinkError, match=r"has taken no audio for 2 s \(stalled\)"):
        for _ in range(1000):  # 10 s, far more than a pipe holds
            delivered.append(sink.write(block(0.1)))
    assert time.monotonic() - start < 2.0  # never blocked
    assert delivered[0] and not delivered[-1]
    # dropped in a row: exactly 2 s worth (200 blocks) before it is declared gone, so the
    # pipeline reopens it instead of dropping everything while the process lives
    assert delivered[-199:] == [False] * 199 and delivered.count(False) == 199
    assert sink._proc is None  # closed, the stalled process ended
    sink.close()


def test_alsa_sink_drains_a_chatty_stderr(tmp_path: Path) -> None:
    # aplay writes "underrun!!!" on every underrun: 360 KB of it, far more than a pipe
    # holds, before it reads its input; an unread stderr would stall it for good
    out = tmp_path / "raw"
    cmd = fake_tool(
        tmp_path,
        "aplay",
        f"yes 'underrun!!! (at least 0.1 ms long)' | head -n 10000 >&2\nexec cat > \"{out}\"",
    )
    sink = AlsaSink("hw:UAC2Gadget", command=cmd)
    sink.open()
    delivered = []
    for i in range(300):
        delivered.append(sink.write(block(0.001 * (i % 100))))
        time.sleep(0.002)
    assert all(delivered[-100:]), delivered.count(False)
    assert sink.underruns == 10000
    tail = sink.stderr_tail()
    assert len(tail) == 20 and all(line.startswith("underrun!!!") for line in tail)
    deadline = time.monotonic() + 2.0
    while out.stat().st_size < 100 * BLOCK * 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    sink.close()
    assert out.stat().st_size >= 100 * BLOCK * 2


def test_alsa_sink_keeps_only_the_tail_of_what_aplay_said(tmp_path: Path) -> None:
    cmd = fake_tool(
        tmp_path,
        "aplay",
        "yes 'underrun!!!' | head -n 50000 >&2\n"
        "echo 'aplay: pcm_write:2146: write error: Input/output error' >&2; exit 1",
    )
    sink = AlsaSink("hw:UAC2Gadget", command=cmd)
    with pytest.raises(AudioSinkError, match=r"status 1: .*underrun!!!; aplay: pcm_write") as err:
        sink.open()
        for _ in range(300):
            sink.write(block(0.1))
            time.sleep(0.002)
    assert len(str(err.value)) < 700  # a bounded message, not 50000 lines


def test_alsa_sink_whose_process_dies_says_so(tmp_path: Path) -> None:
    cmd = fake_tool(
        tmp_path,
        "aplay",
        "sleep 0.5; echo 'aplay: pcm_write:2146: write error: Input/output error' >&2; exit 1",
    )
    sink = AlsaSink("hw:UAC2Gadget", command=cmd)
    sink.open()
    time.sleep(1.0)
    with pytest.raises(AudioSinkError, match="write error"):
        sink.write(block(0.1))


def test_wav_sink_reopened_after_a_write_error_keeps_the_recording(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    sink = WavFileSink(path)
    sink.open()
    assert sink.write(block(0.25)) and sink.write(block(-0.25))
    sink._fh = FailsOnce(sink._fh)  # type: ignore[assignment]
    with pytest.raises(AudioSinkError, match="No space left"):
        sink.write(block(0.75))
    sink.close()
    sink.open()  # as the pipeline does after the error: appended, not truncated
    assert sink.write(block(0.5))
    sink.close()
    samples, _ = read_wav(path)
    assert len(samples) == 3 * BLOCK
    np.testing.assert_allclose(samples[::BLOCK], [0.25, -0.25, 0.5], atol=1e-4)
    # a sink that begins a recording replaces an older file; the limit counts it all
    fresh = WavFileSink(path, max_bytes=44 + 4 * BLOCK * 2)
    fresh.open()
    assert fresh.write(block(0.1))
    fresh.close()
    fresh.open()
    assert fresh.write(block(0.2)) and fresh.write(block(0.3))
    assert fresh.write(block(0.4)) and not fresh.write(block(0.5)) and fresh.full
    fresh.close()
    samples, _ = read_wav(path)
    np.testing.assert_allclose(samples[::BLOCK], [0.1, 0.2, 0.3, 0.4], atol=1e-4)


def test_wav_sink_does_not_overwrite_a_recording_cut_short_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    sink = WavFileSink(path)
    sink.open()
    sink.write(block(0.25))
    sink.close()
    with path.open("r+b") as fh:
        fh.truncate(100)
    with pytest.raises(AudioSinkError, match=r"shorter .* not overwriting it"):
        sink.open()
    assert path.stat().st_size == 100
    path.unlink()  # removed: nothing to keep, a new recording begins
    sink.open()
    assert sink.write(block(0.5))
    sink.close()
    samples, _ = read_wav(path)
    assert len(samples) == BLOCK


def test_the_gadget_output_is_the_gadgets_microphone_where_there_is_one(tmp_path):
    from appliance.audio.gadget import GadgetSink, gadget_pcm

    sound = tmp_path / "class" / "sound"
    (sound / "card0").mkdir(parents=True)
    (sound / "card0" / "id").write_text("PCH\n")
    assert gadget_pcm(tmp_path) is None
    assert isinstance(open_audio_sink("gadget", sys_root=tmp_path), NullSink)  # a PC: nowhere
    (sound / "card1").mkdir()
    (sound / "card1" / "id").write_text("UAC2Gadget\n")  # gadget up made the microphone
    sink = open_audio_sink("gadget", sys_root=tmp_path)
    assert isinstance(sink, GadgetSink) and sink.uri == "alsa:hw:CARD=UAC2Gadget,DEV=0"
