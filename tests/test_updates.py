"""Model updates in the running daemon: the active OTA slot is what the stages run, a
signed update is committed only after the live pipeline ran well on it, and anything
else goes back to the old models."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.app import Appliance
from appliance.config import ConfigManager, parse_config
from appliance.runtime.bundle import factory_bundle_dir
from ota.errors import AgentError
from ota.layout import Layout
from ota.signing import keygen, load_private_key, sign
from tests.conftest import wait_until
from tests.ota.helpers import BUNDLE, make_bundle, rehash


@pytest.fixture
def ota_root(tmp_path: Path) -> Path:
    """An OTA root that trusts the key in ``tmp_path/signer``; no slots yet."""
    root = tmp_path / "ota"
    (root / "keys").mkdir(parents=True)
    _, public = keygen(tmp_path / "signer", "signer")
    shutil.copy(public, root / "keys" / "signer.pub")
    return root


def signed(tmp_path: Path, bundle: Path, name: str, signer: str = "signer") -> Path:
    key = tmp_path / signer / f"{signer}.key"
    return sign(bundle, load_private_key(key), tmp_path / name)


def daemon(root: Path, health_s: float = 1.5, **ota: Any) -> Appliance:
    config = parse_config(
        {
            "source": {"uri": "synthetic://", "width": 320, "height": 180},
            "ota": {"enabled": True, "root": str(root), "health_s": health_s, **ota},
        }
    )
    return Appliance(ConfigManager(config), web=False)


def detector_model(app: Appliance) -> object:
    return app.pipeline.stages[0].detector.net.model  # type: ignore[attr-defined]


def flowing(app: Appliance, frames: int = 5) -> bool:
    start = app.pipeline.stats()["frames_processed"]
    return wait_until(lambda: app.pipeline.stats()["frames_processed"] >= start + frames, 10.0)


def test_the_daemon_runs_the_active_slot_and_commits_an_update_that_runs_well(
    ota_root: Path, tmp_path: Path
) -> None:
    app = daemon(ota_root)
    slot_a = (ota_root / "slots" / "a").resolve()
    assert app.models_dir == slot_a  # first start: slot A filled from the factory bundles
    assert app.status()["models"]["versions"][BUNDLE] == "0.10.21-2"
    app.start()
    try:
        assert flowing(app)
        old_model = detector_model(app)
        update = signed(tmp_path, make_bundle(tmp_path / "v2", "0.10.21-12", 2), "v2.bundle")
        reports: list[dict[str, Any]] = []
        app.updates.on_status = reports.append  # type: ignore[union-attr]
        status = app.updates.install(str(update), "job-1")  # type: ignore[union-attr]
        states = [r["job"]["state"] for r in reports if r["job"]]
        assert states[-6:] == ["verify", "install", "activate", "health", "commit", "done"]
        assert any(r["job"]["progress"]["done"] for r in reports if r["job"])  # downloaded

        assert status["job"]["result"] == "installed", status["job"]
        assert status["active_slot"] == "b"
        assert app.models_dir == (ota_root / "slots" / "b").resolve()
        assert detector_model(app) is not old_model
        models = app.status()["models"]
        assert models["versions"][BUNDLE] == "0.10.21-12"
        assert models["updates"]["job"]["result"] == "installed"
        assert flowing(app)
        assert app.pipeline.stats()["stages"]["vision"]["errors"] == 0
    finally:
        assert app.stop() == []


def wrong_network(parent: Path, version: str) -> Path:
    """A face_detection bundle carrying another network (the iris model): signed, its
    files hash-correct, its reference outputs reproduce. Only running it shows it is
    not a face detector."""
    target = parent / BUNDLE
    shutil.copytree(factory_bundle_dir() / "iris", target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(name=BUNDLE, version=version)
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    rehash(target)
    return target


def test_models_the_pipeline_cannot_run_are_rolled_back_and_the_old_ones_keep_running(
    ota_root: Path, tmp_path: Path
) -> None:
    app = daemon(ota_root)
    app.start()
    try:
        assert flowing(app)
        running = detector_model(app)
        update = signed(tmp_path, wrong_network(tmp_path / "bad", "0.10.21-15"), "bad.bundle")
        status = app.updates.install(str(update))  # type: ignore[union-attr]

        assert status["job"]["result"] == "rolled_back"
        assert "face_detection" in status["job"]["reason"], status["job"]["reason"]
        assert status["active_slot"] == "a"
        assert app.models_dir == (ota_root / "slots" / "a").resolve()
        assert detector_model(app) is running
        assert app.status()["models"]["versions"][BUNDLE] == "0.10.21-2"
        assert flowing(app)
    finally:
        assert app.stop() == []


def test_models_that_slow_the_pipeline_down_are_rolled_back(
    ota_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = daemon(ota_root, health_s=2.0, min_rate=0.8)
    vision = app.pipeline.stages[0]
    real_swap = vision.swap_models  # type: ignore[attr-defined]
    slow = {"on": False}

    def swap_to_a_slow_network(models: Any) -> None:
        real_swap(models)
        slow["on"] = not slow["on"]  # the update's models are slow, the old ones not

    real_process = vision.process

    def process(frame: Any) -> Any:
        if slow["on"]:
            time.sleep(0.2)  # a network 5x too slow for 30 fps
        return real_process(frame)

    monkeypatch.setattr(vision, "swap_models", swap_to_a_slow_network)
    monkeypatch.setattr(vision, "process", process)
    app.start()
    try:
        assert flowing(app, 20)
        update = signed(tmp_path, make_bundle(tmp_path / "v2", "0.10.21-12", 2), "v2.bundle")
        status = app.updates.install(str(update))  # type: ignore[union-attr]

        assert status["job"]["result"] == "rolled_back"
        assert "below" in status["job"]["reason"] and "fps" in status["job"]["reason"]
        assert not slow["on"]  # back on the old models
        assert app.status()["models"]["versions"][BUNDLE] == "0.10.21-2"
    finally:
        assert app.stop() == []


def test_an_unsigned_update_is_refused_and_nothing_changes(ota_root: Path, tmp_path: Path) -> None:
    app = daemon(ota_root)
    app.start()
    try:
        keygen(tmp_path / "stranger", "stranger")
        bundle = make_bundle(tmp_path / "v2", "0.10.21-12", 2)
        update = signed(tmp_path, bundle, "stranger.bundle", "stranger")
        running = detector_model(app)
        status = app.updates.install(str(update))  # type: ignore[union-attr]
        assert status["job"]["result"] == "failed"
        assert "key" in status["job"]["reason"]
        assert detector_model(app) is running and status["active_slot"] == "a"
    finally:
        assert app.stop() == []


def test_a_daemon_stopped_mid_gate_resumes_the_gate_at_its_next_start(
    ota_root: Path, tmp_path: Path
) -> None:
    first = daemon(ota_root, health_s=60.0)
    first.start()
    update = signed(tmp_path, make_bundle(tmp_path / "v2", "0.10.21-12", 2), "v2.bundle")
    outcome: list[Any] = []

    def install() -> None:
        try:
            outcome.append(first.updates.install(str(update)))  # type: ignore[union-attr]
        except AgentError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=install)
    worker.start()
    layout = Layout(ota_root)
    assert wait_until(lambda: (layout.load_state()["job"] or {}).get("state") == "health", 30)
    assert wait_until(lambda: first.models_dir == (ota_root / "slots" / "b").resolve(), 30)
    first.stop()
    worker.join(10)
    assert isinstance(outcome[0], AgentError) and "next start" in str(outcome[0])
    assert layout.load_state()["job"]["state"] == "health"  # neither committed nor rolled back

    second = daemon(ota_root, health_s=1.0)
    assert second.models_dir == (ota_root / "slots" / "b").resolve()  # the models under test
    second.start()
    try:
        assert wait_until(lambda: layout.load_state()["job"]["state"] == "done", 30)
        assert layout.load_state()["job"]["result"] == "installed"
        assert layout.load_state()["committed_slot"] == "b"
        assert flowing(second)
    finally:
        assert second.stop() == []


def test_new_models_that_keep_killing_the_daemon_are_rolled_back_before_loading(
    ota_root: Path, tmp_path: Path
) -> None:
    first = daemon(ota_root)
    update = signed(tmp_path, make_bundle(tmp_path / "v2", "0.10.21-12", 2), "v2.bundle")
    agent = first.updates.agent  # type: ignore[union-attr]
    agent.public_keys = first.updates._trusted_keys()  # type: ignore[union-attr]

    class Killed(BaseException):
        """The daemon dies inside the gate, every time."""

    def dies(_slot: Path) -> list[str]:
        raise Killed

    agent.health_gate = dies
    with pytest.raises(Killed):
        agent.install(str(update))
    layout = Layout(ota_root)
    starts = []
    for _ in range(4):
        app = daemon(ota_root)  # what systemd's restarts do
        starts.append(app.models_dir.name)
    assert starts == ["b", "b", "b", "a"]
    job = layout.load_state()["job"]
    assert (job["state"], job["error"]) == ("rolled_back", "CrashLoop")
    assert layout.active_slot() == "a"
