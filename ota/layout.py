"""Where the update agent keeps things, and the two files that decide what runs.

Under the OTA root (default ``$APPLIANCE_OTA_DIR``, else ``/var/lib/appliance/ota``:
the daemon's systemd ``StateDirectory``)::

    state.json         the agent's persisted state (atomic: temp file, fsync, rename)
    lock               flock'd by the one agent allowed to run
    active -> slots/a  symbolic link: THE bundles directory the daemon loads
    slots/a/<bundle>/  slot A: a complete set of model bundles
    slots/b/<bundle>/  slot B: the other set (the fallback, or the one being installed)
    downloads/         <job>.partial while fetching, <job>.update when complete
    tmp/               scratch for verification; emptied on every resume
    keys/*.pub         the public keys this device trusts (PEM)

Why a symbolic link for ``active``: the daemon needs a plain directory path
(``APPLIANCE_BUNDLES_DIR=<root>/active``) and no code that knows about slots, and
``rename(2)`` of a new link over the old one switches every later path lookup at once,
with no moment where ``active`` is missing or half-written. A pointer *file* would need
every reader to read it and build paths itself. A reader that loads several files of
one bundle should resolve the link once (``Path.resolve()``) and read them all from
the slot it got, so a switch between two reads cannot mix slots.

``state.json`` holds the committed slot, the fallback slot, the anti-rollback
high-water mark per bundle name and the current (or last) job; see :mod:`ota.agent`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ota import fsio

log = logging.getLogger(__name__)

SLOTS = ("a", "b")
STATE_FORMAT = 1
DEFAULT_ROOT = Path("/var/lib/appliance/ota")
ROOT_ENV = "APPLIANCE_OTA_DIR"


def default_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def other_slot(slot: str) -> str:
    return SLOTS[1 - SLOTS.index(slot)]


def empty_state() -> dict[str, Any]:
    return {
        "format": STATE_FORMAT,
        "committed_slot": None,
        "fallback_slot": None,
        "high_water": {},
        "job": None,
    }


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "lock"

    @property
    def active(self) -> Path:
        return self.root / "active"

    @property
    def slots_dir(self) -> Path:
        return self.root / "slots"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    def slot(self, name: str) -> Path:
        if name not in SLOTS:
            raise ValueError(f"no slot {name!r}")
        return self.slots_dir / name

    # -- the active pointer ---------------------------------------------------------------

    def active_slot(self) -> str | None:
        """The slot ``active`` points at; None before the first initialization."""
        try:
            target = os.readlink(self.active)
        except FileNotFoundError:
            return None
        name = Path(target).name
        return name if name in SLOTS else None

    def point_active(self, slot: str) -> None:
        """Switch ``active`` to ``slot`` atomically (a no-op if it already points there)."""
        if self.active_slot() != slot:
            fsio.replace_symlink(self.active, f"slots/{slot}")
            log.info("active bundles: slot %s", slot)

    # -- state ----------------------------------------------------------------------------

    def load_state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return empty_state()
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"{self.state_file}: unsupported format {state.get('format')!r}")
        return state

    def save_state(self, state: dict[str, Any]) -> None:
        data = json.dumps(state, indent=2, sort_keys=True).encode("utf-8")
        fsio.atomic_write_bytes(self.state_file, data)


def slot_versions(slot_dir: Path) -> dict[str, str]:
    """Bundle name -> version, read from each bundle's manifest (no hashing)."""
    versions: dict[str, str] = {}
    if not slot_dir.is_dir():
        return versions
    for bundle in sorted(p for p in slot_dir.iterdir() if p.is_dir()):
        try:
            manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
            versions[bundle.name] = str(manifest["version"])
        except (OSError, ValueError, KeyError, TypeError):
            versions[bundle.name] = "?"
    return versions
