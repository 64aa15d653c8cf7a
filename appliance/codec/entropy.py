"""Entropy coding of short vectors of small signed integers (the keypoint symbols).

Design: a range coder over **static per-packet models**, one model per vector position,
each a two-sided geometric (discrete Laplacian) distribution picked from a fixed grid
of 64 scales, plus one **forward-adaptive gain** per packet.

- Position ``i`` of a vector is coded with scale index ``scales[i] + 2 * gain`` (clamped
  to the grid). ``scales`` are the priors: trained from sample vectors (``fit``: per
  position, the grid scale that codes the samples in the fewest bits) or defaults. The
  gain (-3..3, one symbol at the start of every coded vector, ~1.5 bits) is chosen by the
  encoder from the exact code length of each candidate: it follows how much the face is
  moving (silent vs. talking) without any state.
- Values beyond the table (``|v| > A`` for the scale) are coded as an escape symbol
  followed by a sign bit and an order-k Exp-Golomb magnitude in equiprobable bits, so
  any 32-bit value round-trips and an outlier costs ~10-20 bits instead of breaking
  the model.
- Every coded vector starts from the same priors: **no state crosses packets**. An
  intra packet can be decoded with nothing but the model, a lost packet cannot
  desynchronise anything, and "resetting" is a no-op. Per-position contexts see one
  symbol per packet, so adapting within a packet cannot learn them; adapting across the
  predicted packets of an intra period (reset at each intra) was measured instead and
  never won: 25.2 vs 25.0 bytes per 60-value vector on stationary deltas, 25.9 vs 24.9
  when activity changes (the gain adapts at once, counts take many frames), while
  costing decode time and tying the entropy state to the packet order.
- Frequencies come from integer recurrences only and the coder is integer-only, so
  another implementation reproduces the bits exactly (the spec in
  docs/codec-bitstream.md gives every constant).

The coder keeps ``low`` as a Python int of unbounded size, so carries propagate for free,
and it ends on the shortest byte string that identifies the final interval (missing
bytes read as zero): a 60-value vector costs its information content plus < 1 byte.
Exp-Golomb (``exp_golomb_encode``) is the plain, model-free baseline.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

SCALES = 64  # grid: scale(j) = 2 ** ((j - 12) / 4), 0.125 .. ~6900
MAX_TABLE = 64  # largest |v| coded in the table; beyond that: escape
GAINS = (-3, -2, -1, 0, 1, 2, 3)
GAIN_FREQ = (1, 2, 6, 20, 6, 2, 1)  # gain symbol model: mostly 0
GAIN_STEP = 2  # scale-grid steps per gain unit: a factor sqrt(2)
MAX_PREFIX = 32  # Exp-Golomb prefix bits accepted; more is a corrupt stream
MAX_VALUE = 2**31 - 1

_TOP = 56  # the coder's range lies in [2 ** _BOTTOM, 2 ** _TOP]
_BOTTOM = 48
_START = _TOP // 8  # bytes the decoder reads before the first symbol
_COST_CLIP = 256  # |v| beyond this is costed as if it were this (gain/fit only)


class EntropyError(ValueError):
    """A coded vector that cannot be decoded (truncated, corrupt) or a value out of range."""


def scale_of(index: int) -> float:
    """The Laplacian scale (mean |v|, roughly) of grid index ``index``."""
    return 2.0 ** ((index - 12) / 4)


def scale_index(scale: float) -> int:
    """The grid index nearest (in log) to ``scale``, clamped to the grid."""
    if not scale > 0:
        return 0
    return int(min(SCALES - 1, max(0, round(4 * math.log2(scale) + 12))))


@dataclass(frozen=True)
class _Table:
    cum: list[int]  # cumulative frequencies, symbols -A..A then escape; len 2A + 3
    total: int
    half: int  # A: the table codes -A..A
    k: int  # Exp-Golomb order of escaped magnitudes


# Per-step decay of each grid scale in 1/65536 units: round(65536 * exp(-1 / scale(j))).
# Listed, not computed, so that no libm rounding can change a frequency table.
# fmt: off
THETA = (
    22, 79, 229, 563, 1200, 2268, 3874, 6075, 8869, 12192, 15933, 19953, 24109, 28267, 32314,
    36162, 39750, 43041, 46019, 48681, 51039, 53111, 54917, 56484, 57835, 58997, 59992, 60842,
    61565, 62181, 62703, 63145, 63520, 63836, 64104, 64329, 64520, 64681, 64816, 64930, 65026,
    65107, 65175, 65232, 65280, 65321, 65355, 65384, 65408, 65428, 65446, 65460, 65472, 65482,
    65491, 65498, 65504, 65509, 65513, 65517, 65520, 65523, 65525, 65526,
)
# fmt: on


@cache
def _table(index: int) -> _Table:
    t = THETA[index]
    weights = [65536]
    while len(weights) <= MAX_TABLE:
        weights.append((weights[-1] * t) >> 16)
    half = max([1] + [m for m in range(1, MAX_TABLE + 1) if weights[m] >= 64])
    side = [max(1, w) for w in weights[: half + 1]]
    freqs = side[:0:-1] + side + [max(1, (2 * weights[half] * t) // (65536 - t))]
    cum = [0]
    for f in freqs:
        cum.append(cum[-1] + f)
    return _Table(cum, cum[-1], half, max(0, (index - 12) // 4))


class _Encoder:
    def __init__(self) -> None:
        self.low, self.range, self.shifts = 0, 1 << _TOP, 0

    def put(self, cum: int, freq: int, total: int) -> None:
        r = self.range // total
        self.low += r * cum
        self.range = r * freq
        while self.range < 1 << _BOTTOM:
            self.low <<= 8
            self.range <<= 8
            self.shifts += 1

    def bits(self, value: int, count: int) -> None:
        while count > 16:  # keep each step well inside the range's precision
            count -= 16
            self.put(value >> count, 1, 1 << 16)
            value &= (1 << count) - 1
        self.put(value, 1, 1 << count)

    def finish(self) -> bytes:
        return _shortest(self.low, self.range, _START + self.shifts)


def _shortest(low: int, width: int, size: int) -> bytes:
    """The ``size``-byte number in [low, low + width) with the most trailing zero bytes,
    those bytes dropped: the canonical end of a coded vector."""
    trailing = 0  # fits for 0; whether t fits only shrinks as t grows
    while trailing < size:
        unit = 1 << (8 * (trailing + 1))
        if -(-low // unit) * unit >= low + width:
            break
        trailing += 1
    unit = 1 << (8 * trailing)
    return (-(-low // unit)).to_bytes(size - trailing, "big")


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.range = data, _START, 1 << _TOP
        self.code = int.from_bytes(data[:_START].ljust(_START, b"\0"), "big")

    def get(self, cum: list[int], total: int) -> int:
        r = self.range // total
        target = self.code // r
        if target >= total:
            raise EntropyError("coded vector is corrupt (code outside the interval)")
        symbol = bisect_right(cum, target) - 1
        self.code -= r * cum[symbol]
        self._narrow(r * (cum[symbol + 1] - cum[symbol]))
        return symbol

    def bits(self, count: int) -> int:
        value = 0
        while count > 0:
            step = min(count, 16)
            r = self.range >> step
            part = self.code // r
            if part >> step:
                raise EntropyError("coded vector is corrupt (code outside the interval)")
            self.code -= r * part
            self._narrow(r)
            value = (value << step) | part
            count -= step
        return value

    def _narrow(self, new_range: int) -> None:
        self.range = new_range
        while self.range < 1 << _BOTTOM:
            byte = self.data[self.pos] if self.pos < len(self.data) else 0
            self.code = (self.code << 8) | byte
            self.range <<= 8
            self.pos += 1

    def finish(self) -> None:
        """Accept only the encoder's own output: no byte more or less, no other ending."""
        if len(self.data) > self.pos:
            raise EntropyError(f"{len(self.data) - self.pos} bytes after the coded vector")
        value = int.from_bytes(self.data.ljust(self.pos, b"\0"), "big")
        if _shortest(value - self.code, self.range, self.pos) != self.data:
            raise EntropyError("coded vector does not end as the encoder ends it")


