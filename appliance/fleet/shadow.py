"""Device-shadow configuration: the operator's desired change, validated by the same
schema as the config file, applied (between frames, by the config manager's listeners)
and reported back with its version; or rejected with the reasons, nothing changed.

Versions make it idempotent: desired documents are retained, so a camera receives the
last one again after every reconnect and every restart; one whose version it already
applied (persisted next to the config, so a restart remembers) is only re-reported.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from appliance.config import ConfigError
from appliance.config.manager import ConfigManager
from appliance.config.store import write_atomic
from appliance.fleet.payloads import load_payload

log = logging.getLogger(__name__)


def state_path(config_path: Path | None) -> Path | None:
    """Where the answered version is kept: beside the config file (none without one)."""
    if config_path is None:
        return None
    return config_path.with_name(config_path.stem + ".fleet.json")


class Shadow:
    def __init__(self, manager: ConfigManager, state_file: Path | None = None) -> None:
        self.manager = manager
        self.state_file = state_file
        self.version = 0
        self.accepted = True
        self.errors: list[str] = []
        if state_file is not None and state_file.is_file():
            try:
                saved = json.loads(state_file.read_text())
                self.version = int(saved["version"])
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("fleet: unreadable %s, starting from version 0", state_file)

    def reported(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "accepted": self.accepted,
            "errors": self.errors,
            "config": self.manager.config.model_dump(mode="json"),
        }

    def desired(self, payload: bytes) -> dict[str, Any]:
        """Handle a desired document; returns what to report."""
        try:
            document = load_payload(payload, "desired")
            version, patch = document["version"], document["config"]
            if not isinstance(version, int) or isinstance(version, bool) or version < 0:
                raise ValueError("version must be a non-negative integer")
        except (ValueError, KeyError, TypeError) as exc:
            # not even a desired document: say so, keep the version that runs
            return {
                **self.reported(),
                "accepted": False,
                "errors": [f"desired: not a {{version, config}} JSON document ({str(exc)[:200]})"],
            }
        if version <= self.version:
            return self.reported()  # already applied (a retained copy after a reconnect)
        try:
            self.manager.update(patch, origin="mqtt")
        except ConfigError as exc:
            self.accepted, self.errors = False, list(exc.errors)
            log.warning("fleet: desired version %d refused: %s", version, "; ".join(exc.errors))
        else:
            self.accepted, self.errors = True, []
            log.info("fleet: desired version %d applied", version)
        self.version = version  # refused or not, this version has been answered
        self._save()
        return self.reported()

    def _save(self) -> None:
        if self.state_file is None:
            return
        write_atomic(self.state_file, json.dumps({"version": self.version}))
