"""SIGKILL the update agent at hundreds of points; it must never brick the camera.

The work happens in tests/ota/crash_driver.py (a separate process that forks one agent
process per run and kills it); this test serves the updates over HTTP, runs the
driver and checks its summary. See the driver's docstring for the invariant.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ota.agent import Agent
from ota.compat import Device
from ota.health import hash_gate
from tests.ota.helpers import range_server

DRIVER = Path(__file__).with_name("crash_driver.py")
ROOT = Path(__file__).resolve().parents[2]
KILLS = 220


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """tmpfs where there is one. A SIGKILL tests what survives the death of a process,
    which is everything in the page cache, so fsync cannot matter here; on a shared
    disk each fsync costs ~0.1 s and would make this test take minutes."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="ota-crash-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_sigkill_at_any_point_leaves_a_complete_verified_slot(
    scratch: Path, factory: Path, keys: dict[str, Path], trusted: list, device: Device
) -> None:
    tmp_path = scratch
    root = tmp_path / "ota"
    Agent(root, trusted, device, hash_gate).initialize(factory)
    work = tmp_path / "work"
    (work / "updates").mkdir(parents=True)
    with range_server() as server:
        server.directory = work / "updates"
        config = {
            "root": str(root),
            "work": str(work),
            "url": server.url(""),
            "private_key": str(keys["private"]),
            "public_key": str(keys["public"]),
            "board": device.board,
            "runtimes": dict(device.runtimes),
            "kills": KILLS,
            "max_jobs": 120,
            "max_kills_per_job": 10,
            "timed_fraction": 0.3,
            "seed": 20251124,
            "deadline_s": 400,
        }
        (tmp_path / "config.json").write_text(json.dumps(config))
        done = subprocess.run(
            [sys.executable, str(DRIVER), str(tmp_path / "config.json")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=500,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"crash test: {json.dumps(summary)}")
    assert summary["violations"] == [], summary["violations"]
    assert summary["kills"] >= 200, summary
    assert summary["completions"] == summary["jobs"]  # every job reached a final state
    for phase in ("download", "install", "activate"):
        assert summary["by_phase"].get(phase, 0) >= 10, summary["by_phase"]
    assert summary["kinds"].get("timed", 0) >= 10, summary["kinds"]
    assert summary["results"].get("installed", 0) >= 3
    assert summary["results"].get("rolled_back", 0) >= 1
    requests = [r for r in server.requests if r[1] is not None]
    assert requests, "no download was ever resumed with a Range request"
