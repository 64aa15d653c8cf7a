"""Speech quality figures: PESQ (wide band), STOI and SI-SDR.

Each compares a clean ``reference`` with an ``estimate`` of it that is already aligned
to it (a suppressor's output advanced by its stated ``latency_samples``): none of them
searches for a delay, so a wrong latency shows as a bad score instead of being hidden.
Signals at other rates are brought to 16 kHz first, PESQ wide band's only rate
(ITU-T P.862.2); the evaluation scores every method at 16 kHz alike.

- ``pesq_wb``: the ``pesq`` package, a binding of the ITU-T reference C code, the
  field's standard implementation. It ships as source only (a C compiler and Cython
  to install), so the project's wheels-only lock does not hold it: where it is not
  installed, ``pesq_wb`` raises ``MetricUnavailable``.
- ``stoi``: ``pystoi`` (Taal et al. 2011), the classic (not extended) STOI.
- ``si_sdr``: scale-invariant SDR (Le Roux et al. 2019), in numpy.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly

METRIC_RATE = 16_000


class MetricUnavailable(RuntimeError):
    """The package that computes a metric is not installed."""


def at_16k(signal: np.ndarray, rate: int) -> np.ndarray:
    """``signal`` at 16 kHz, float64 (scipy's polyphase resampler: offline, exact phase)."""
    x = np.asarray(signal, dtype=np.float64)
    if rate == METRIC_RATE:
        return x
    common = gcd(rate, METRIC_RATE)
    return resample_poly(x, METRIC_RATE // common, rate // common)


def _pair(reference: np.ndarray, estimate: np.ndarray, rate: int) -> tuple[np.ndarray, ...]:
    if len(reference) != len(estimate):
        raise ValueError(
            f"reference and estimate differ in length: {len(reference)}, "
            f"{len(estimate)} (align them first)"
        )
    return at_16k(reference, rate), at_16k(estimate, rate)


def si_sdr(reference: np.ndarray, estimate: np.ndarray, rate: int = METRIC_RATE) -> float:
    """dB: the estimate's part along the reference against everything else in it."""
    ref, est = _pair(reference, estimate, rate)
    scale = np.dot(est, ref) / max(np.dot(ref, ref), 1e-20)
    target = scale * ref
    residual = est - target
    return float(
        10 * np.log10(max(np.dot(target, target), 1e-20) / max(np.dot(residual, residual), 1e-20))
    )


def stoi(reference: np.ndarray, estimate: np.ndarray, rate: int = METRIC_RATE) -> float:
    from pystoi import stoi as pystoi

    ref, est = _pair(reference, estimate, rate)
    return float(pystoi(ref, est, METRIC_RATE, extended=False))


def pesq_available() -> bool:
    try:
        import pesq  # noqa: F401
    except ImportError:
        return False
    return True


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, rate: int = METRIC_RATE) -> float:
    """PESQ wide band (P.862.2 MOS-LQO, about 1.04 to 4.64)."""
    try:
        from pesq import pesq
    except ImportError as exc:
        raise MetricUnavailable(
            "PESQ needs the `pesq` package (ITU-T P.862 reference code), which is built "
            "from source: pip install pesq, with a C compiler and Cython"
        ) from exc
    ref, est = _pair(reference, estimate, rate)
    return float(pesq(METRIC_RATE, ref, est, "wb"))
