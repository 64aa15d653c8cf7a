"""Where the shipped data (board profiles, factory model bundles) is found.

The canonical copies live at the repository top (``hw/``, ``engines/bundles/``), as the
design card lays out; an installed package carries them as data files under
``<prefix>/share/appliance/``. An environment variable overrides both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def data_dir_candidates(name: str, in_checkout: str, env: str) -> list[Path]:
    """In order: ``$env`` alone when set, the checkout, the install prefix, /usr/share."""
    if os.environ.get(env):
        return [Path(os.environ[env])]
    checkout = Path(__file__).resolve().parents[1]
    return [
        checkout / in_checkout,
        Path(sys.prefix) / "share" / "appliance" / name,
        Path("/usr/share/appliance") / name,
    ]


def find_data_dir(name: str, in_checkout: str, env: str) -> Path:
    """The first existing candidate; FileNotFoundError naming all of them otherwise."""
    candidates = data_dir_candidates(name, in_checkout, env)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"no {name} directory found (tried {tried}; set {env})")