def _check_values(values: Any) -> list[int]:
    array = np.asarray(values)
    if array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
        raise EntropyError(f"values must be a 1-D integer array, got {array.dtype} {array.shape}")
    if array.size and int(np.abs(array.astype(np.int64)).max()) > MAX_VALUE:
        raise EntropyError(f"values must lie in [-{MAX_VALUE}, {MAX_VALUE}]")
    return [int(v) for v in array.tolist()]


def _check_scales(scales: Any, size: int) -> np.ndarray:
    array = np.broadcast_to(np.asarray(scales, dtype=np.int64), (size,))
    if size and (array.min() < 0 or array.max() >= SCALES):
        raise EntropyError(f"scale indices must lie in [0, {SCALES - 1}]")
    return array


def _put_value(coder: _Encoder, table: _Table, value: int) -> None:
    half = table.half
    if -half <= value <= half:
        s = value + half
        coder.put(table.cum[s], table.cum[s + 1] - table.cum[s], table.total)
        return
    s = 2 * half + 1
    coder.put(table.cum[s], table.cum[s + 1] - table.cum[s], table.total)
    coder.bits(value < 0, 1)
    magnitude = abs(value) - half - 1
    q = (magnitude >> table.k) + 1
    width = q.bit_length()
    # The prefix goes one bit per step, as the decoder must read it: steps of n bits and
    # n steps of one bit narrow the range differently.
    for _ in range(width - 1):
        coder.bits(0, 1)
    coder.bits(1, 1)
    coder.bits(q & ((1 << (width - 1)) - 1), width - 1)
    coder.bits(magnitude & ((1 << table.k) - 1), table.k)


