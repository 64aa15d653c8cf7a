"""The running configuration: validated changes, persisted, then handed to listeners."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.config.errors import ConfigError
from appliance.config.paths import PathPolicy
from appliance.config.schema import Config, restart_fields
from appliance.config.store import load_config, parse_config, save_config

log = logging.getLogger(__name__)

Listener = Callable[[Config, Config], None]


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``patch`` into a copy of ``base`` (mappings merge, other values replace)."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def changed_paths(old: Config, new: Config) -> set[str]:
    def walk(a: Any, b: Any, prefix: str) -> set[str]:
        if isinstance(a, dict) and isinstance(b, dict):
            paths: set[str] = set()
            for key in a.keys() | b.keys():
                paths |= walk(a.get(key), b.get(key), f"{prefix}{key}.")
            return paths
        return set() if a == b else {prefix.rstrip(".")}

    return walk(old.model_dump(mode="json"), new.model_dump(mode="json"), "")


class ConfigManager:
    """Owns the running Config. Invalid input raises ConfigError and changes nothing.

    With a ``path``, every accepted change is written there atomically before it is
    applied, so a restart comes back with what was last accepted.
    """

    RESTART_FIELDS = frozenset(restart_fields())

    def __init__(
        self, config: Config, path: Path | None = None, paths: PathPolicy | None = None
    ) -> None:
        self._config = config
        self._paths = paths  # None: read from the environment at each change
        self._booted = config  # what the restart-only fields were started with
        self.path = path
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._checks: list[Listener] = []

    @property
    def pending_restart(self) -> set[str]:
        """Restart-only fields whose value differs from the one the daemon started with."""
        return self._restart_only(changed_paths(self._booted, self._config))

    def _restart_only(self, paths: set[str]) -> set[str]:
        return {p for p in paths if any(p.startswith(r) for r in self.RESTART_FIELDS)}

    @property
    def config(self) -> Config:
        return self._config

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def add_check(self, check: Listener) -> None:
        """A check a new config must pass beyond the schema (raises ConfigError)."""
        self._checks.append(check)

    def update(self, patch: dict[str, Any], origin: str = "api") -> tuple[Config, set[str]]:
        """Apply a partial change; returns the new config and the paths that need a restart."""
        config, restart, _ = self._change(patch, origin, replace=False)
        return config, restart

    def replace(self, document: Any, origin: str = "api") -> tuple[Config, set[str]]:
        """Replace the whole configuration (missing keys take their defaults)."""
        config, restart, _ = self._change(document, origin, replace=True)
        return config, restart

    def apply(
        self, document: Any, origin: str = "api", replace: bool = False
    ) -> tuple[Config, list[str]]:
        """``update`` (or ``replace``), and which parts failed to apply the change: the
        caller may then put the previous configuration back."""
        config, _, failures = self._change(document, origin, replace)
        return config, failures

    def reload(self) -> tuple[Config, set[str]]:
        """Re-read the config file (SIGHUP); a bad file is refused and the running one kept."""
        if self.path is None:
            return self._config, set()
        with self._lock:
            config, restart, _ = self._install(load_config(self.path), "file", persist=False)
            return config, restart

    def _change(
        self, document: Any, origin: str, replace: bool
    ) -> tuple[Config, set[str], list[str]]:
        if not replace and not isinstance(document, dict):
            raise ConfigError([f"(top level): expected a mapping, got {type(document).__name__}"])
        with self._lock:
            if not replace:
                document = merge(self._config.model_dump(mode="json"), document)
            new = parse_config(document, origin)
            (self._paths or PathPolicy.from_environment()).check(self._config, new, origin)
            return self._install(new, origin, persist=True)

    def _install(
        self, new: Config, origin: str, persist: bool
    ) -> tuple[Config, set[str], list[str]]:
        """Check, save, switch, tell the listeners; also returns the listeners' failures."""
        old = self._config
        changed = changed_paths(old, new)
        if not changed:
            return old, set(), []
        for check in self._checks:
            check(old, new)
        if persist and self.path is not None:
            save_config(self.path, new)
        self._config = new
        needs_restart = self._restart_only(changed)
        log.info("config changed by %s: %s", origin, ", ".join(sorted(changed)))
        if needs_restart:
            log.warning("takes effect after a restart: %s", ", ".join(sorted(needs_restart)))
        failures = []
        for listener in self._listeners:
            try:
                listener(old, new)
            except Exception as exc:
                log.exception("applying the new configuration failed in %r", listener)
                failures.append(str(exc) or type(exc).__name__)
        return new, needs_restart, failures
