"""The webcam output inside the daemon: without a gadget it says why and the camera
runs on; the host's zoom drives the framing through the one config schema."""

from __future__ import annotations

from appliance.app import Appliance
from appliance.config import ConfigManager, parse_config
from tests.conftest import wait_until


def test_without_a_gadget_the_daemon_runs_idle_and_status_says_why() -> None:
    config = parse_config(
        {"source": {"uri": "synthetic://", "width": 320, "height": 180}, "uvc": {"enabled": True}}
    )
    app = Appliance(ConfigManager(config), web=False)
    assert [s.name for s in app.pipeline.sinks] == ["preview", "codec", "uvc"]
    app.start()
    try:
        # No host streams and nobody watches: frames are captured, the stages idle.
        assert wait_until(lambda: app.pipeline.stats()["frames_idle"] > 10, 10.0)
        assert app.pipeline.stats()["frames_processed"] == 0
        app.hub.attach()  # someone opens the page's preview: the stages start
        assert wait_until(lambda: app.pipeline.stats()["frames_processed"] > 5, 10.0)
        app.hub.detach()
        status = app.status()["uvc"]
        assert status["streaming"] is False
        assert "appliance gadget up" in status["problem"]
        assert app.status()["healthy"] is True  # no webcam host is not a fault
    finally:
        assert app.stop() == []


def test_the_hosts_zoom_tightens_the_framing_and_a_bad_one_changes_nothing() -> None:
    config = parse_config({"source": {"uri": "synthetic://"}, "uvc": {"enabled": True}})
    app = Appliance(ConfigManager(config), web=False)
    assert app.uvc is not None
    app._host_control("zoom_absolute", 150)
    assert app.config.config.align.face_height == 0.54  # 0.36 (zoom 100) x 1.5
    app._host_control("zoom_absolute", 400)
    assert app.config.config.align.face_height == 0.8  # the schema's tightest
    app._host_control("brightness", 30)  # applied to the host's picture, not the config
    assert app.config.config.align.face_height == 0.8


def test_uvc_off_by_default_adds_no_sink() -> None:
    app = Appliance(ConfigManager(parse_config({"source": {"uri": "synthetic://"}})), web=False)
    assert app.uvc is None and [s.name for s in app.pipeline.sinks] == ["preview", "codec"]
    assert app.status()["uvc"] == {"enabled": False}
