"""Logging to stdout, as journald wants it."""

from __future__ import annotations

import logging
import math
import os
import sys
import time

LOG_EVERY_S = 10.0  # at most one log line this often per kind of trouble


def setup_logging(level: str = "info") -> None:
    # journald stamps each line itself; a terminal user wants the time.
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_journald:
        fmt = "%(asctime)s " + fmt
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request is noise


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())


class Throttle:
    """True at most once per ``every`` seconds: a log line per trouble, not one per
    frame or datagram of a flood."""

    def __init__(self, every: float = LOG_EVERY_S) -> None:
        self.every = every
        self.last = -math.inf

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.every:
            return False
        self.last = now
        return True
