"""Logging to stdout, as journald wants it."""

from __future__ import annotations

import logging
import os
import sys


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
