"""Health gates: is a freshly activated slot fit to run, judged on the device itself?

A gate takes the slot directory and returns the problems it found (empty: healthy);
an exception counts as a failure. The agent commits a slot only when its gate passes
and rolls back otherwise.

- :func:`hash_gate`: every bundle passes ``verify_bundle`` (manifest, every file's
  size and sha256, accuracy gates). Cheap: no runtime loads.
- :func:`reference_gate` (the default): the above, then every model each bundle ships
  is loaded on the inference backend this device uses and reproduces the reference
  outputs stored in the bundle, as ``appliance engines verify`` does. This catches what
  hashes cannot: a runtime on this device that computes something else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

HealthGate = Callable[[Path], list[str]]


def bundle_dirs(slot: Path) -> list[Path]:
    return sorted(p for p in slot.iterdir() if p.is_dir() and not p.name.startswith("."))


def hash_gate(slot: Path) -> list[str]:
    """Every bundle in ``slot`` verifies (hashes, manifest); the slot is not empty."""
    from appliance.runtime.bundle import verify_bundle

    if not slot.is_dir():
        return [f"{slot}: not a directory"]
    bundles = bundle_dirs(slot)
    if not bundles:
        return [f"{slot}: no bundles"]
    return [p for bundle in bundles for p in verify_bundle(bundle)]


def reference_gate(slot: Path, backend: str = "auto") -> list[str]:
    """Hashes, then each shipped model reproduces its reference outputs on ``backend``."""
    problems = hash_gate(slot)
    if problems:
        return problems
    from appliance.runtime.bundle import PRECISIONS, check_reference, load_manifest, model_file
    from appliance.runtime.select import choose_backend

    runtime = choose_backend(backend)
    for bundle in bundle_dirs(slot):
        manifest = load_manifest(bundle)
        for precision in PRECISIONS:
            if model_file(manifest, precision) is None:
                continue
            model = runtime.load(bundle, precision)
            try:
                checks = check_reference(bundle, model)
            finally:
                model.close()
            problems += [
                f"{bundle.name}: {c.precision} reference: {c.describe()}"
                for c in checks
                if not c.ok
            ]
        log.info("health: %s reproduces its reference outputs", bundle.name)
    return problems


def run_gate(gate: HealthGate, slot: Path) -> list[str]:
    """The gate's problems; an exception it raises is one more problem, not a crash."""
    try:
        return list(gate(slot))
    except Exception as exc:
        log.exception("health gate raised")
        return [f"health gate raised {type(exc).__name__}: {exc}"]
