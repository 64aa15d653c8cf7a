"""Where the microphone's samples come from, chosen by URI like the video sources.

Every source delivers blocks of ``BLOCK`` samples (10 ms at 48 kHz, mono float32 in
[-1, 1]) with ``t_capture_ns``: the ``time.monotonic_ns()`` of the block's first sample,
the clock the video frames are stamped from too.

- ``file://PATH.wav``: the file, looped, paced at real time; read with the limits of
  ``appliance.audio.wav`` (``MAX_FILE_SECONDS`` here) and resampled to 48 kHz when its
  rate is an integer ratio of it (8, 16, 24, 96 kHz...); any other rate is refused.
- ``synthetic://``: speech-like voiced bursts with a click at each burst's onset, on
  the synthetic face's syllable schedule (``appliance.capture.synthetic.speech_schedule``)
  and the same scene clock (0 at open), so lip sync can be measured against the picture.
- ``alsa:DEVICE``: ALSA capture through ``arecord`` (alsa-utils) as a subprocess: no
  compiled binding. A missing ``arecord``, a missing device or a process that dies is an
  ``AudioSourceError`` with arecord's own words; ``open`` again starts a new process
  (re-plug).

``read`` returns None when nothing arrived within ``timeout``; it raises
``AudioSourceError`` when the source is gone.
"""

from __future__ import annotations

import abc
import logging
import math
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

from appliance.audio import tool
from appliance.audio.tool import StderrLines
from appliance.audio.uri import AudioSpec, parse_audio_source

log = logging.getLogger(__name__)

RATE = 48_000
BLOCK = 480  # 10 ms
BLOCK_NS = BLOCK * 1_000_000_000 // RATE
MAX_FILE_SECONDS = 300.0  # a looped test recording, not an archive
ARECORD_BUFFER_US = 40_000  # ALSA ring of arecord: 4 blocks
OPEN_CHECK_S = 0.3  # arecord refusing the device exits within this
EXIT_WAIT_S = 1.0  # an arecord that closed its stdout is killed if still running after this


class AudioSourceError(RuntimeError):
    """The source cannot be opened or has gone away; says why in words."""


@dataclass(frozen=True)
class AudioBlock:
    samples: np.ndarray  # BLOCK float32 samples
    t_capture_ns: int  # time.monotonic_ns() of the first sample
    seq: int  # blocks read since open
    xruns: int = 0  # overruns the source reported since the previous block


class AudioSource(abc.ABC):
    uri: str

    @abc.abstractmethod
    def open(self) -> None:
        """Acquire the device; raise AudioSourceError with a human-readable reason."""

    @abc.abstractmethod
    def read(self, timeout: float = 0.25) -> AudioBlock | None:
        """The next block, or None if none was ready within ``timeout`` seconds."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice."""

    def __enter__(self) -> AudioSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Pacer:
    """Block n is due at open + n * 10 ms; a reader that falls more than ``slack`` behind
    skips ahead (the skipped blocks are reported as xruns, as a sound card would)."""

    def __init__(self, realtime: bool, slack_blocks: int = 10) -> None:
        self.realtime = realtime
        self.slack_ns = slack_blocks * BLOCK_NS
        self.start_ns = time.monotonic_ns()
        self.n = 0

    def due(self, timeout: float) -> tuple[int, int] | None:
        """(t_capture_ns, blocks skipped) of the next block, or None if not due in time."""
        skipped = 0
        if self.realtime:
            now = time.monotonic_ns()
            # the block is complete (its last sample captured) one block after its start
            ready = self.start_ns + (self.n + 1) * BLOCK_NS
            if now - ready > self.slack_ns:
                skipped = (now - ready) // BLOCK_NS
                self.n += skipped
                ready += skipped * BLOCK_NS
            wait = (ready - now) / 1e9
            if wait > timeout:
                return None
            if wait > 0:
                time.sleep(wait)
        t = self.start_ns + self.n * BLOCK_NS
        self.n += 1
        return t, skipped


class FileAudioSource(AudioSource):
    """A WAV file, looped; ``realtime=False`` delivers blocks as fast as they are read."""

    def __init__(self, path: Path | str, uri: str = "", realtime: bool = True) -> None:
        self.path = Path(path)
        self.uri = uri or f"file://{self.path}"
        self.realtime = realtime
        self._samples: np.ndarray | None = None
        self._pos = 0

    def open(self) -> None:
        from appliance.audio.wav import read_wav

        try:
            samples, rate = read_wav(self.path, max_seconds=MAX_FILE_SECONDS)
        except (OSError, ValueError) as exc:
            raise AudioSourceError(f"{self.uri}: {exc}") from exc
        samples = _to_48k(samples, rate, self.uri)
        if len(samples) < BLOCK:
            raise AudioSourceError(f"{self.uri}: shorter than one 10-ms block")
        self._samples = samples
        self._pos = 0
        self._pacer = _Pacer(self.realtime)
        self._seq = 0

    def read(self, timeout: float = 0.25) -> AudioBlock | None:
        if self._samples is None:
            raise AudioSourceError(f"{self.uri}: read before open")
        due = self._pacer.due(timeout)
        if due is None:
            return None
        t, skipped = due
        n = len(self._samples)
        self._pos = (self._pos + skipped * BLOCK) % n
        index = (self._pos + np.arange(BLOCK)) % n  # looped: the end joins the start
        self._pos = (self._pos + BLOCK) % n
        self._seq += 1
        return AudioBlock(self._samples[index], t, self._seq - 1, int(skipped))

    def close(self) -> None:
        self._samples = None


