"""Noise removal for the camera's microphone: 48 kHz mono float32 in, the same out.

Every ``Suppressor`` takes blocks of any length and returns as many samples, the input
delayed by a fixed ``latency_samples`` (the algorithm's own delay plus the buffering that
lets it take blocks of any length). ``strength`` 0 gives the input unchanged, only
delayed; 1 removes as much as the method does. The same signal fed in one block or in
many gives the same output.

- ``Passthrough``: no processing, no delay.
- ``SpectralSuppressor``: the classical fallback (MCRA noise estimate, decision-directed
  log-MMSE gain), 20.0 ms of latency.
- ``GtcrnSuppressor``: the GTCRN network (ONNX Runtime, one thread) at 16 kHz, 34.1 ms.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import exp1

from appliance.audio.resample import Resampler
from appliance.paths import find_data_dir

SAMPLE_RATE = 48_000


class Suppressor(ABC):
    """Blocks of any length in, as many out, ``latency_samples`` later.

    A subclass processes whole hops of ``hop`` samples (``_run``) with a delay of its
    own (``_core_delay``); this class buffers what falls between hops. Waiting for a hop
    to fill costs up to ``hop - 1`` samples, so that is added to the latency: the output
    of a block is always ready when the block's call returns."""

    hop = 1
    _core_delay = 0

    def __init__(self, strength: float = 1.0) -> None:
        self.strength = strength
        self.reset()

    @property
    def strength(self) -> float:
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"strength is 0 (off) to 1 (full removal), got {value}")
        self._strength = float(value)

    @property
    def latency_samples(self) -> int:
        return self.hop - 1 + self._core_delay

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.latency_samples / SAMPLE_RATE

    def reset(self) -> None:
        """Forget everything heard: the next block is processed as the first one."""
        self._pending = np.zeros(0, dtype=np.float32)
        self._ready = np.zeros(self.hop - 1, dtype=np.float32)
        self._reset_core()

    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"a suppressor takes mono samples, got shape {x.shape}")
        pending = np.concatenate([self._pending, x])
        whole = len(pending) - len(pending) % self.hop
        self._pending = pending[whole:]
        if whole:
            self._ready = np.concatenate([self._ready, self._run(pending[:whole])])
        out, self._ready = self._ready[: len(x)], self._ready[len(x) :]
        return out

    def _reset_core(self) -> None:  # noqa: B027 (a suppressor without state has nothing to do)
        pass

    @abstractmethod
    def _run(self, hops: np.ndarray) -> np.ndarray:
        """Whole hops in, as many samples out, ``_core_delay`` later."""


class Passthrough(Suppressor):
    """The input as it is (the "none" method of the evaluation)."""

    def _run(self, hops: np.ndarray) -> np.ndarray:
        return hops.copy()


def _sqrt_hann(n: int) -> np.ndarray:
    # periodic: its squares overlap-add to exactly 1 at a hop of n/2, so analysis and
    # synthesis with it reconstruct the input when nothing is changed in between
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n))


class _OverlapAdd:
    """A 50%-overlap STFT frame per hop and the overlap-add of the processed frames: the
    output hop is the frame's first half, so the delay is one hop."""

    def __init__(self, hop: int) -> None:
        self.hop = hop
        self.window = _sqrt_hann(2 * hop)
        self._last_input = np.zeros(hop)
        self._tail = np.zeros(hop)

    def analyse(self, hop: np.ndarray) -> np.ndarray:
        frame = np.concatenate([self._last_input, hop])
        self._last_input = np.asarray(hop, dtype=np.float64)
        return np.fft.rfft(frame * self.window)

    def synthesise(self, spectrum: np.ndarray) -> np.ndarray:
        frame = np.fft.irfft(spectrum, 2 * self.hop) * self.window
        out = self._tail + frame[: self.hop]
        self._tail = frame[self.hop :]
        return out


