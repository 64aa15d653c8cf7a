"""What ``arecord`` and ``aplay`` (the ALSA tools the audio path runs as subprocesses)
share: the tail of their stderr, kept for the error message, and their ending."""

from __future__ import annotations

import subprocess
from collections import deque

LINE_CHARS = 500  # of one stderr line kept; a partial line is held to twice that


class StderrLines:
    """The last ``keep`` lines a tool wrote to stderr, fed in chunks as they come."""

    def __init__(self, keep: int) -> None:
        self.lines: deque[str] = deque(maxlen=keep)
        self._partial = b""

    def feed(self, data: bytes) -> list[str]:
        """The complete, non-empty lines ``data`` ends; each is also kept."""
        parts = (self._partial + data).split(b"\n")
        self._partial = parts.pop()[-2 * LINE_CHARS :]
        new = [p.decode("utf-8", "replace").strip()[-LINE_CHARS:] for p in parts]
        new = [line for line in new if line]
        self.lines.extend(new)
        return new

    def clear(self) -> None:
        self.lines.clear()
        self._partial = b""


def end(proc: subprocess.Popen[bytes], wait_s: float = 1.0) -> None:
    """Stop the tool if it still runs: terminate, and kill what does not stop in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=wait_s)
