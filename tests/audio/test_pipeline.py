"""The microphone path: noise goes down through it, settings change between blocks, a
failing block is passed on and counted, a dead source is reported and reopened."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from appliance.audio import metrics
from appliance.audio import pipeline as audio_pipeline
from appliance.audio.pipeline import AudioPipeline, AudioSettings, make_suppressor
from appliance.audio.sinks import MemorySink
from appliance.audio.sources import (
    BLOCK,
    RATE,
    AudioBlock,
    AudioSource,
    AudioSourceError,
    FileAudioSource,
)
from appliance.audio.suppress import Passthrough, SpectralSuppressor, Suppressor
from appliance.audio.wav import write_wav

from .conftest import noisy


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


def test_the_thread_runs_and_stops_and_keeps_five_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio_pipeline, "RING_SECONDS", 0.5)
    p = AudioPipeline(AudioSettings(input="synthetic://", output="null", noise_removal="spectral"))
    p.start()
    deadline = time.monotonic() + 5.0
    while p.status()["blocks"] < 80 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.stop(2.0)
    status = p.status()
    assert status["blocks"] >= 80 and status["problem"] is None and status["input"] is None
    before, after = p.recording()
    assert len(before) == len(after) == int(0.5 * RATE)
    assert np.abs(before).max() > 0.0


def test_disabled_does_nothing() -> None:
    p = AudioPipeline(AudioSettings(enabled=False))
    p._apply(p.settings)
    p.step()
    assert p.blocks == 0 and p.source is None and p.problem() is None