def _get_value(coder: _Decoder, table: _Table) -> int:
    s = coder.get(table.cum, table.total)
    half = table.half
    if s <= 2 * half:
        return s - half
    negative = coder.bits(1)
    zeros = 0
    while coder.bits(1) == 0:
        zeros += 1
        if zeros > MAX_PREFIX:
            raise EntropyError("escape prefix too long (corrupt stream)")
    q = (1 << zeros) | coder.bits(zeros)
    magnitude = ((q - 1) << table.k | coder.bits(table.k)) + half + 1
    if magnitude > MAX_VALUE:
        raise EntropyError("escaped value out of range (corrupt stream)")
    return -magnitude if negative else magnitude


@cache
def _cost_matrix() -> np.ndarray:
    """Bits to code v in [-_COST_CLIP, _COST_CLIP] at each grid scale: (SCALES, 2C + 1)."""
    values = np.arange(-_COST_CLIP, _COST_CLIP + 1)
    out = np.empty((SCALES, values.size))
    for index in range(SCALES):
        t = _table(index)
        freqs = np.diff(np.asarray(t.cum, dtype=np.float64))
        inside = np.abs(values) <= t.half
        bits = np.empty(values.size)
        bits[inside] = -np.log2(freqs[values[inside] + t.half] / t.total)
        magnitude = np.abs(values[~inside]) - t.half - 1
        width = np.floor(np.log2((magnitude >> t.k) + 1)) + 1
        bits[~inside] = -np.log2(freqs[-1] / t.total) + 1 + 2 * width - 1 + t.k
        out[index] = bits
    return out


def cost_bits(values: Any, scales: Any) -> float:
    """Estimated bits of ``values`` at grid indices ``scales`` without the gain (exact
    for |v| <= 256; model fitting and gain choice use it)."""
    v = np.clip(np.asarray(values, dtype=np.int64), -_COST_CLIP, _COST_CLIP)
    return float(_cost_matrix()[_check_scales(scales, v.size), v + _COST_CLIP].sum())


def _choose_gain(values: list[int], scales: np.ndarray) -> int:
    if not values:
        return 0
    v = np.clip(np.asarray(values, dtype=np.int64), -_COST_CLIP, _COST_CLIP) + _COST_CLIP
    gains = np.asarray(GAINS)
    indices = np.clip(scales[None, :] + GAIN_STEP * gains[:, None], 0, SCALES - 1)
    costs = _cost_matrix()[indices, v[None, :]].sum(axis=1)
    costs -= np.log2(np.asarray(GAIN_FREQ) / sum(GAIN_FREQ))
    return int(gains[int(np.argmin(costs))])


_GAIN_CUM = [sum(GAIN_FREQ[:i]) for i in range(len(GAIN_FREQ) + 1)]


def encode_vector(values: Any, scales: Any, gain: int | None = None) -> bytes:
    """Code a 1-D integer vector with per-position grid scale indices ``scales`` (an array
    of the same length or one int). ``gain``: forced, or None to pick the cheapest."""
    ints = _check_values(values)
    grid = _check_scales(scales, len(ints))
    chosen = _choose_gain(ints, grid) if gain is None else gain
    if chosen not in GAINS:
        raise EntropyError(f"gain must be one of {GAINS}, got {chosen}")
    coder = _Encoder()
    g = GAINS.index(chosen)
    coder.put(_GAIN_CUM[g], GAIN_FREQ[g], _GAIN_CUM[-1])
    shifted = np.clip(grid + GAIN_STEP * chosen, 0, SCALES - 1).tolist()
    for value, index in zip(ints, shifted, strict=True):
        _put_value(coder, _table(index), value)
    return coder.finish()


