"""Helpers for code that runs inside the guest (imported there from the checkout)."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any


def check(results: dict[str, Any], name: str, fn: Callable[[], dict[str, Any]]) -> None:
    """Run one guest check; a failure is recorded with its traceback, the rest go on."""
    started = time.monotonic()
    try:
        results[name] = {"ok": True, **fn()}
    except Exception:
        results[name] = {"ok": False, "error": traceback.format_exc()}
    results[name]["seconds"] = round(time.monotonic() - started, 2)
