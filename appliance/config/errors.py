"""Config errors that name the path of every bad value."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from appliance.untrusted import preview

MESSAGE_CHARS = 200  # a validator's message may quote the value: never a whole hostile one


class ConfigError(ValueError):
    """Invalid configuration; ``errors`` holds one ``path: message`` line per problem."""

    def __init__(self, errors: list[str], origin: str = "") -> None:
        self.errors = errors
        self.origin = origin
        head = f"{origin}: " if origin else ""
        super().__init__(head + "invalid configuration:\n  " + "\n  ".join(errors))


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the section that ``loc`` (minus its last key) points into."""
    current: Any = model
    for key in loc[:-1]:
        field = getattr(current, "model_fields", {}).get(key)
        if field is None:
            return []
        current = field.annotation
    return list(getattr(current, "model_fields", {}))


def describe(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """One line per error: ``source.width: must be <= 7680 (got 99999)``."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(_key(p) if not isinstance(p, int) else f"[{p}]" for p in loc)
        path = path.replace(".[", "[") or "(top level)"
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])[:MESSAGE_CHARS]
            hint = difflib.get_close_matches(key, _known_keys(model, loc), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            lines.append(f"{path}: unknown key{suggestion}")
            continue
        message = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        quiet = isinstance(got, dict | list) or got is None or repr(got) in message
        shown = "" if quiet else f" (got {preview(got)})"
        lines.append(f"{path}: {_cut(message)}{shown}")
    return lines


def _key(part: Any) -> str:
    return preview(part) if len(str(part)) > 40 else str(part)


def _cut(message: str) -> str:
    return message if len(message) <= MESSAGE_CHARS else message[:MESSAGE_CHARS] + "…"
