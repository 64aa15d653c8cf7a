"""A configuration change from the page: validated by the schema, applied between
frames, and taken back if applying it failed (the camera keeps what worked)."""

from __future__ import annotations

from typing import Any

from appliance.config import Config, ConfigError, ConfigManager


def apply_change(manager: ConfigManager, document: Any, replace: bool = False) -> Config:
    """Returns the new Config; raises ConfigError (nothing changed) when the document is
    invalid or applying it failed, in which case the previous settings are restored."""
    before = manager.config
    config, failures = manager.apply(document, origin="web", replace=replace)
    if not failures:
        return config
    try:
        manager.replace(before.model_dump(mode="json"), origin="revert")
    except (ConfigError, OSError) as exc:
        failures.append(f"and restoring the previous settings failed: {exc}")
    raise ConfigError([f"(applying): {m}" for m in failures])
