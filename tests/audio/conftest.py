"""Real speech and noise from ../shared/data/audio, read in place (never copied here)."""

from __future__ import annotations

import numpy as np

from appliance.audio.evaluate import mix_at_snr
from appliance.audio.wav import read_wav
from tests.conftest import SHARED_DATA

AUDIO = SHARED_DATA / "audio"
RATE = 48_000


def speech(name: str, seconds: float) -> np.ndarray:
    """The first ``seconds`` of speech/``name``.wav (48 kHz mono float32)."""
    samples, rate = read_wav(AUDIO / "speech" / f"{name}.wav")
    assert rate == RATE
    return samples[: int(seconds * RATE)]


def noisy(name: str, noise: str, snr_db: float, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(speech + noise at ``snr_db``, the speech at the mix's gain), as the evaluation mixes."""
    clean = speech(name, seconds).astype(np.float64)
    samples, _ = read_wav(AUDIO / "noise" / f"{noise}.wav")
    mix, gain = mix_at_snr(clean, samples, snr_db, seed=0)
    return mix, (clean * gain).astype(np.float32)


class FailsOnce:
    """A file whose next ``write`` of samples raises, as a full disk does; then works."""

    def __init__(self, fh: object) -> None:
        self._fh, self.failed = fh, False

    def write(self, data: bytes) -> int:
        if not self.failed:
            self.failed = True
            raise OSError(28, "No space left on device")
        return self._fh.write(data)  # type: ignore[attr-defined, no-any-return]

    def __getattr__(self, name: str) -> object:
        return getattr(self._fh, name)
