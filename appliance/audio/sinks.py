"""Where the cleaned microphone goes: 48 kHz mono float32 blocks in.

- ``alsa:DEVICE``: ALSA playback through ``aplay`` (alsa-utils) as a subprocess; on the
  camera the UAC2 gadget's PCM (``alsa:hw:UAC2Gadget``), which the USB host records as
  the camera's microphone. Its stdin is written and its stderr drained without
  blocking: a stalled ``aplay`` costs dropped blocks (counted), never a stuck audio
  thread, and one that has taken nothing for ``DEAD_AFTER_S`` is treated as gone (so the
  pipeline restarts it). Its chatter ("underrun!!!") is read as it comes, counted and its
  last lines kept for the error message: an unread stderr would fill its pipe and stall
  aplay for good.
- ``file://PATH.wav``: 16-bit PCM, stops at ``max_bytes`` (the header is kept valid).
  Opening the same sink again (after a write error) appends to what it wrote.
- ``memory://``: the last ``max_seconds`` in memory (tests).
- ``null``: nowhere.

``write`` returns False when the block was not delivered (dropped); it raises
``AudioSinkError`` when the sink is gone.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import shutil
import struct
import subprocess
from collections import deque
from pathlib import Path
from typing import BinaryIO

import numpy as np

from appliance.audio import tool
from appliance.audio.sources import RATE
from appliance.audio.tool import StderrLines
from appliance.audio.uri import AudioSpec, parse_audio_sink

log = logging.getLogger(__name__)

APLAY_BUFFER_US = 40_000
MAX_PENDING_BYTES = 2 * 480 * 2  # two blocks wait for a slow aplay, then blocks drop
MAX_FILE_BYTES = 64 * 1024 * 1024  # ~11.6 min of 48 kHz mono 16-bit
DEAD_AFTER_S = 2.0  # an aplay that has accepted nothing for this long is treated as gone
STDERR_LINES = 20  # the last lines of aplay's stderr kept for the error message
WAV_HEADER_BYTES = 44


class AudioSinkError(RuntimeError):
    """The sink cannot be opened or has gone away; says why in words."""


def to_pcm16(samples: np.ndarray) -> bytes:
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()


class AudioSink(abc.ABC):
    uri: str

    def open(self) -> None:  # noqa: B027 (most sinks have nothing to acquire)
        """Acquire the device; raise AudioSinkError with a human-readable reason."""

    @abc.abstractmethod
    def write(self, samples: np.ndarray) -> bool:
        """Deliver one block; False if it was dropped."""

    def close(self) -> None:  # noqa: B027
        """Release the device; safe to call twice."""


class NullSink(AudioSink):
    uri = "null"

    def write(self, samples: np.ndarray) -> bool:
        return True


class MemorySink(AudioSink):
    """Keeps the last ``max_seconds`` written."""

    uri = "memory://"

    def __init__(self, max_seconds: float = 60.0) -> None:
        self._blocks: deque[np.ndarray] = deque()
        self._max = int(max_seconds * RATE)
        self._held = 0

    def write(self, samples: np.ndarray) -> bool:
        block = np.array(samples, dtype=np.float32)
        self._blocks.append(block)
        self._held += len(block)
        while self._held - len(self._blocks[0]) >= self._max:
            self._held -= len(self._blocks.popleft())
        return True

    def samples(self) -> np.ndarray:
        if not self._blocks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(list(self._blocks))[-self._max :]


class WavFileSink(AudioSink):
    """Mono 16-bit PCM; writing stops (``full``) at ``max_bytes`` of file.

    The first ``open`` starts a new recording (the file is replaced). Opening again, as
    the pipeline does after a write error, appends to what this sink wrote: the samples
    already recorded are kept (cut to the last one written whole) rather than truncated
    away, since a write error is often passing (a full disk freed, a slow card) and the
    recording so far is what the user wanted. ``max_bytes`` still counts the whole file.
    A file that was removed meanwhile starts again empty; one that is now shorter than
    what was written is refused (``AudioSinkError``), not overwritten."""

    def __init__(self, path: Path | str, uri: str = "", max_bytes: int = MAX_FILE_BYTES) -> None:
        self.path = Path(path)
        self.uri = uri or f"file://{self.path}"
        self.max_bytes = max_bytes
        self.full = False
        self._fh: BinaryIO | None = None
        self._data = 0
        self._started = False  # a recording was begun: open again appends to it

    def open(self) -> None:
        self.close()
        if self._started and self._append():
            return
        try:
            fh = self.path.open("wb")
        except OSError as exc:
            raise AudioSinkError(f"{self.uri}: {exc}") from exc
        self._data = 0
        self.full = False
        try:
            fh.write(self._header())
        except OSError as exc:
            fh.close()
            raise AudioSinkError(f"{self.uri}: {exc}") from exc
        self._fh = fh
        self._started = True

    def _append(self) -> bool:
        """Reopen the recording begun earlier at its end; False if the file is gone."""
        try:
            fh = self.path.open("r+b")
        except FileNotFoundError:
            log.warning("audio: %s was removed; starting a new recording", self.uri)
            return False
        except OSError as exc:
            raise AudioSinkError(f"{self.uri}: {exc}") from exc
        try:
            size = os.fstat(fh.fileno()).st_size
            end = WAV_HEADER_BYTES + self._data
            if size < end:
                raise AudioSinkError(
                    f"{self.uri}: the file is shorter ({size} bytes) than the {end} bytes "
                    "recorded into it; not overwriting it (remove it to start again)"
                )
            fh.truncate(end)  # whatever a failed write left past the last whole block
            fh.seek(end)
        except OSError as exc:
            fh.close()
            raise AudioSinkError(f"{self.uri}: {exc}") from exc
        except AudioSinkError:
            fh.close()
            raise
        self._fh = fh
        log.info("audio: appending to %s after %d bytes", self.uri, self._data)
        return True

    def _header(self) -> bytes:
        fmt = struct.pack("<HHIIHH", 1, 1, RATE, RATE * 2, 2, 16)
        return (
            b"RIFF"
            + struct.pack("<I", 36 + self._data)
            + b"WAVE"
            + b"fmt "
            + struct.pack("<I", len(fmt))
            + fmt
            + b"data"
            + struct.pack("<I", self._data)
        )

    def write(self, samples: np.ndarray) -> bool:
        if self._fh is None:
            raise AudioSinkError(f"{self.uri}: write before open")
        pcm = to_pcm16(samples)
        room = self.max_bytes - 44 - self._data
        if len(pcm) > room:
            pcm = pcm[: max(0, room) & ~1]
            self.full = True
        if not pcm:
            return False
        try:
            self._fh.write(pcm)
        except OSError as exc:
            raise AudioSinkError(f"{self.uri}: {exc}") from exc
        self._data += len(pcm)
        return not self.full

    def close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is None:
            return
        try:
            fh.seek(0)
            fh.write(self._header())  # the sizes, now known
        finally:
            fh.close()


class AlsaSink(AudioSink):
    """``aplay -D DEVICE -f S16_LE -r 48000 -c 1 -t raw`` fed through a non-blocking pipe."""

    def __init__(self, device: str, uri: str = "", command: str = "aplay") -> None:
        self.device = device
        self.uri = uri or f"alsa:{device}"
        self.command = command
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending = b""
        self._stderr_lines = StderrLines(keep=STDERR_LINES)
        self.underruns = 0  # "underrun" reports from aplay since open
        self._dropped_run = 0  # samples dropped in a row

    def open(self) -> None:
        self.close()
        exe = shutil.which(self.command)
        if exe is None:
            raise AudioSinkError(
                f"{self.uri}: '{self.command}' not found; install alsa-utils to play to ALSA"
            )
        argv = [exe, "-q", "-D", self.device, "-f", "S16_LE", "-r", str(RATE), "-c", "1"]
        argv += ["-t", "raw", f"--buffer-time={APLAY_BUFFER_US}"]
        try:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except OSError as exc:
            raise AudioSinkError(f"{self.uri}: cannot start {self.command}: {exc}") from exc
        assert self._proc.stdin is not None and self._proc.stderr is not None
        os.set_blocking(self._proc.stdin.fileno(), False)
        os.set_blocking(self._proc.stderr.fileno(), False)
        self._pending = b""
        self._stderr_lines.clear()
        self.underruns = 0
        self._dropped_run = 0
        try:  # aplay refuses a missing device at once: say so now
            self._proc.wait(timeout=0.3)
        except subprocess.TimeoutExpired:
            return
        self._died()

    def _drain_stderr(self, limit: int = 16) -> None:
        """Read what aplay has said so far, without waiting; at most ``limit`` reads."""
        proc = self._proc
        if proc is None or proc.stderr is None:
            return
        for _ in range(limit):
            try:
                data = os.read(proc.stderr.fileno(), 65536)
            except (BlockingIOError, InterruptedError):
                return
            except (OSError, ValueError):  # closed under us: nothing more to hear
                return
            if not data:
                return
            self._err(data)

    def _err(self, data: bytes) -> None:
        for line in self._stderr_lines.feed(data):
            if "underrun" in line:
                self.underruns += 1

    def stderr_tail(self) -> list[str]:
        """The last lines aplay wrote to its stderr."""
        return list(self._stderr_lines.lines)

    def _said(self) -> str:
        return "; ".join(self._stderr_lines.lines)[-500:] or "no message"

    def _died(self) -> None:
        proc = self._proc
        assert proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):  # what it said is read anyway
            proc.wait(timeout=1.0)
        self._drain_stderr(limit=64)
        self._err(b"\n")  # a last line without its newline
        code = proc.returncode
        self.close()
        raise AudioSinkError(
            f"{self.uri}: {self.command} exited with status {code}: {self._said()}"
        )

    def write(self, samples: np.ndarray) -> bool:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise AudioSinkError(f"{self.uri}: write before open")
        self._drain_stderr()
        if proc.poll() is not None:
            self._died()
        block = to_pcm16(samples)
        data = self._pending + block
        try:
            sent = os.write(proc.stdin.fileno(), data)
        except BlockingIOError:
            sent = 0
        except OSError:  # BrokenPipeError: aplay is gone
            self._died()
            return False
        rest = data[sent:]
        if len(rest) > MAX_PENDING_BYTES:
            # aplay is not keeping up: drop this block (the newest, whole samples), keep
            # the older bytes, which may complete a half-written sample
            self._pending = rest[: len(rest) - len(block)]
            self._dropped_run += len(samples)
            if self._dropped_run >= DEAD_AFTER_S * RATE:
                self.close()
                raise AudioSinkError(
                    f"{self.uri}: {self.command} has taken no audio for {DEAD_AFTER_S:g} s "
                    f"(stalled); it said: {self._said()}"
                )
            return False
        self._pending = rest
        self._dropped_run = 0
        return True

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        tool.end(proc)


def open_audio_sink(spec: AudioSpec | str, sys_root: Path = Path("/sys")) -> AudioSink:
    """Build (not open) the sink for a URI. ``gadget``: the USB gadget's microphone where
    it has one; nowhere (said in the log) on a machine without (a PC running the daemon,
    a board whose profile has no microphone), so the default works on both."""
    if isinstance(spec, str):
        spec = parse_audio_sink(spec)
    if spec.scheme == "gadget":
        from appliance.audio.gadget import GADGET_CARD, GadgetSink, gadget_pcm

        device = gadget_pcm(sys_root)
        if device is None:
            log.info("audio: no USB gadget microphone (no ALSA card %s): output nowhere",
                     GADGET_CARD)  # fmt: skip
            return NullSink()
        return GadgetSink(device, uri=f"alsa:{device}")
    if spec.scheme == "null":
        return NullSink()
    if spec.scheme == "memory":
        return MemorySink()
    if spec.scheme == "file":
        return WavFileSink(spec.target, uri=spec.uri)
    if spec.scheme == "alsa":
        return AlsaSink(spec.target, uri=spec.uri)
    raise AudioSinkError(f"no audio output for {spec.uri}")