class _Mcra:
    """Noise power per bin by minima-controlled recursive averaging (Cohen and Berdugo,
    IEEE SPL 2002): a bin counts as speech while its smoothed power stands ``delta``
    above its minimum over the last ``window`` to ``2 * window`` frames, and the noise
    estimate follows the periodogram only as far as the bin is believed to be noise.
    Constants are the paper's, its 1-s minimum window counted in our 10-ms hops."""

    alpha_s, alpha_p, alpha_d, delta = 0.8, 0.2, 0.95, 5.0

    def __init__(self, window: int) -> None:
        self.window = window
        self._frames = 0

    def update(self, power: np.ndarray) -> np.ndarray:
        # frequency smoothing over three bins (a Hann window) steadies the minimum
        smooth = np.convolve(power, [0.25, 0.5, 0.25], mode="same")
        if self._frames == 0:
            self._s = smooth
            self._min = smooth.copy()
            self._tmp = smooth.copy()
            self._presence = np.zeros_like(power)
            self.noise = power.copy()
        else:
            self._s = self.alpha_s * self._s + (1 - self.alpha_s) * smooth
            self._min = np.minimum(self._min, self._s)
            self._tmp = np.minimum(self._tmp, self._s)
        self._frames += 1
        if self._frames % self.window == 0:
            self._min = np.minimum(self._tmp, self._s)
            self._tmp = self._s.copy()
        speech = self._s > self.delta * self._min
        self._presence = self.alpha_p * self._presence + (1 - self.alpha_p) * speech
        alpha = self.alpha_d + (1 - self.alpha_d) * self._presence
        self.noise = alpha * self.noise + (1 - alpha) * power
        return self.noise


class SpectralSuppressor(Suppressor):
    """The classical fallback where the network cannot run.

    STFT with a 20-ms sqrt-Hann window and a 10-ms hop (960/480 samples); noise power by
    MCRA (``_Mcra``); the a-priori SNR by Ephraim and Malah's decision-directed rule
    (alpha 0.96, floored at -25 dB); their log-spectral-amplitude (log-MMSE) gain, at
    most 1. The gain's floor is set by ``strength``: 0 dB at 0 (the input itself, to
    float rounding), ``MAX_ATTENUATION_DB`` at 1; a floor keeps the residual noise
    natural instead of musical.

    Latency: 479 samples waiting for a hop + one hop for the overlap-add = 959 samples,
    19.98 ms at 48 kHz."""

    hop = 480
    _core_delay = 480
    # WebRTC's NS offers 6, 12 (its default), 18 and 21 dB. On the shared mixes (4
    # talkers x 7 noises x 0/5/10 dB) 12 to 25 dB moved the median PESQ gain by under
    # 0.01, while clean speech lost about 0.08 PESQ per 3 dB more: 15 dB, between
    # WebRTC's default and high. Alpha 0.95 to 0.98 moved that gain by 0.04: 0.96.
    MAX_ATTENUATION_DB = 15.0
    DD_ALPHA, XI_MIN = 0.96, 10 ** (-25 / 10)

    def _reset_core(self) -> None:
        self._stft = _OverlapAdd(self.hop)
        self._noise = _Mcra(window=100)
        self._last_clean_power: np.ndarray | None = None

    def _run(self, hops: np.ndarray) -> np.ndarray:
        out = np.empty(len(hops), dtype=np.float32)
        for start in range(0, len(hops), self.hop):
            spectrum = self._stft.analyse(hops[start : start + self.hop])
            spectrum *= self._gain(spectrum.real**2 + spectrum.imag**2)
            out[start : start + self.hop] = self._stft.synthesise(spectrum)
        return out

    def _gain(self, power: np.ndarray) -> np.ndarray:
        noise = np.maximum(self._noise.update(power), 1e-20)  # digital silence: no NaN
        gamma = np.minimum(power / noise, 1e4)  # a-posteriori SNR
        ml = np.maximum(gamma - 1.0, 0.0)
        if self._last_clean_power is None:
            xi = ml
        else:
            xi = self.DD_ALPHA * self._last_clean_power / noise + (1 - self.DD_ALPHA) * ml
        xi = np.maximum(xi, self.XI_MIN)
        v = np.maximum(xi * gamma / (1 + xi), 1e-10)
        gain = np.minimum(xi / (1 + xi) * np.exp(0.5 * exp1(v)), 1.0)
        # the estimator's own gain, not the floored one, feeds the next frame: the
        # estimate does not depend on the strength, which can change at any frame
        self._last_clean_power = gain**2 * power
        floor = 10 ** (-self.strength * self.MAX_ATTENUATION_DB / 20)
        return np.maximum(gain, floor)


GTCRN_SHA256 = "b4718df6228e7bdf1a8a435cf98f838636eb2fd331acabf86ba87c5192ebcb87"
GTCRN_FILE = "gtcrn_simple.onnx"