def _to_48k(samples: np.ndarray, rate: int, name: str) -> np.ndarray:
    if rate == RATE:
        return samples.astype(np.float32, copy=False)
    from appliance.audio.resample import Resampler

    if RATE % rate == 0:
        resampler = Resampler(RATE // rate, 1)
    elif rate % RATE == 0:
        resampler = Resampler(1, rate // RATE)
    else:
        raise AudioSourceError(
            f"{name}: sample rate {rate} Hz is not an integer ratio of 48000 Hz "
            "(8, 12, 16, 24, 48, 96 kHz... are resampled); convert the file to 48 kHz"
        )
    return resampler.process(samples)


# -- synthetic speech ------------------------------------------------------------------

F0_HZ = 125.0  # the voice's fundamental; its harmonics stop below 8 kHz
HARMONICS = 40
CLICK_S = 0.002  # the click at each syllable onset: a 3-kHz burst dying in ~0.5 ms
CLICK_HZ, CLICK_DECAY_S, CLICK_AMP = 3000.0, 0.0005, 0.5
VOICE_AMP = 0.3


class SyntheticAudioSource(AudioSource):
    """The synthetic person's voice: one voiced burst per syllable of the synthetic face's
    schedule (``speech_schedule(seed)``), loudness following the mouth opening, and a
    click at each syllable onset, i.e. each time the mouth starts to open; silence in the
    pauses between phrases. Sample ``n`` depends only on (n, seed): scene time
    n / 48000 s from open, as the face's frame ``k`` is at k / fps."""

    def __init__(self, seed: int = 0, uri: str = "synthetic://", realtime: bool = True) -> None:
        from appliance.capture.synthetic import SPEECH_PERIOD_S, speech_schedule

        self.uri = uri
        self.realtime = realtime
        self.period_s = SPEECH_PERIOD_S
        self.starts, self.durations, self.depths = speech_schedule(seed)
        self._n = 0
        self._open = False
        k = np.arange(1, HARMONICS + 1)
        self._harmonics = k[k * F0_HZ < 7500.0]
        # a vowel-ish spectral tilt: -6 dB/octave, a bump around 500 Hz and 1.5 kHz
        f = self._harmonics * F0_HZ
        self._weights = (1.0 / self._harmonics) * (
            1.0
            + 2.0 * np.exp(-(((f - 500.0) / 200.0) ** 2))
            + np.exp(-(((f - 1500.0) / 300.0) ** 2))
        )
        self._weights /= self._weights.sum()

    def onsets_s(self, until_s: float) -> np.ndarray:
        """Scene times of every click (syllable onset, mouth starting to open) before
        ``until_s``."""
        cycles = math.ceil(until_s / self.period_s)
        times = np.concatenate([self.starts + c * self.period_s for c in range(cycles)])
        return times[times < until_s]

    def render(self, first: int, count: int) -> np.ndarray:
        """Samples ``first`` .. ``first + count - 1`` (scene time n / 48000 s)."""
        t = (first + np.arange(count)) / RATE
        local = np.mod(t, self.period_s)
        i = np.searchsorted(self.starts, local, side="right") - 1
        valid = i >= 0
        i = np.maximum(i, 0)
        since = local - self.starts[i]
        s = since / self.durations[i]
        voiced = valid & (s < 1.0)
        envelope = np.where(voiced, self.depths[i] * np.sin(np.pi * np.clip(s, 0, 1)), 0.0)
        phase = 2 * np.pi * F0_HZ * t
        voice = (self._weights[:, None] * np.sin(self._harmonics[:, None] * phase)).sum(axis=0)
        out = VOICE_AMP * envelope * voice
        clicking = valid & (since < CLICK_S)
        click = CLICK_AMP * np.sin(2 * np.pi * CLICK_HZ * since) * np.exp(-since / CLICK_DECAY_S)
        out = out + np.where(clicking, click, 0.0)
        return out.astype(np.float32)

    def open(self) -> None:
        self._n = 0
        self._pacer = _Pacer(self.realtime)
        self._open = True

    def read(self, timeout: float = 0.25) -> AudioBlock | None:
        if not self._open:
            raise AudioSourceError(f"{self.uri}: read before open")
        due = self._pacer.due(timeout)
        if due is None:
            return None
        t, skipped = due
        first = (self._pacer.n - 1) * BLOCK  # scene time follows the clock, skips included
        return AudioBlock(self.render(first, BLOCK), t, self._pacer.n - 1, int(skipped))

    def close(self) -> None:
        self._open = False


# -- ALSA through arecord ---------------------------------------------------------------


class AlsaSource(AudioSource):
    """``arecord -D DEVICE -f S16_LE -r 48000 -c 1 -t raw`` as a subprocess; its stdout is
    read without blocking past ``timeout``, its stderr kept (the last lines, for the
    error) and its "overrun" reports counted as xruns.

    ``t_capture_ns`` is estimated from the audio waiting behind the block (everything
    arecord has written so far is read first) and never goes backwards."""

    def __init__(self, device: str, uri: str = "", command: str = "arecord") -> None:
        self.device = device
        self.uri = uri or f"alsa:{device}"
        self.command = command
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = bytearray()
        self._stderr_lines = StderrLines(keep=20)
        self._xruns = 0
        self._last_t: int | None = None
        self._eof = False

    def _argv(self, exe: str) -> list[str]:
        return [
            exe,
            "-D",
            self.device,
            "-f",
            "S16_LE",
            "-r",
            str(RATE),
            "-c",
            "1",
            "-t",
            "raw",
            f"--buffer-time={ARECORD_BUFFER_US}",
        ]

    def open(self) -> None:
        self.close()
        exe = shutil.which(self.command)
        if exe is None:
            raise AudioSourceError(
                f"{self.uri}: '{self.command}' not found; install alsa-utils to capture from ALSA"
            )
        try:
            self._proc = subprocess.Popen(
                self._argv(exe),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            raise AudioSourceError(f"{self.uri}: cannot start {self.command}: {exc}") from exc
        self._buffer.clear()
        self._stderr_lines.clear()
        self._xruns = 0
        self._seq = 0
        self._last_t = None
        self._eof = False
        # arecord refuses a missing or busy device at once: say so now, not at first read
        deadline = time.monotonic() + OPEN_CHECK_S
        while time.monotonic() < deadline and not self._buffer:
            self._pump(min(0.05, deadline - time.monotonic()))  # its end raises

    def _pump(self, timeout: float) -> bool:
        """Move what arecord has written into our buffers, waiting at most ``timeout``;
        whether any audio came."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        if self._eof:
            self._end()
        fds = [proc.stdout.fileno(), proc.stderr.fileno()]
        ready, _, _ = select.select(fds, [], [], max(0.0, timeout))
        got = False
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError as exc:
                self._died(f"reading it failed: {exc}")
            if fd == fds[0]:
                if not data:  # stdout closed: the blocks already read go first
                    self._eof = True
                    return got
                self._buffer += data
                got = True
            else:
                self._err(data)
        return got

    def _end(self) -> NoReturn:
        """arecord closed its stdout: it is ending, or hangs with it closed (then killed)."""
        proc = self._proc
        assert proc is not None
        try:
            proc.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=EXIT_WAIT_S)
        self._died()

    def _err(self, data: bytes) -> None:
        for line in self._stderr_lines.feed(data):
            if "overrun" in line:
                self._xruns += 1

    def _died(self, why: str = "") -> NoReturn:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        rest = b""
        try:  # what is left in the pipe, without waiting on a writer that lingers
            os.set_blocking(proc.stderr.fileno(), False)
            for _ in range(64):
                data = os.read(proc.stderr.fileno(), 65536)
                if not data:
                    break
                rest += data
        except (OSError, ValueError):
            pass
        self._err(rest + b"\n")
        said = "; ".join(
            line for line in self._stderr_lines.lines if not line.startswith("Recording")
        )
        code = proc.returncode
        self.close()
        what = why or f"exited with status {code}"
        raise AudioSourceError(f"{self.uri}: {self.command} {what}: {said or 'no message'}")

    def read(self, timeout: float = 0.25) -> AudioBlock | None:
        if self._proc is None:
            raise AudioSourceError(f"{self.uri}: read before open")
        need = 2 * BLOCK
        deadline = time.monotonic() + timeout
        while len(self._buffer) < need:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._pump(left)
        # what is still in the pipe was captured before now too: read it (without waiting)
        # so that the backlog below counts it, else the estimate jumps back when it comes
        for _ in range(16):
            if self._eof or not self._pump(0.0):
                break
        now = time.monotonic_ns()
        raw = bytes(self._buffer[:need])
        del self._buffer[:need]
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        # the newest sample read was captured at the latest now; the block came before it
        backlog = len(self._buffer) // 2
        t = now - (BLOCK + backlog) * 1_000_000_000 // RATE
        if self._last_t is not None:
            t = max(t, self._last_t)  # never backwards: a jitter is not a gap
        self._last_t = t
        xruns, self._xruns = self._xruns, 0
        self._seq += 1
        return AudioBlock(samples, t, self._seq - 1, xruns)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        tool.end(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def open_audio_source(spec: AudioSpec | str, realtime: bool = True) -> AudioSource:
    """Build (not open) the source for a URI."""
    if isinstance(spec, str):
        spec = parse_audio_source(spec)
    if spec.scheme == "synthetic":
        return SyntheticAudioSource(uri=spec.uri, realtime=realtime)
    if spec.scheme == "file":
        return FileAudioSource(spec.target, uri=spec.uri, realtime=realtime)
    if spec.scheme == "alsa":
        return AlsaSource(spec.target, uri=spec.uri)
    raise AudioSourceError(f"no audio source for {spec.uri}")