def decode_vector(data: bytes, scales: Any, size: int | None = None) -> np.ndarray:
    """The vector ``encode_vector`` coded with the same ``scales`` (int64). ``size`` is
    needed when ``scales`` is a single int. Raises EntropyError on any bad input."""
    count = int(np.size(scales)) if size is None else int(size)
    grid = _check_scales(scales, count)
    coder = _Decoder(bytes(data))
    chosen = GAINS[coder.get(_GAIN_CUM, _GAIN_CUM[-1])]
    shifted = np.clip(grid + GAIN_STEP * chosen, 0, SCALES - 1).tolist()
    out = [_get_value(coder, _table(index)) for index in shifted]
    coder.finish()
    return np.asarray(out, dtype=np.int64)


@dataclass(frozen=True)
class EntropyModel:
    """Per-position priors (grid scale indices) for intra and for predicted vectors.

    Both ends must hold the same model; ``to_bytes`` is its exact serialization (two
    bytes per position) so it can travel with the keypoint model or in a reference."""

    intra: tuple[int, ...]
    predicted: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.intra) != len(self.predicted):
            raise EntropyError("intra and predicted priors must have the same length")
        if any(not 0 <= j < SCALES for j in (*self.intra, *self.predicted)):
            raise EntropyError(f"scale indices must lie in [0, {SCALES - 1}]")

    @property
    def size(self) -> int:
        return len(self.intra)

    @classmethod
    def default(
        cls, size: int, intra_scale: float = 16.0, predicted_scale: float = 1.0
    ) -> EntropyModel:
        """Untrained priors: one scale for every position."""
        return cls((scale_index(intra_scale),) * size, (scale_index(predicted_scale),) * size)

    @classmethod
    def fit(cls, intra: Any, predicted: Any) -> EntropyModel:
        """Priors that code the sample vectors (rows of ``intra``/``predicted``, each
        (m, size)) in the fewest bits, position by position."""
        return cls(_fit(intra), _fit(predicted))

    def to_bytes(self) -> bytes:
        return bytes(self.intra) + bytes(self.predicted)

    @classmethod
    def from_bytes(cls, data: bytes) -> EntropyModel:
        if len(data) % 2:
            raise EntropyError("entropy model bytes must have even length")
        half = len(data) // 2
        return cls(tuple(data[:half]), tuple(data[half:]))

    def encode(self, values: Any, intra: bool) -> bytes:
        if np.size(values) != self.size:
            raise EntropyError(f"vector must have {self.size} values, got {np.size(values)}")
        return encode_vector(values, self.intra if intra else self.predicted)

    def decode(self, data: bytes, intra: bool) -> np.ndarray:
        return decode_vector(data, self.intra if intra else self.predicted)


def _fit(samples: Any) -> tuple[int, ...]:
    rows = np.asarray(samples, dtype=np.int64)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise EntropyError(f"samples must be (m > 0, size), got shape {rows.shape}")
    clipped = np.clip(rows, -_COST_CLIP, _COST_CLIP) + _COST_CLIP
    matrix = _cost_matrix()
    out = []
    for column in clipped.T:
        histogram = np.bincount(column, minlength=matrix.shape[1])
        out.append(int(np.argmin(matrix @ histogram)))
    return tuple(out)


def _signed_to_code(value: int) -> int:
    return 2 * value - 1 if value > 0 else -2 * value


def exp_golomb_encode(values: Sequence[int] | np.ndarray, k: int = 0) -> bytes:
    """Signed order-k Exp-Golomb (H.264 se(v) mapping for k = 0), zero-padded to bytes."""
    acc, length = 0, 0
    for value in _check_values(values):
        code = _signed_to_code(value) + (1 << k)
        width = code.bit_length()
        total = 2 * width - 1 - k  # (width - 1 - k) zeros, then the code's width bits
        acc = (acc << total) | code
        length += total
    pad = -length % 8
    return (acc << pad).to_bytes((length + pad) // 8, "big")


def exp_golomb_decode(data: bytes, count: int, k: int = 0) -> np.ndarray:
    """``count`` values coded by ``exp_golomb_encode``; EntropyError if the data ends early."""
    acc, size, pos, out = int.from_bytes(data, "big"), 8 * len(data), 0, []
    for _ in range(count):
        rest = size - pos
        window = acc & ((1 << rest) - 1)
        if window == 0:
            raise EntropyError("Exp-Golomb data ends early")
        zeros = rest - window.bit_length()
        if zeros > MAX_PREFIX:
            raise EntropyError("Exp-Golomb prefix too long (corrupt stream)")
        width = zeros + 1 + k
        if pos + zeros + width > size:
            raise EntropyError("Exp-Golomb data ends early")
        code = (window >> (rest - zeros - width)) & ((1 << width) - 1)
        code -= 1 << k
        out.append((code + 1) // 2 if code % 2 else -(code // 2))
        pos += zeros + width
    return np.asarray(out, dtype=np.int64)