class ModelIntegrityError(RuntimeError):
    """The model file is not the one whose hash this code was written against."""


def gtcrn_model_path() -> Path:
    """engines/audio/gtcrn/ in a checkout (or $APPLIANCE_GTCRN_DIR, or the install's
    share/appliance/audio/gtcrn)."""
    return find_data_dir("audio/gtcrn", "engines/audio/gtcrn", "APPLIANCE_GTCRN_DIR") / GTCRN_FILE


def gtcrn_provenance() -> dict[str, Any]:
    provenance: dict[str, Any] = json.loads(
        (gtcrn_model_path().parent / "provenance.json").read_text(encoding="utf-8")
    )
    return provenance


def load_gtcrn(path: Path | None = None, sha256: str = GTCRN_SHA256) -> Any:
    """An ONNX Runtime session on one thread, created only after the file's sha256 has
    been checked: a file that is missing or not the expected one never reaches the
    runtime's parser."""
    import onnxruntime as ort

    path = gtcrn_model_path() if path is None else path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelIntegrityError(f"GTCRN model not readable at {path}: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ModelIntegrityError(f"GTCRN model {path} has sha256 {digest}, expected {sha256}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


class GtcrnSuppressor(Suppressor):
    """GTCRN (Rong et al., ICASSP 2024; 48k parameters), the streaming ONNX export of its
    authors, DNS3-trained weights (engines/audio/gtcrn/provenance.json).

    Per hop of 768 samples (16 ms): 48 -> 16 kHz (``Resampler``), a 512-point sqrt-Hann
    STFT frame with hop 256, the network with its convolution and GRU caches carried
    from frame to frame, the inverse STFT by overlap-add, 16 -> 48 kHz. The network
    works at 16 kHz, so **everything above 8 kHz is removed** at strength 1 (the
    resamplers pass to 7 kHz and stop from 9 kHz); ``strength`` below 1 mixes the
    equally delayed input back in, with its high band.

    Latency: 767 samples waiting for a hop + 52 (the 48 -> 16 kHz filter) + 768 (one STFT
    hop) + 52 (the 16 -> 48 kHz filter) = 1639 samples, 34.15 ms at 48 kHz."""

    hop = 768
    _FFT = 512

    def __init__(self, strength: float = 1.0, model: Path | None = None) -> None:
        self._session = load_gtcrn(model)
        self._down, self._up = Resampler(1, 3), Resampler(3, 1)
        delay = self._down.delay_in_input_samples + 3 * self._FFT // 2
        delay += self._up.delay_in_output_samples
        assert delay.denominator == 1, "the resampling filters keep a whole-sample delay"
        self._core_delay = int(delay)
        super().__init__(strength)

    def _reset_core(self) -> None:
        self._down.reset()
        self._up.reset()
        self._stft = _OverlapAdd(self._FFT // 2)
        self._dry = np.zeros(self._core_delay, dtype=np.float32)  # the input, delayed alike
        self._caches = {
            "conv_cache": np.zeros((2, 1, 16, 16, 33), dtype=np.float32),
            "tra_cache": np.zeros((2, 3, 1, 1, 16), dtype=np.float32),
            "inter_cache": np.zeros((2, 1, 33, 16), dtype=np.float32),
        }

    def _run(self, hops: np.ndarray) -> np.ndarray:
        wet = np.empty(len(hops), dtype=np.float32)
        for start in range(0, len(hops), self.hop):
            wet[start : start + self.hop] = self._up.process(
                self._enhance(self._down.process(hops[start : start + self.hop]))
            )
        dry = np.concatenate([self._dry, hops])
        dry, self._dry = dry[: len(hops)], dry[len(hops) :]
        return self.strength * wet + (1 - self.strength) * dry

    def _enhance(self, hop16: np.ndarray) -> np.ndarray:
        spectrum = self._stft.analyse(hop16)
        mix = np.stack([spectrum.real, spectrum.imag], axis=-1)[None, :, None, :]
        enhanced, *caches = self._session.run(None, {"mix": mix.astype(np.float32), **self._caches})
        self._caches = dict(zip(self._caches, caches, strict=True))
        return self._stft.synthesise(enhanced[0, :, 0, 0] + 1j * enhanced[0, :, 0, 1])
