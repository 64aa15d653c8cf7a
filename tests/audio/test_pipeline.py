"""The microphone path: noise goes down through it, settings change between blocks, a
failing block is passed on and counted, a dead source is reported and reopened."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from appliance.audio import metrics
from appliance.audio import pipeline as audio_pipeline
from appliance.audio.pipeline import AudioPipeline, AudioSettings, make_suppressor
from appliance.audio.sinks import AudioSink, MemorySink, WavFileSink
from appliance.audio.sources import (
    BLOCK,
    RATE,
    AudioBlock,
    AudioSource,
    AudioSourceError,
    FileAudioSource,
    SyntheticAudioSource,
)
from appliance.audio.suppress import Passthrough, SpectralSuppressor, Suppressor
from appliance.audio.wav import read_wav, write_wav

from .conftest import FailsOnce, noisy


def run_blocks(p: AudioPipeline, x: np.ndarray) -> np.ndarray:
    return np.concatenate([p.process(x[i : i + BLOCK]) for i in range(0, len(x), BLOCK)])


@pytest.mark.parametrize(("method", "at_least_db"), [("spectral", 2.5), ("gtcrn", 5.0)])
def test_noise_goes_down_through_the_pipeline(
    tmp_path: Path, method: str, at_least_db: float
) -> None:
    # the same mix and margins as test_suppress (measured there: +4.2 and +7.7 dB)
    mix, clean = noisy("en_vctk_p286_m", "machine_exercise_bike", 5, 4.0)
    write_wav(tmp_path / "noisy.wav", mix, RATE)
    sink = MemorySink()
    p = AudioPipeline(
        AudioSettings(input="file://noisy.wav", output="memory://", noise_removal=method),
        open_source=lambda uri: FileAudioSource(tmp_path / "noisy.wav", realtime=False),
        open_sink=lambda uri: sink,
    )
    p.apply_controls()
    p._apply(p.settings)
    assert p._suppressor is not None and p.suppressor_note == ""
    latency = p._suppressor.latency_samples
    blocks = -(-(len(clean) + latency) // BLOCK)
    for _ in range(blocks):
        p.step()
    assert p.blocks == blocks
    out = sink.samples()[latency : latency + len(clean)]
    stored = np.round(mix * 32768) / 32768  # the mix as the 16-bit file holds it
    before = metrics.si_sdr(clean, stored.astype(np.float32), RATE)
    after = metrics.si_sdr(clean, out, RATE)
    assert after - before > at_least_db, (before, after)
    status = p.status()
    assert status["failed_blocks"] == 0 and status["xruns"] == 0
    assert 0 < status["noise_removal_ms_p50"] <= status["noise_removal_ms_p99"]
    assert status["level"]["input_rms_dbfs"] > status["level"]["output_rms_dbfs"] > -60
    before_ring, after_ring = p.recording()
    assert len(before_ring) == len(after_ring) == blocks * BLOCK  # under 5 s: all of it
    np.testing.assert_array_equal(after_ring, sink.samples())


def test_gain_mute_and_strength_change_between_blocks() -> None:
    p = AudioPipeline(AudioSettings(noise_removal="off"))
    p._apply(p.settings)
    x = np.full(BLOCK, 0.1, dtype=np.float32)
    np.testing.assert_allclose(p.process(x), 0.1, rtol=1e-6)
    p.configure(replace(p.settings, gain_db=20.0))
    np.testing.assert_allclose(p.process(x), 0.1, rtol=1e-6)  # not applied mid-stream ...
    p.apply_controls()  # ... but between blocks
    y = p.process(x)
    np.testing.assert_allclose(y, 1.0, rtol=1e-6)
    p.configure(replace(p.settings, gain_db=30.0))
    p.apply_controls()
    assert (p.process(x) == 1.0).all()  # clipped, and counted
    p.configure(replace(p.settings, mute=True))
    p.apply_controls()
    assert not p.process(x).any()
    # strength: the same suppressor, told between blocks
    p.configure(
        replace(p.settings, mute=False, gain_db=0.0, noise_removal="spectral", strength=0.5)
    )
    p.apply_controls()
    suppressor = p._suppressor
    assert isinstance(suppressor, SpectralSuppressor) and suppressor.strength == 0.5
    p.configure(replace(p.settings, strength=0.2))
    p.apply_controls()
    assert p._suppressor is suppressor and suppressor.strength == 0.2
    for _ in range(100 - 4):
        p.process(x)
    assert p.status()["level"]["clipped"] >= BLOCK  # the block at +30 dB at least


class Flaky(Suppressor):
    def __init__(self) -> None:
        self.calls = 0
        super().__init__()

    def _run(self, hops: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("boom")
        return hops * 0.5


def test_a_failing_block_is_passed_through_and_counted() -> None:
    p = AudioPipeline(AudioSettings(), suppressor=lambda method, strength: (Flaky(), ""))
    p._apply(p.settings)
    x = np.full(BLOCK, 0.2, dtype=np.float32)
    outs = [p.process(x) for _ in range(5)]
    np.testing.assert_allclose(outs[1], 0.1)
    np.testing.assert_allclose(outs[2], 0.2)  # unprocessed
    np.testing.assert_allclose(outs[3], 0.1)
    assert p.status()["failed_blocks"] == 1 and p.status()["blocks"] == 5


def test_gtcrn_that_cannot_load_falls_back_to_spectral(monkeypatch: pytest.MonkeyPatch) -> None:
    import appliance.audio.suppress as suppress

    def broken(strength: float = 1.0) -> Suppressor:
        raise suppress.ModelIntegrityError("GTCRN model not readable at /nowhere")

    monkeypatch.setattr(suppress, "GtcrnSuppressor", broken)
    suppressor, note = make_suppressor("gtcrn", 0.7)
    assert isinstance(suppressor, SpectralSuppressor) and suppressor.strength == 0.7
    assert "not readable" in note and "using spectral" in note
    assert isinstance(make_suppressor("off", 1.0)[0], Passthrough)


class Dying(AudioSource):
    """Delivers ``lives`` blocks per open, then raises."""

    opened = 0

    def __init__(self, lives: int = 5) -> None:
        self.uri = "alsa:hw:7,0"
        self.lives = lives

    def open(self) -> None:
        type(self).opened += 1
        if type(self).opened == 2:
            raise AudioSourceError("alsa:hw:7,0: arecord exited with status 1: No such device")
        self.left = self.lives

    def read(self, timeout: float = 0.25) -> AudioBlock | None:
        if self.left == 0:
            raise AudioSourceError("alsa:hw:7,0: arecord exited with status 1: unplugged")
        self.left -= 1
        time.sleep(0.001)
        return AudioBlock(np.zeros(BLOCK, np.float32), time.monotonic_ns(), 0)

    def close(self) -> None:
        pass


def test_a_dead_source_is_reported_and_reopened(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio_pipeline, "RETRY_MIN_S", 0.05)
    Dying.opened = 0
    sink = MemorySink()
    p = AudioPipeline(
        AudioSettings(input="alsa:hw:7,0", noise_removal="off"),
        open_source=lambda uri: Dying(),
        open_sink=lambda uri: sink,
    )
    p._apply(p.settings)
    seen = []
    for _ in range(400):
        p.step()
        seen.append(p.status()["input_error"])
        if p.status()["reopens"] >= 1 and p.blocks >= 10:
            break
    assert any(e and "unplugged" in e for e in seen)
    assert any(e and "No such device" in e for e in seen)  # the failed reopen, backed off
    assert p.status()["reopens"] >= 1 and p.blocks >= 10
    assert p.status()["input"] == "alsa:hw:7,0" and p.status()["input_error"] is None


def test_a_device_plugged_in_is_tried_at_once_not_after_the_back_off() -> None:
    Dying.opened = 1  # the next open fails: the microphone is not there yet
    p = AudioPipeline(
        AudioSettings(input="alsa:hw:7,0", noise_removal="off"),
        open_source=lambda uri: Dying(),
        open_sink=lambda uri: MemorySink(),
    )
    p._apply(p.settings)
    p.step()  # the open fails: retried only after the back-off
    assert p.source is None and p._source_state.retry_at > time.monotonic()
    p.step()
    assert p.source is None  # still waiting out the back-off
    p.device_changed("/dev/snd/pcmC1D0c")  # udev: a sound device came
    p.apply_controls()  # as the audio thread does between blocks
    p.step()
    assert p.source is not None and p.status()["input_error"] is None


def test_the_thread_runs_and_stops_and_keeps_five_seconds() -> None:
    assert audio_pipeline.RING_SECONDS == 5.0
    made: list[SyntheticAudioSource] = []

    def fast_voice(uri: str) -> SyntheticAudioSource:
        made.append(SyntheticAudioSource(realtime=False))  # as fast as it is read
        return made[-1]

    sink = MemorySink(max_seconds=10.0)
    p = AudioPipeline(
        AudioSettings(input="synthetic://", output="memory://", noise_removal="spectral"),
        open_source=fast_voice,
        open_sink=lambda uri: sink,
    )
    p.start()
    deadline = time.monotonic() + 20.0
    while p.status()["blocks"] < 700 and time.monotonic() < deadline:  # 7 s of audio
        time.sleep(0.05)
    assert p.stop(2.0)
    status = p.status()
    assert status["blocks"] >= 700 and status["problem"] is None and status["input"] is None
    before, after = p.recording()
    # exactly the last 5 s, of both: what was captured and what was sent
    assert len(before) == len(after) == 5 * RATE
    assert len(made) == 1
    sent = p.blocks * BLOCK
    np.testing.assert_array_equal(before, made[0].render(sent - 5 * RATE, 5 * RATE))
    np.testing.assert_array_equal(after, sink.samples()[-5 * RATE :])
    assert np.abs(before).max() > 0.0 and np.abs(after).max() > 0.0


class Raising(AudioSource):
    """Delivers ``lives`` blocks per open, then raises ``error`` (not an AudioSourceError)."""

    def __init__(self, error: Exception, lives: int = 3) -> None:
        self.uri = "alsa:hw:7,0"
        self.error, self.lives = error, lives
        self.opens = 0

    def open(self) -> None:
        self.opens += 1
        self.left = self.lives

    def read(self, timeout: float = 0.25) -> AudioBlock | None:
        if self.left == 0:
            raise self.error
        self.left -= 1
        time.sleep(0.001)
        return AudioBlock(np.zeros(BLOCK, np.float32), time.monotonic_ns(), 0)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (RuntimeError("a bug"), "RuntimeError: a bug"),
        (OSError(5, "Input/output error"), "OSError: .*Input/output error"),
        (subprocess.TimeoutExpired("arecord", 1.0), "TimeoutExpired"),
    ],
)
def test_any_source_error_is_survived_and_the_source_reopened(
    monkeypatch: pytest.MonkeyPatch, error: Exception, said: str
) -> None:
    monkeypatch.setattr(audio_pipeline, "RETRY_MIN_S", 0.01)
    source = Raising(error)
    p = AudioPipeline(
        AudioSettings(input="alsa:hw:7,0", output="null", noise_removal="off"),
        open_source=lambda uri: source,
    )
    p.start()
    errors = []
    deadline = time.monotonic() + 10.0
    while source.opens < 4 and time.monotonic() < deadline:
        errors.append(p.status()["input_error"])
        time.sleep(0.005)
    assert p._thread is not None and p._thread.is_alive()  # the thread goes on
    assert source.opens >= 4 and p.status()["input_failures"] >= 3
    assert p.failure is None and p.loop_errors == 0  # taken by the source's own path
    assert any(e and re.search(f"alsa:hw:7,0: {said}", e) for e in errors), set(errors)
    assert p.stop(2.0)
    assert not p._thread.is_alive()  # and ends on stop()


class BrokenSink(AudioSink):
    uri = "alsa:hw:UAC2Gadget"

    def __init__(self) -> None:
        self.opens = self.writes = 0

    def open(self) -> None:
        self.opens += 1

    def write(self, samples: np.ndarray) -> bool:
        self.writes += 1
        if self.writes % 3 == 0:
            raise BrokenPipeError(32, "Broken pipe")
        return True


def test_any_sink_error_is_survived_and_the_sink_reopened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audio_pipeline, "RETRY_MIN_S", 0.01)
    sink = BrokenSink()
    made = []
    p = AudioPipeline(
        AudioSettings(output="alsa:hw:UAC2Gadget", noise_removal="off"),
        open_source=lambda uri: SyntheticAudioSource(realtime=False),
        open_sink=lambda uri: made.append(1) or sink,
    )
    p.start()
    deadline = time.monotonic() + 10.0
    while sink.opens < 4 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert p._thread is not None and p._thread.is_alive()
    assert sink.opens >= 4 and p.status()["output_failures"] >= 3
    assert len(made) == 1  # reopened, not made again
    assert p.status()["sink_dropped"] >= 3 and p.failure is None
    assert p.stop(2.0)


def test_a_loop_that_raises_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio_pipeline, "LOOP_ERROR_WAIT_S", 0.001)
    p = AudioPipeline(
        AudioSettings(output="null", noise_removal="off"),
        open_source=lambda uri: SyntheticAudioSource(realtime=False),
    )
    calls = 0
    real_process = p.process

    def flaky(*args: object, **kwargs: object) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise RuntimeError("an unforeseen bug")
        return real_process(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(p, "process", flaky)
    p.start()
    deadline = time.monotonic() + 10.0
    while p.blocks < 20 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert p.blocks >= 20 and p.status()["loop_errors"] >= 20 and p.failure is None
    assert p._thread is not None and p._thread.is_alive()
    assert p.stop(2.0)


def test_a_file_sink_that_failed_is_reopened_and_keeps_the_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio_pipeline, "RETRY_MIN_S", 0.0)
    path = tmp_path / "out.wav"
    p = AudioPipeline(
        AudioSettings(output=f"file://{path}", noise_removal="off"),
        open_source=lambda uri: SyntheticAudioSource(realtime=False),
    )
    p._apply(p.settings)
    for _ in range(10):
        p.step()
    sink = p.sink
    assert isinstance(sink, WavFileSink)
    sink._fh = FailsOnce(sink._fh)  # type: ignore[assignment]
    p.step()  # the write fails: the sink is closed, to be reopened
    assert p.sink is None and "No space left" in p.status()["output_error"]
    for _ in range(10):
        p.step()
    assert p.sink is sink and p.status()["output_error"] is None
    p.stop()
    samples, _ = read_wav(path)
    voice = SyntheticAudioSource(realtime=False)
    expected = np.concatenate([voice.render(0, 10 * BLOCK), voice.render(11 * BLOCK, 10 * BLOCK)])
    assert len(samples) == 20 * BLOCK  # the 10 blocks before the error are still there
    np.testing.assert_allclose(samples, expected, atol=1 / 32768)


class Racy(AudioPipeline):
    """Another thread closes the source and sink right after each is read once."""

    def __getattribute__(self, name: str) -> object:
        value = super().__getattribute__(name)
        if name in ("source", "sink") and value is not None:
            object.__setattr__(self, name, None)
        return value


def test_status_reads_the_source_and_sink_once() -> None:
    p = Racy(AudioSettings(noise_removal="off"))
    object.__setattr__(p, "source", SyntheticAudioSource())
    object.__setattr__(p, "sink", MemorySink())
    status = p.status()
    assert status["input"] == "synthetic://" and status["output"] == "memory://"


def test_disabled_does_nothing() -> None:
    p = AudioPipeline(AudioSettings(enabled=False))
    p._apply(p.settings)
    p.step()
    assert p.blocks == 0 and p.source is None and p.problem() is None
