"""The models API: what runs, and uploads through the update agent."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

from tests.conftest import wait_until
from tests.web.conftest import Served, Signer
from tests.web.helpers import Client


def upload(client: Client, data: bytes, name: str = "update.bundle") -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    body.write(f"--{boundary}\r\n".encode())
    body.write(
        f'Content-Disposition: form-data; name="bundle"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
    )
    body.write(data + f"\r\n--{boundary}--\r\n".encode())
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "X-CSRF-Token": client.csrf,
    }
    code, raw, _ = client.raw("/api/models", "POST", body.getvalue(), headers, timeout=60)
    return code, json.loads(raw)


def test_listing_shows_bundles_versions_and_accuracy(served: Served) -> None:
    code, raw, _ = served.client().get("/api/models")
    models = json.loads(raw)
    assert code == 200 and models["updates_enabled"] is False and models["agent"] is None
    by_name = {b["name"]: b for b in models["bundles"]}
    assert by_name["face_detection"]["version"] == "0.10.21-2"
    assert by_name["face_detection"]["accuracy"] == [
        "conversion: passed",
        "int8 box_iou = 0.9478 (limit 0.9): passed",
    ]
    # what runs here, as the backend chose it ("int8 (fp32 1.2 ms, int8 0.9 ms)")
    assert models["backend"] == "onnxruntime"
    runs = by_name["face_detection"]["runs"]
    assert runs.split(" ", 1)[0] in ("fp32", "int8") and "fp32" in runs and " ms" in runs


def test_uploads_are_refused_clearly_when_updates_are_off(served: Served) -> None:
    code, body = upload(served.client(), b"anything")
    assert code == 503 and "ota.enabled" in body["errors"][0]


def test_a_signed_upload_installs_and_a_bigger_than_config_body_is_fine(
    ota_served: tuple[Served, Signer],
) -> None:
    served, signer = ota_served
    client = served.client()
    update = signer.update("0.10.21-12", 2)
    assert update.stat().st_size > 64 * 1024  # above the API's usual body limit
    code, body = upload(client, b"", name="")
    assert code == 400 and body["errors"][0].startswith("bundle:")
    code, body = upload(client, update.read_bytes())
    assert code == 200, body
    assert body["result"] == "installed" and body["agent"]["active_slot"] == "b"
    code, raw, _ = client.get("/api/models")
    agent = json.loads(raw)["agent"]
    assert agent["active_slot"] == "b" and agent["job"]["result"] == "installed"
    assert agent["slots"]["a"]["face_detection"] == "0.10.21-2"
    assert agent["slots"]["b"]["face_detection"] == "0.10.21-12"
    assert served.app.status()["models"]["versions"]["face_detection"] == "0.10.21-12"
    code, body = upload(client, update.read_bytes())
    assert code == 200 and body["result"] == "already_installed"
    # The upload's temporary copy is gone.
    assert wait_until(lambda: not list(Path("/tmp").glob("web-upload-*/upload.bundle")), 1.0)
