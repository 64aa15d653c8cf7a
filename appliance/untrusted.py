"""Reading what comes from outside the process: bounded before it is parsed.

Python's JSON parser recurses once per nesting level, so a few hundred kilobytes of
``[`` raise RecursionError (or, on a thread with a small stack, crash the process)
before any schema sees the document. Every document from a broker, a datagram or an
upload goes through :func:`load_json`, which checks the size and then the nesting
depth with one linear, non-recursive scan. The limits of each boundary are listed in
docs/security.md.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A JSON string (escapes included) or a bracket: strings are skipped whole, so a ``[``
# inside a string does not count as nesting. The closing quote is optional: an
# unterminated string runs to the end in one match (requiring it made every quote of
# ``"\"\"\"...`` rescan to the end: quadratic, with the GIL held). JSON fails at such a
# string, so what follows it is never parsed and need not be counted.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")

# Shown in errors: enough to recognise a value, never a whole hostile one echoed back.
PREVIEW_CHARS = 80


class UntrustedInputError(ValueError):
    """Outside input refused before or while parsing; the message says why, briefly."""


def nesting_depth(data: bytes) -> int:
    """The deepest bracket nesting in ``data`` that a JSON parser would reach (at least
    that: more for some invalid JSON), in one linear pass, without recursion."""
    depth = deepest = 0
    for match in _TOKENS.finditer(data):
        token = match.group()
        if len(token) != 1:
            continue  # a string
        if token[0] in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(0, depth - 1)
    return deepest


def load_json(data: bytes | str, *, max_bytes: int, max_depth: int, what: str = "document") -> Any:
    """``json.loads(data)`` once ``data`` is known to be at most ``max_bytes`` long and
    ``max_depth`` deep; anything else raises :class:`UntrustedInputError` (a ValueError)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise UntrustedInputError(f"{what} is {len(raw)} bytes; at most {max_bytes} are read")
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise UntrustedInputError(f"{what} nests {depth} deep; at most {max_depth} is read")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: belt and braces
        raise UntrustedInputError(f"{what} is not JSON: {str(exc)[:200]}") from None


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages, with the length
    of the value itself (of a text, its characters) when cut."""
    shown = repr(value)
    if len(shown) <= limit:
        return shown
    size = len(value) if isinstance(value, str | bytes) else len(shown)
    return f"{shown[:limit]}… ({size} characters)"
