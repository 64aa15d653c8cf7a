"""The suppressors: blocks of any length give the whole signal's output, the stated
latency is the real one, noise goes down on real mixes and clean speech stays intact."""

from __future__ import annotations

import hashlib
import json
import shutil
from itertools import pairwise

import numpy as np
import pytest
from scipy.signal import correlate

from appliance.audio import metrics
from appliance.audio.suppress import (
    GTCRN_SHA256,
    GtcrnSuppressor,
    ModelIntegrityError,
    Passthrough,
    SpectralSuppressor,
    Suppressor,
    gtcrn_model_path,
    load_gtcrn,
)

from .conftest import RATE, noisy, speech

MAKERS = [Passthrough, SpectralSuppressor, GtcrnSuppressor]


def through(suppressor: Suppressor, x: np.ndarray) -> np.ndarray:
    """The output lined up with ``x``: zeros fed after it, the stated latency taken off."""
    suppressor.reset()
    latency = suppressor.latency_samples
    return suppressor.process(np.concatenate([x, np.zeros(latency, np.float32)]))[latency:]


def lag_of_peak(output: np.ndarray, reference: np.ndarray) -> int:
    xc = correlate(output, reference, mode="full", method="fft")
    return int(np.argmax(xc)) - (len(reference) - 1)


@pytest.fixture(scope="module")
def mix() -> np.ndarray:
    return noisy("en_libri198_f", "kitchen_dishes", 5, 2.0)[0]


@pytest.mark.parametrize("make", MAKERS)
def test_blocks_of_any_length_give_the_whole_signals_output(make, mix):
    suppressor = make()
    whole = suppressor.process(mix)
    assert len(whole) == len(mix) and whole.dtype == np.float32
    suppressor.reset()
    rng = np.random.default_rng(7)
    cuts = np.concatenate([[0, 0, 1, 2], np.sort(rng.integers(3, len(mix), 150)), [len(mix)]])
    pieces = [suppressor.process(mix[a:b]) for a, b in pairwise(cuts)]
    assert [len(p) for p in pieces] == list(np.diff(cuts))
    assert np.array_equal(np.concatenate(pieces), whole)
    suppressor.reset()  # and reset forgets: the same output again
    assert np.array_equal(suppressor.process(mix), whole)


@pytest.mark.parametrize(
    ("make", "ms"), [(Passthrough, 0.0), (SpectralSuppressor, 19.98), (GtcrnSuppressor, 34.15)]
)
def test_the_stated_latency_is_within_40_ms(make, ms):
    suppressor = make()
    assert suppressor.latency_ms == pytest.approx(ms, abs=0.01)
    assert suppressor.latency_ms <= 40.0


@pytest.mark.parametrize("strength", [1.0, 0.0])
@pytest.mark.parametrize("make", MAKERS)
def test_a_click_comes_out_the_stated_latency_later(make, strength):
    click = np.zeros(RATE, np.float32)
    click[20_000] = 0.5
    suppressor = make()
    suppressor.strength = strength
    if make is GtcrnSuppressor and strength == 1.0:
        # the network removes a lone click (it is noise to it): speech shows its delay
        click = speech("en_vctk_p286_m", 3.0)
    out = suppressor.process(click)
    assert lag_of_peak(out, click) == suppressor.latency_samples


@pytest.mark.parametrize("make", MAKERS)
def test_strength_0_is_the_input_only_delayed(make, mix):
    suppressor = make()
    suppressor.strength = 0.0
    # the spectral fallback analyses and resynthesises: equal to float rounding
    assert np.abs(through(suppressor, mix) - mix).max() < 2e-6
    with pytest.raises(ValueError, match="strength"):
        suppressor.strength = 1.5


@pytest.mark.parametrize(
    ("make", "at_least_db"), [(SpectralSuppressor, 2.5), (GtcrnSuppressor, 5.0)]
)
@pytest.mark.parametrize("noise", ["machine_exercise_bike", "kitchen_dishes"])
def test_noise_removal_raises_si_sdr_on_a_5_db_mix(make, at_least_db, noise):
    # measured: spectral +4.2 and +4.0 dB, GTCRN +7.7 and +7.2 dB
    x, clean = noisy("en_vctk_p286_m", noise, 5, 4.0)
    before = metrics.si_sdr(clean, x, RATE)
    assert metrics.si_sdr(clean, through(make(), x), RATE) - before > at_least_db


@pytest.mark.parametrize("make", [SpectralSuppressor, GtcrnSuppressor])
def test_clean_speech_comes_through_nearly_intact(make):
    # measured: spectral 24.8 dB and 0.991, GTCRN 29.1 dB and 0.997 (scored at 16 kHz:
    # GTCRN removes everything above 8 kHz)
    clean = speech("en_vctk_p286_m", 4.0)
    out = through(make(), clean)
    assert metrics.si_sdr(clean, out, RATE) > 20.0
    assert metrics.stoi(clean, out, RATE) > 0.98


def test_the_model_file_is_the_one_its_provenance_names():
    path = gtcrn_model_path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == GTCRN_SHA256
    provenance = json.loads((path.parent / "provenance.json").read_text())
    assert provenance["sha256"] == GTCRN_SHA256 and provenance["licence"] == "MIT"
    assert provenance["commit"] == "3862c44808dca492ea5a8a145d2dc2a1028d08c8"


def test_a_tampered_or_missing_model_never_reaches_the_runtime(tmp_path, monkeypatch):
    import onnxruntime

    tampered = tmp_path / "gtcrn_simple.onnx"
    shutil.copyfile(gtcrn_model_path(), tampered)
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the weights
    tampered.write_bytes(bytes(data))
    monkeypatch.setattr(
        onnxruntime, "InferenceSession", lambda *a, **k: pytest.fail("a session was created")
    )
    with pytest.raises(ModelIntegrityError, match=f"expected {GTCRN_SHA256}"):
        GtcrnSuppressor(model=tampered)
    with pytest.raises(ModelIntegrityError, match="not readable"):
        load_gtcrn(tmp_path / "absent.onnx")
