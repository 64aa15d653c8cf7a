"""The web side against a running pipeline, over real HTTP on loopback."""

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from appliance.app import Appliance
from appliance.config import ConfigManager, parse_config
from appliance.web import WebServer, create_app
from tests.conftest import wait_until


@pytest.fixture
def still(tmp_path: Path) -> Path:
    path = tmp_path / "still.png"
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, 80:] = (0, 0, 255)
    cv2.imwrite(str(path), image)
    return path


Served = tuple[Appliance, str]


@pytest.fixture
def served(tmp_path: Path, still: Path) -> Iterator[Served]:
    config = parse_config({"source": {"uri": f"file://{still}", "fallback": []}})
    manager = ConfigManager(config, tmp_path / "config.yaml")
    app = Appliance(manager, web=False)
    server = WebServer(create_app(app), "127.0.0.1", 0)
    app.start()
    server.start()
    yield app, f"http://127.0.0.1:{server.port}"
    assert server.stop(1.0)
    assert app.stop() == []


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")


def send(url: str, method: str, body: object) -> tuple[int, Any]:
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5.0) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_status_reports_source_and_stages(served: Served) -> None:
    app, base = served
    assert wait_until(lambda: app.pipeline.stats()["frames_in"] > 3)
    code, body, kind = get(f"{base}/api/status")
    status = json.loads(body)
    assert code == 200 and kind == "application/json"
    assert status["capture"]["source"].startswith("file://")
    assert status["healthy"] is True
    assert set(status["pipeline"]["stages"]) == {
        "vision",
        "align",
        "background",
        "enhance",
        "preview",
        "codec",
    }
    assert status["vision"]["error"] is None
    assert status["codec"]["enabled"] is False and status["codec"]["datagrams"] == 0
    # Throughput is reported although nobody watches (the preview sink then idles).
    assert status["pipeline"]["fps"] > 0 and status["pipeline"]["output_fps"] == 0


def test_mjpeg_stream_delivers_decodable_frames(served: Served) -> None:
    _, base = served
    with urllib.request.urlopen(f"{base}/stream.mjpg", timeout=5.0) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        images = []
        for _ in range(2):
            assert response.readline().strip() == b"--frame"
            headers = {}
            while (line := response.readline().strip()) != b"":
                key, _, value = line.decode().partition(": ")
                headers[key] = value
            assert headers["Content-Type"] == "image/jpeg"
            jpeg = response.read(int(headers["Content-Length"]))
            response.readline()
            images.append(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
    for image in images:
        assert image.shape == (120, 160, 3)
        assert image[60, 120, 2] > 200 and image[60, 20].max() < 40  # the picture, not noise


def test_snapshot_without_any_viewer(served: Served) -> None:
    _, base = served
    code, body, kind = get(f"{base}/snapshot.jpg")
    assert code == 200 and kind == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)


def test_page_embeds_the_stream(served: Served) -> None:
    _, base = served
    code, body, _ = get(base + "/")
    assert code == 200 and b'src="stream.mjpg"' in body


def test_valid_change_is_applied_live_and_saved(served: Served, tmp_path: Path) -> None:
    app, base = served
    code, body = send(f"{base}/api/config", "PATCH", {"web": {"jpeg_quality": 33, "port": 9999}})
    assert code == 200
    assert body["config"]["web"]["jpeg_quality"] == 33
    assert body["restart_required"] == ["web.port"]
    assert wait_until(lambda: app.preview.quality == 33)  # applied by the sink between frames
    assert "jpeg_quality: 33" in (tmp_path / "config.yaml").read_text()


def test_invalid_change_is_refused_with_paths_and_nothing_changes(
    served: Served, tmp_path: Path
) -> None:
    app, base = served
    before = app.config.config
    code, body = send(f"{base}/api/config", "PATCH", {"web": {"jpeg_quality": 0}, "bogus": 1})
    assert code == 400
    assert any(e.startswith("web.jpeg_quality:") for e in body["errors"])
    assert "bogus: unknown key" in body["errors"]
    code, body = send(f"{base}/api/config", "PATCH", b"{not json")
    assert code == 400 and "JSON" in body["errors"][0]
    assert app.config.config == before
    assert not (tmp_path / "config.yaml").exists()


def test_changing_the_source_switches_capture_between_frames(
    served: Served, tmp_path: Path
) -> None:
    app, base = served
    other = tmp_path / "other.png"
    cv2.imwrite(str(other), np.full((50, 70, 3), 255, np.uint8))
    code, _ = send(f"{base}/api/config", "PATCH", {"source": {"uri": f"file://{other}"}})
    assert code == 200
    assert wait_until(lambda: app.status()["capture"]["source"] == f"file://{other}")
    assert wait_until(lambda: app.status()["capture"]["size"] == [70, 50])


def test_oversized_and_pathological_bodies_get_json_errors(served: Served) -> None:
    app, base = served
    before = app.config.config
    code, body = send(f"{base}/api/config", "PATCH", b"[" * 100_000 + b"]" * 100_000)
    assert code == 413 and body["errors"]
    code, body = send(f"{base}/api/config", "PATCH", b"[" * 30_000)
    assert code == 400 and body["errors"][0].startswith("body: ")
    code, body = send(f"{base}/api/config", "PATCH", [1, 2])
    assert code == 400 and "expected a mapping" in body["errors"][0]
    assert app.config.config == before


def test_unknown_api_paths_answer_json(served: Served) -> None:
    _, base = served
    code, body, kind = get(f"{base}/api/nope")
    assert code == 404 and kind == "application/json" and json.loads(body)["errors"]


def test_foreign_host_names_are_refused_on_loopback(served: Served) -> None:
    _, base = served
    request = urllib.request.Request(f"{base}/api/config", headers={"Host": "evil.example:80"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5.0)
    assert info.value.code == 403


def test_a_web_address_this_machine_cannot_use_is_refused_before_saving(
    served: Served, tmp_path: Path
) -> None:
    app, base = served
    code, body = send(f"{base}/api/config", "PATCH", {"web": {"bind": "192.0.2.1"}})
    assert code == 400
    assert body["errors"][0].startswith("web: cannot listen on 192.0.2.1:8080")
    assert app.config.config.web.bind == "127.0.0.1"
    assert not (tmp_path / "config.yaml").exists()


def test_responses_say_whether_changes_survive_a_restart(served: Served) -> None:
    _, base = served
    code, body = send(f"{base}/api/config", "PATCH", {"web": {"jpeg_quality": 70}})
    assert code == 200 and body["persisted"] is True
