"""The streaming resampler: pieces of any length give the whole signal's output, bit for
bit; the pass band is flat, what would alias or image is stopped; the delay is as stated."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from appliance.audio.resample import Resampler

RATIOS = [(1, 3), (3, 1)]  # 48 -> 16 kHz, 16 -> 48 kHz


@pytest.mark.parametrize(("up", "down"), RATIOS)
def test_pieces_of_any_length_give_exactly_the_whole_signals_output(up, down):
    rng = np.random.default_rng(up)
    x = rng.standard_normal(20_000).astype(np.float32)
    resampler = Resampler(up, down)
    whole = resampler.process(x)
    assert len(whole) == -(-len(x) * up // down)
    resampler.reset()
    cuts = np.sort(rng.integers(0, len(x), 60))  # lengths 0, 1, 2 and long ones among them
    cuts = np.concatenate([[0, 0, 1, 3], cuts, [len(x)]])
    pieces = [resampler.process(x[a:b]) for a, b in pairwise(cuts)]
    assert np.array_equal(np.concatenate(pieces), whole)


def _tone(freq: float, rate: int, seconds: float = 0.5) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def _level_db(signal: np.ndarray, freq: float, rate: int) -> float:
    """The amplitude (dB re full scale) of ``freq`` in the middle of ``signal`` (a tone
    lying on a bin of a window of 0.1 s: exact for a sine, no window needed)."""
    n = rate // 10
    middle = signal[len(signal) // 2 - n // 2 :][:n]
    spectrum = np.abs(np.fft.rfft(middle)) * 2 / n
    return float(20 * np.log10(spectrum[round(freq * n / rate)] + 1e-15))


@pytest.mark.parametrize(("up", "down"), RATIOS)
def test_the_pass_band_is_flat_to_7_khz(up, down):
    rate_in = 48_000 if down > 1 else 16_000
    for freq in (50, 300, 1000, 3000, 5000, 6000, 7000):
        out = Resampler(up, down).process(_tone(freq, rate_in))
        assert abs(_level_db(out, freq, rate_in * up // down)) < 0.02, freq


def test_what_would_alias_below_7_khz_is_stopped():
    # 48 -> 16 kHz: a tone at f above 9 kHz lands at 16 - f (or further folds)
    for freq in (9000, 10000, 12000, 15000, 20000):
        out = Resampler(1, 3).process(_tone(freq, 48_000))
        alias = abs((freq + 8000) % 16000 - 8000)
        assert _level_db(out, alias, 16_000) < -68, freq


def test_the_images_of_the_pass_band_are_stopped():
    # 16 -> 48 kHz: a tone at f also appears at 16 - f and 16 + f kHz unless filtered
    for freq in (1000, 4000, 7000):
        out = Resampler(3, 1).process(_tone(freq, 16_000))
        for image in (16000 - freq, 16000 + freq):
            assert _level_db(out, image, 48_000) < -68, (freq, image)


@pytest.mark.parametrize(("up", "down"), RATIOS)
def test_the_stated_delay_is_the_delay(up, down):
    resampler = Resampler(up, down)
    rate_in = 48_000 if down > 1 else 16_000
    rate_out = rate_in * up // down
    freq = 1234.5
    out = resampler.process(_tone(freq, rate_in))
    delay_s = float(resampler.delay_in_output_samples) / rate_out
    assert delay_s == pytest.approx(float(resampler.delay_in_input_samples) / rate_in)
    assert 0.5e-3 < delay_s < 1.5e-3  # about a millisecond
    t = np.arange(len(out)) / rate_out - delay_s
    settled = t > 0.01
    assert np.abs(out[settled] - np.sin(2 * np.pi * freq * t[settled])).max() < 1e-3


def test_only_integer_ratios():
    with pytest.raises(ValueError, match="integer ratio"):
        Resampler(2, 3)
    with pytest.raises(ValueError, match="one channel"):
        Resampler(1, 3).process(np.zeros((2, 10)))
