"""pylock.toml: one exact, hashed resolution that installs on every machine the product has.

The camera is aarch64 (Jetson), development boxes and most receivers are x86-64: every
package the lock selects on either must come as a wheel for it, or a unit built on one
machine cannot be built the same way on the other.
"""

from __future__ import annotations

import platform
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
LOCK = tomllib.loads((ROOT / "pylock.toml").read_text(encoding="utf-8"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PYTHON = (3, 11)  # the oldest Python the project supports, the one the lock is resolved for
# JetPack 6 (Ubuntu 22.04) has glibc 2.35; Debian 12 has 2.36. A wheel needing more than
# the Jetson's glibc would not install there.
GLIBC_MINOR = 35


def _platforms(machine: str) -> list[str]:
    manylinux = [f"manylinux_2_{minor}_{machine}" for minor in range(GLIBC_MINOR, 4, -1)]
    legacy = {
        "x86_64": ["manylinux2014", "manylinux2010", "manylinux1"],
        "aarch64": ["manylinux2014"],
    }
    return [*manylinux, *(f"{name}_{machine}" for name in legacy[machine]), f"linux_{machine}"]


def _tags(machine: str) -> set[Tag]:
    platforms = _platforms(machine)
    return {
        *cpython_tags(PYTHON, platforms=platforms),
        *compatible_tags(PYTHON, platforms=platforms),
    }


def _environment(machine: str) -> dict[str, str]:
    return {
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "python_version": "3.11",
        "python_full_version": "3.11.2",
        "extra": "",
    }


def _selected(machine: str) -> list[dict[str, Any]]:
    env = _environment(machine)
    return [p for p in LOCK["packages"] if "marker" not in p or Marker(p["marker"]).evaluate(env)]


def _locked() -> dict[str, str]:
    return {canonicalize_name(p["name"]): p["version"] for p in LOCK["packages"]}


def test_the_lock_is_a_pep751_lock_with_a_hash_for_every_file() -> None:
    assert LOCK["lock-version"] == "1.0"
    assert LOCK["packages"], "an empty lock"
    for package in LOCK["packages"]:
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        assert files, f"{package['name']}: no files in the lock"
        for entry in files:
            assert len(entry["hashes"]["sha256"]) == 64, f"{package['name']}: {entry}"


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_every_locked_package_has_a_wheel_for(machine: str) -> None:
    tags = _tags(machine)
    missing = []
    for package in _selected(machine):
        wheels = [
            parse_wheel_filename(w["url"].rsplit("/", 1)[1]) for w in package.get("wheels", [])
        ]
        if not any(tags.intersection(wheel[3]) for wheel in wheels):
            missing.append(f"{package['name']}=={package['version']}")
    assert not missing, f"no CPython {PYTHON} manylinux {machine} wheel for {missing}"


def _direct_requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    specs = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        specs += extra
    for group in PYPROJECT["dependency-groups"].values():
        specs += group
    return [Requirement(s) for s in specs]


def test_the_lock_is_in_step_with_pyproject() -> None:
    """Every dependency pyproject.toml names is locked at a version it allows (else:
    `make lock`)."""
    locked = _locked()
    wrong = []
    for req in _direct_requirements():
        version = locked.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            wrong.append(f"{req} (locked: {version})")
    assert not wrong, f"pylock.toml is out of step with pyproject.toml: {wrong}; run `make lock`"


def test_this_environment_is_exactly_the_lock() -> None:
    """What `make` installed here is what the lock says, version for version."""
    machine = platform.machine()
    if machine not in ("x86_64", "aarch64") or sys.prefix == sys.base_prefix:
        pytest.fail(f"the tests run in the project's venv on x86_64 or aarch64, not {machine}")
    want = {canonicalize_name(p["name"]): p["version"] for p in _selected(machine)}
    have = {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in metadata.distributions()
        if d.metadata["Name"] is not None
    }
    have.pop("appliance", None)  # the project itself, installed editable beside the lock
    assert have == want
