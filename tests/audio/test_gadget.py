"""The host's mute and volume, read from the gadget's ALSA card, applied to what the
daemon plays to the host (f_uac2 changes no sample itself)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from appliance.audio.gadget import POLL_S, GadgetSink, HostControls
from appliance.audio.sinks import AlsaSink


def amixer(switch: str = "on", volume: int = 0, fail: bool = False):
    """A stand-in for ``subprocess.run(["amixer", ..., "cget", "name=..."])``."""
    calls: list[list[str]] = []

    def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        name = argv[-1].removeprefix("name=")
        if fail:
            return subprocess.CompletedProcess(argv, 1, "", "amixer: Invalid card number")
        value = switch if name.endswith("Switch") else str(volume)
        out = f"numid=3,iface=MIXER,name='{name}'\n  ; type=INTEGER,values=1\n  : values={value}\n"
        return subprocess.CompletedProcess(argv, 0, out, "")

    return run, calls


def test_a_host_mute_silences_and_its_volume_scales_within_a_poll():
    run, calls = amixer(volume=-2560)  # -10 dB in UAC2's 1/256 dB
    controls = HostControls(command="sh", run=run)
    assert controls.gain(now=0.0) == pytest.approx(10 ** (-10 / 20))
    assert calls[0][1:] == ["-c", "UAC2Gadget", "cget", "name=PCM Playback Switch"]
    run_muted, _ = amixer(switch="off")
    controls._run = run_muted
    assert controls.gain(now=POLL_S / 2) > 0  # not asked again before a poll is due
    assert controls.gain(now=POLL_S) == 0.0 and controls.muted


def test_without_amixer_or_the_card_nothing_is_applied_and_it_says_so_once(caplog):
    run, calls = amixer(fail=True)
    controls = HostControls(command="sh", run=run)
    assert controls.gain(now=0.0) == 1.0 and controls.gain(now=1.0) == 1.0
    assert len(calls) == 4  # two reads a poll, two polls
    assert sum("not applied" in r.message for r in caplog.records) == 1
    assert HostControls(command="no-such-amixer").gain(now=0.0) == 1.0


def test_the_gadget_sink_plays_what_the_host_asked_for(monkeypatch):
    written: list[np.ndarray] = []
    monkeypatch.setattr(AlsaSink, "write", lambda self, samples: written.append(samples) or True)
    run, _ = amixer(switch="off")
    sink = GadgetSink("hw:CARD=UAC2Gadget,DEV=0", controls=HostControls(command="sh", run=run))
    block = np.full(480, 0.5, dtype=np.float32)
    assert sink.write(block)
    assert not written[0].any() and written[0].dtype == np.float32  # muted: silence
