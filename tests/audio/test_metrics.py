"""SI-SDR, STOI and PESQ's plumbing: known answers, and a clear error where PESQ is absent."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from appliance.audio import metrics

from .conftest import noisy, speech


def test_si_sdr_is_the_snr_of_an_added_orthogonal_signal_and_ignores_scale():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal(16_000)
    other = rng.standard_normal(16_000)
    other -= other @ reference / (reference @ reference) * reference  # orthogonal
    other *= np.linalg.norm(reference) / np.linalg.norm(other) * 10 ** (-12 / 20)
    assert metrics.si_sdr(reference, reference + other) == pytest.approx(12.0, abs=1e-9)
    assert metrics.si_sdr(reference, 0.1 * (reference + other)) == pytest.approx(12.0, abs=1e-9)
    with pytest.raises(ValueError, match="align them first"):
        metrics.si_sdr(reference, reference[:-1])


def test_si_sdr_at_48_khz_is_scored_at_16_khz():
    x, clean = noisy("en_libri198_f", "machine_exercise_bike", 5, 2.0)
    at_48k = metrics.si_sdr(clean, x, 48_000)
    assert at_48k == metrics.si_sdr(metrics.at_16k(clean, 48_000), metrics.at_16k(x, 48_000))
    assert 4.0 < at_48k < 6.0  # mixed at 5 dB


def test_stoi_falls_with_noise():
    clean = speech("en_libri198_f", 3.0)
    assert metrics.stoi(clean, clean, 48_000) == pytest.approx(1.0, abs=1e-6)
    x0 = noisy("en_libri198_f", "cafe_babble", 0, 3.0)[0]
    x10 = noisy("en_libri198_f", "cafe_babble", 10, 3.0)[0]
    assert metrics.stoi(clean, x0, 48_000) < metrics.stoi(clean, x10, 48_000) < 0.97


def test_pesq_is_asked_for_wide_band_at_16_khz(monkeypatch):
    calls = []

    def pesq(rate, reference, degraded, mode):
        calls.append((rate, len(reference), len(degraded), mode))
        return 3.5

    monkeypatch.setitem(sys.modules, "pesq", types.SimpleNamespace(pesq=pesq))
    assert metrics.pesq_available()
    assert metrics.pesq_wb(np.ones(4800), np.ones(4800), 48_000) == 3.5
    assert calls == [(16_000, 1600, 1600, "wb")]


def test_without_the_pesq_package_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pesq", None)  # import fails
    assert not metrics.pesq_available()
    with pytest.raises(metrics.MetricUnavailable, match="pip install pesq"):
        metrics.pesq_wb(np.ones(16_000), np.ones(16_000))
