"""The assembled daemon: neural stages, and what happens when their models are bad."""

import shutil
import time
from pathlib import Path

import pytest

from appliance.app import Appliance
from appliance.config import ConfigError, ConfigManager, parse_config
from appliance.runtime.bundle import BundleError, factory_bundle_dir, load_manifest, model_file
from tests.conftest import wait_until


def test_the_face_tracker_runs_on_the_synthetic_face() -> None:
    config = parse_config({"source": {"uri": "synthetic://", "width": 640, "height": 360}})
    app = Appliance(ConfigManager(config), web=False)
    faces: list[object] = []
    app.preview.always = True
    original = app.preview.consume

    def spy(frame):  # type: ignore[no-untyped-def]
        faces.append(frame.meta.get("faces"))
        return original(frame)

    app.preview.consume = spy  # type: ignore[method-assign]
    app.start()
    try:
        assert wait_until(lambda: len(faces) > 10, timeout=10.0)
    finally:
        assert app.stop() == []
    assert [s.name for s in app.pipeline.stages] == ["vision", "align", "background", "enhance"]
    assert sum(1 for f in faces if f) >= len(faces) - 2  # found on (nearly) every frame


def test_a_tampered_model_bundle_is_refused_and_the_camera_still_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_BUNDLES_DIR", str(tampered_copy(tmp_path)))

    config = parse_config({"source": {"uri": "synthetic://", "width": 320, "height": 180}})
    app = Appliance(ConfigManager(config), web=False)
    assert [s.name for s in app.pipeline.stages] == ["passthrough"]
    assert "face_mesh" in app.vision_error and "sha256 mismatch" in app.vision_error
    app.start()
    try:
        assert wait_until(lambda: app.pipeline.stats()["fps"] > 0, timeout=5.0)
        assert app.status()["vision"]["error"] == app.vision_error
    finally:
        assert app.stop() == []


def test_background_follows_the_config_live_and_a_bad_picture_changes_nothing(
    tmp_path: Path,
) -> None:
    config = parse_config({"source": {"uri": "synthetic://", "width": 320, "height": 180}})
    manager = ConfigManager(config)
    app = Appliance(manager, web=False)
    modes: list[object] = []
    app.preview.always = True
    original = app.preview.consume

    def spy(frame):  # type: ignore[no-untyped-def]
        modes.append((frame.meta.get("background") or {}).get("mode"))
        return original(frame)

    app.preview.consume = spy  # type: ignore[method-assign]
    app.start()
    try:
        assert wait_until(lambda: len(modes) > 3, timeout=10.0)
        assert set(modes) == {None}  # off by default: the model does not even run
        manager.update({"background": {"mode": "blur"}})
        assert wait_until(lambda: modes[-1] == "blur", timeout=5.0)
        with pytest.raises(ConfigError, match=r"background\.image"):
            manager.update({"background": {"mode": "replace", "image": str(tmp_path / "no.png")}})
        assert manager.config.background.mode == "blur"
        count = len(modes)
        assert wait_until(lambda: len(modes) > count + 3, timeout=5.0)
        assert set(modes[count:]) == {"blur"}
    finally:
        assert app.stop() == []


def test_a_bad_segmentation_bundle_leaves_framing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_BUNDLES_DIR", str(tampered_copy(tmp_path, "selfie_segmentation")))
    config = parse_config({"source": {"uri": "synthetic://", "width": 320, "height": 180}})
    app = Appliance(ConfigManager(config), web=False)
    assert [s.name for s in app.pipeline.stages] == ["vision", "align", "enhance"]
    assert app.vision_error.startswith("background: ") and "sha256 mismatch" in app.vision_error


def tampered_copy(tmp_path: Path, model: str = "face_mesh") -> Path:
    bundles = tmp_path / "bundles"
    shutil.copytree(factory_bundle_dir(), bundles)
    bundle = bundles / model
    onnx = bundle / str(model_file(load_manifest(bundle), "fp32"))
    data = bytearray(onnx.read_bytes())
    data[1000] ^= 0x01
    onnx.write_bytes(bytes(data))
    return bundles


def test_a_model_update_swaps_between_frames_and_a_bad_one_changes_nothing(
    tmp_path: Path,
) -> None:
    config = parse_config({"source": {"uri": "synthetic://", "width": 320, "height": 180}})
    app = Appliance(ConfigManager(config), web=False)
    stage = app.pipeline.stages[0]
    running = stage.mesh.net.model  # type: ignore[attr-defined]
    app.start()
    try:
        with pytest.raises(BundleError, match=r"face_mesh.*sha256 mismatch"):
            app.reload_models(tampered_copy(tmp_path))
        time.sleep(0.2)
        assert stage.mesh.net.model is running  # type: ignore[attr-defined]

        good = tmp_path / "good"
        shutil.copytree(factory_bundle_dir(), good)
        app.reload_models(good)
        assert wait_until(lambda: stage.mesh.net.model is not running, timeout=3.0)  # type: ignore[attr-defined]
        before = app.pipeline.stats()["stages"]["vision"]["processed"]
        assert wait_until(
            lambda: app.pipeline.stats()["stages"]["vision"]["processed"] > before + 5
        )
        assert app.pipeline.stats()["stages"]["vision"]["errors"] == 0
    finally:
        assert app.stop() == []


def test_an_unopenable_source_falling_back_is_reported_not_healthy(tmp_path: Path) -> None:
    missing = tmp_path / "gone.mp4"
    config = parse_config(
        {"source": {"uri": f"file://{missing}", "fallback": ["synthetic://"], "width": 320,
                    "height": 180}, "vision": {"enabled": False}}
    )  # fmt: skip
    app = Appliance(ConfigManager(config), web=False)
    app.start()
    try:
        assert wait_until(lambda: app.selector.current is not None, timeout=10.0)
        status = app.status()
        assert status["capture"]["source"] == "synthetic://"
        assert status["healthy"] is False
        assert f"source file://{missing} failed" in status["problem"]
        assert "showing synthetic://" in status["problem"]
        assert status["problems"] == [status["problem"]]
    finally:
        assert app.stop() == []
