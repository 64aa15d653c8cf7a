"""``appliance audio eval``: the mixes are what they say, and a short run prints its table
and writes JSON and plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from appliance.audio import metrics
from appliance.audio.evaluate import REVERB_RIR, VBD_LABEL, items, mix_at_snr
from appliance.cli import main

from .conftest import AUDIO

SPEECH = ["en_vctk_p286_m", "de_picovoice_test_de"]
NOISES = ["machine_exercise_bike", "cafe_babble"]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """Links to part of ../shared/data/audio (read in place): 2 talkers, 2 noises, the
    RIR and one VoiceBank-DEMAND pair, so a run takes seconds, not minutes."""
    root = tmp_path_factory.mktemp("audio")
    links = [
        *(f"speech/{s}.wav" for s in SPEECH),
        *(f"noise/{n}.wav" for n in NOISES),
        f"rir/{REVERB_RIR}",
        "paired_vbd_train/p287_001_noisy.wav",
        "paired_vbd_train/p287_001_clean.wav",
    ]
    for name in links:
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).symlink_to(AUDIO / name)
    return root


def test_a_mix_has_the_snr_asked_for_and_never_clips():
    rng = np.random.default_rng(1)
    speech = rng.standard_normal(48_000) * 0.3
    noise = rng.standard_normal(10_000)  # shorter than the speech: looped
    mix, gain = mix_at_snr(speech, noise, 5.0, seed=3)
    added = mix / gain - speech
    assert 10 * np.log10(np.mean(speech**2) / np.mean(added**2)) == pytest.approx(5.0, abs=1e-4)
    assert np.abs(mix).max() <= 0.99 and gain < 1
    assert np.array_equal(mix, mix_at_snr(speech, noise, 5.0, seed=3)[0])  # seeded
    with pytest.raises(ValueError, match="digital silence"):
        mix_at_snr(speech, np.zeros(100), 5.0, seed=0)


def test_the_signals_scored(small_data):
    found = list(items(small_data, [0.0, 20.0], seconds=1.5))
    kinds = [(i.condition, i.snr) for i in found]
    assert kinds.count(("dry", 0.0)) == kinds.count(("reverb", 20.0)) == len(SPEECH) * len(NOISES)
    assert kinds.count(("vbd", None)) == 1 and kinds.count(("clean", None)) == len(SPEECH)
    assert all(len(i.mix) == len(i.target) <= 72_000 for i in found)
    # under reverb the target is the dry speech lined up with the direct path (5.1 ms,
    # spread over two samples): the reverberant mix at 20 dB correlates best with it
    # within a sample of lag 0, not 244 samples later as with the dry speech unshifted
    reverb = next(i for i in found if i.condition == "reverb" and i.snr == 20.0)
    xc = np.correlate(reverb.mix, reverb.target[1000:-1000], mode="valid")
    assert abs(int(np.argmax(xc)) - 1000) <= 1


def test_a_short_run_prints_its_table_and_writes_json_and_plots(small_data, tmp_path, capsys):
    plots = tmp_path / "plots"
    args = [
        "audio",
        "eval",
        "--seconds",
        "2",
        "--snrs",
        "5",
        "--data",
        str(small_data),
        "--plots",
        str(plots),
        "--json",
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    table = captured.err  # with --json the table goes to stderr
    assert "| condition | method | n | PESQ-WB |" in table
    for method in ("none", "spectral", "gtcrn"):
        assert f"| dry 5 dB | {method} | 4 |" in table and f"| reverb 5 dB | {method} |" in table
        assert f"{method}: clean speech through it: PESQ-WB median" in table
    assert f"vbd ({VBD_LABEL})" in table and "latency 34.15 ms (1639 samples)" in table
    summary, cost = results["summary"], results["cost"]
    assert cost["spectral"]["latency_samples"] == 959 and 0 < cost["gtcrn"]["rtf_cpu"] < 1
    assert summary["gtcrn"]["dry 5 dB"]["si_sdri"] > summary["spectral"]["dry 5 dB"]["si_sdri"] > 0
    assert summary["none"]["dry 5 dB"]["si_sdri"] == 0.0
    assert results["settings"]["pesq"] == metrics.pesq_available()
    assert (summary["gtcrn"]["clean"]["pesq"] is None) != metrics.pesq_available()
    assert (plots / "audio-si-sdri.png").stat().st_size > 10_000
    assert (plots / "audio-pesq.png").exists() == metrics.pesq_available()


def test_unknown_methods_are_refused(capsys):
    assert main(["audio", "eval", "--methods", "none,rnnoise"]) == 2
    assert "unknown method rnnoise" in capsys.readouterr().err
