"""The last few hundred log lines in memory, for the logs page (journald has the rest)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

SIZE = 500


class LogBuffer(logging.Handler):
    def __init__(self, size: int = SIZE) -> None:
        super().__init__(logging.DEBUG)
        self._lines: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "secret", False):
            return
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message += f" ({record.exc_info[1]!r})"
        except Exception:  # a bad format string must not break logging elsewhere
            message = str(record.msg)
        with self._guard:
            self._seq += 1
            self._lines.append(
                {
                    "seq": self._seq,
                    "time": time.strftime("%H:%M:%S", time.localtime(record.created)),
                    "level": record.levelname.lower(),
                    "logger": record.name,
                    "message": message,
                }
            )

    def since(self, seq: int) -> list[dict[str, Any]]:
        with self._guard:
            return [line for line in self._lines if line["seq"] > seq]


_installed: LogBuffer | None = None


def install_log_buffer() -> LogBuffer:
    """One buffer per process on the root logger, however many apps are created."""
    global _installed
    if _installed is None:
        _installed = LogBuffer()
    root = logging.getLogger()
    if _installed not in root.handlers:  # setup_logging() replaces the root's handlers
        root.addHandler(_installed)
    return _installed
