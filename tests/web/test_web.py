"""The web side against a running pipeline, over real HTTP on loopback."""

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.conftest import wait_until
from tests.web.conftest import Served
from tests.web.helpers import Client


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes, str]:
    """GET as the logged-in client of the test's daemon (see ``_client``)."""
    assert _current is not None
    path = url.removeprefix(_current.base)
    code, body, headers = _current.raw(path, timeout=timeout)
    return code, body, headers.get("Content-Type", "")


def send(url: str, method: str, body: object) -> tuple[int, Any]:
    assert _current is not None
    return _current.send(url.removeprefix(_current.base), method, body)


_current: Client | None = None


@pytest.fixture(autouse=True)
def _client(served: Served) -> Iterator[None]:
    """These tests are about the API, not the login: every request is logged in."""
    global _current
    _current = served.client()
    yield
    _current = None


def test_status_reports_source_and_stages(served: Served) -> None:
    app, base = served.app, served.base
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
    assert _current is not None
    request = urllib.request.Request(f"{served.base}/stream.mjpg")
    with _current.opener.open(request, timeout=5.0) as response:
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
    base = served.base
    code, body, kind = get(f"{base}/snapshot.jpg")
    assert code == 200 and kind == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)


def test_page_embeds_the_stream(served: Served) -> None:
    base = served.base
    code, body, _ = get(base + "/")
    assert code == 200 and b'src="stream.mjpg"' in body


def test_valid_change_is_applied_live_and_saved(served: Served, tmp_path: Path) -> None:
    app, base = served.app, served.base
    code, body = send(f"{base}/api/config", "PATCH", {"web": {"jpeg_quality": 33, "port": 9999}})
    assert code == 200
    assert body["config"]["web"]["jpeg_quality"] == 33
    assert body["restart_required"] == ["web.port"]
    assert wait_until(lambda: app.preview.quality == 33)  # applied by the sink between frames
    assert "jpeg_quality: 33" in (tmp_path / "config.yaml").read_text()


def test_invalid_change_is_refused_with_paths_and_nothing_changes(
    served: Served, tmp_path: Path
) -> None:
    app, base = served.app, served.base
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
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_MEDIA_DIR", str(tmp_path))  # the page may name media only
    app, base = served.app, served.base
    other = tmp_path / "other.png"
    cv2.imwrite(str(other), np.full((50, 70, 3), 255, np.uint8))
    code, _ = send(f"{base}/api/config", "PATCH", {"source": {"uri": f"file://{other}"}})
    assert code == 200
    assert wait_until(lambda: app.status()["capture"]["source"] == f"file://{other}")
    assert wait_until(lambda: app.status()["capture"]["size"] == [70, 50])


def test_oversized_and_pathological_bodies_get_json_errors(served: Served) -> None:
    app, base = served.app, served.base
    before = app.config.config
    code, body = send(f"{base}/api/config", "PATCH", b"[" * 100_000 + b"]" * 100_000)
    assert code == 413 and body["errors"]
    code, body = send(f"{base}/api/config", "PATCH", b"[" * 30_000)
    assert code == 400 and body["errors"][0].startswith("body: ")
    code, body = send(f"{base}/api/config", "PATCH", [1, 2])
    assert code == 400 and "expected a mapping" in body["errors"][0]
    assert app.config.config == before


def test_unknown_api_paths_answer_json(served: Served) -> None:
    base = served.base
    code, body, kind = get(f"{base}/api/nope")
    assert code == 404 and kind == "application/json" and json.loads(body)["errors"]


def test_foreign_host_names_are_refused_on_loopback(served: Served) -> None:
    assert _current is not None
    code, _, _ = _current.raw("/api/config", headers={"Host": "evil.example:80"})
    assert code == 403  # even with a valid session: the name itself is refused


def test_a_web_address_this_machine_cannot_use_is_refused_before_saving(
    served: Served, tmp_path: Path
) -> None:
    app, base = served.app, served.base
    code, body = send(f"{base}/api/config", "PATCH", {"web": {"bind": "192.0.2.1"}})
    assert code == 400
    assert body["errors"][0].startswith("web: cannot listen on 192.0.2.1:8080")
    assert app.config.config.web.bind == "127.0.0.1"
    assert not (tmp_path / "config.yaml").exists()


def test_responses_say_whether_changes_survive_a_restart(served: Served) -> None:
    base = served.base
    code, body = send(f"{base}/api/config", "PATCH", {"web": {"jpeg_quality": 70}})
    assert code == 200 and body["persisted"] is True
