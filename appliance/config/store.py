"""Reading and writing the config file: YAML, validated, written atomically."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from appliance.config.errors import ConfigError, describe
from appliance.config.schema import Config

log = logging.getLogger(__name__)

HEADER = "# Camera configuration. Validate with: appliance check-config FILE\n"
MAX_FILE_BYTES = 256 * 1024  # a full config is ~3 KB; anything this big is not one
MAX_DEPTH = 16  # a config is 3 levels deep


class _ConfigLoader(yaml.SafeLoader):
    """YAML without aliases (a config never needs one, and nine nested aliases of nine
    items are 387 million values once expanded) and at most MAX_DEPTH levels deep
    (PyYAML's composer recurses once per level)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not accepted in a configuration", event.start_mark
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} deep", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_config(data: Any, origin: str = "") -> Config:
    """Validate a decoded document (from a file, the web API or MQTT)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"(top level): expected a mapping, got {type(data).__name__}"], origin)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(exc, Config), origin) from None


def load_config(path: Path) -> Config:
    """Read and validate ``path``; ConfigError lists every problem with its path."""
    origin = str(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError([f"larger than {MAX_FILE_BYTES} bytes: not a configuration"], origin)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(["file not found"], origin) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read: {exc}"], origin) from None
    if not text.strip():
        # A file we wrote is never empty: this is a truncated write or a mistake.
        raise ConfigError(["file is empty (truncated?); delete it to start from defaults"], origin)
    return parse_config(read_yaml(text, origin), origin)


def read_yaml(text: str, origin: str = "") -> Any:
    """The document in ``text``: plain YAML data, bounded (ConfigError if not)."""
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader: plain data only
    except RecursionError:
        raise ConfigError(["nested too deeply to be a configuration"], origin) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}not valid YAML: {problem}"], origin) from None


def dump_config(config: Config) -> str:
    return HEADER + yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def save_config(path: Path, config: Config) -> None:
    """Write atomically: a crash leaves either the old file or the new one, never half."""
    write_atomic(path, dump_config(config), 0o640)


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace ``path`` with ``text`` through a temporary file in the same directory
    (created 0600, so a secret is never readable by others, then given ``mode``), the
    data and the rename both synced: after a crash the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself must reach the disk too, or a power cut can undo it. The new
    # file is in place by now, so a failure here is reported, not raised: raising
    # would tell the caller "not saved" about a file that is already there.
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        log.warning("%s saved, but syncing its directory failed: %s", path, exc)
