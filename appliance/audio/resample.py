"""A streaming polyphase FIR resampler for integer ratios (48 kHz <-> 16 kHz).

The signal is, in effect, upsampled by ``up`` (zeros between samples), low-pass filtered
at the narrower of the two Nyquist frequencies and kept every ``down``-th sample; the
polyphase form computes only the kept outputs from the real inputs. The filter is a
linear-phase Kaiser-windowed sinc, so every frequency is delayed alike: by
``delay_in_input_samples`` (``delay_in_output_samples`` at the other rate). Its -6 dB
point is that Nyquist frequency; it passes to within 0.01 dB up to ``1 - transition/2``
of it and stops ``attenuation_db`` from ``1 + transition/2`` of it (by default 7 and
9 kHz between 48 and 16 kHz).

State (the last inputs and the output count) is carried from call to call, and each
output is summed tap by tap in the same order whatever the calls' lengths, so feeding
a signal in pieces of any length gives exactly, bit for bit, what one call on the whole
signal gives.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import firwin, kaiserord


class Resampler:
    """``process(x)`` takes any number of samples and returns every output they complete."""

    def __init__(
        self, up: int, down: int, attenuation_db: float = 70.0, transition: float = 0.25
    ) -> None:
        if up < 1 or down < 1 or (up > 1 and down > 1):
            raise ValueError(f"an integer ratio is up/1 or 1/down, got {up}/{down}")
        self.up, self.down = up, down
        nyquist = 1.0 / max(up, down)  # of the narrower rate, relative to the filter's rate
        numtaps, beta = kaiserord(attenuation_db, transition * nyquist)
        numtaps |= 1  # odd: a whole-sample delay
        taps = firwin(numtaps, nyquist, window=("kaiser", beta)) * up  # up: zeros cost gain
        # phase p of the filter feeds outputs whose upsampled index is p modulo up
        self._phases = [taps[p::up].astype(np.float64) for p in range(up)]
        self._history_len = -(-numtaps // up) - 1
        self.numtaps = numtaps
        self.reset()

    @property
    def delay_in_input_samples(self) -> Fraction:
        """The filter's group delay, in samples at the input rate."""
        return Fraction(self.numtaps - 1, 2 * self.up)

    @property
    def delay_in_output_samples(self) -> Fraction:
        return Fraction(self.numtaps - 1, 2 * self.down)

    def reset(self) -> None:
        self._history = np.zeros(self._history_len, dtype=np.float64)  # inputs before 0 are 0
        self._inputs = 0  # consumed so far
        self._outputs = 0  # produced so far

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"the resampler takes one channel, got shape {x.shape}")
        buffer = np.concatenate([self._history, x])
        first_input = self._inputs - self._history_len  # the input index of buffer[0]
        self._inputs += len(x)
        # output m needs inputs up to floor(m * down / up); all of them are here for m < end
        end = -(-self._inputs * self.up // self.down)
        m = np.arange(self._outputs, end)
        self._outputs = end
        self._history = buffer[len(buffer) - self._history_len :]
        out = np.zeros(len(m), dtype=np.float64)
        newest = (
            m * self.down // self.up - first_input
        )  # buffer index of each output's newest input
        phase = m * self.down % self.up
        for p, taps in enumerate(self._phases):
            chosen = phase == p
            acc = np.zeros(int(chosen.sum()), dtype=np.float64)
            index = newest[chosen]
            for j, tap in enumerate(taps):
                acc += tap * buffer[index - j]
            out[chosen] = acc
        return out.astype(np.float32)
