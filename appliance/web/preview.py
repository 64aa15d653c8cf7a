"""The live picture: an HTML page, an MJPEG stream and single snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from flask import Blueprint, Response, current_app, render_template

from appliance.web.app import DaemonView

preview = Blueprint("preview", __name__)

BOUNDARY = "frame"
# A streaming client wakes this often with no new frame, so it notices shutdown.
POLL_S = 0.5
# Each stream holds a thread and an encoder's attention: a handful of viewers at most.
MAX_STREAMS = 8


def _daemon() -> DaemonView:
    return cast(DaemonView, current_app.config["DAEMON"])


@preview.get("/")
def index() -> str:
    return render_template("index.html", name=_daemon().config.config.device.name)


@preview.get("/stream.mjpg")
def stream() -> Response:
    hub = _daemon().hub
    if hub.clients >= MAX_STREAMS:
        return Response("too many viewers\n", status=503, mimetype="text/plain")

    def parts() -> Iterator[bytes]:
        hub.attach()
        try:
            seen = 0
            while not hub.closed:
                seen, jpeg = hub.wait_newer(seen, POLL_S)
                if jpeg is None:
                    continue
                yield (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
        finally:
            hub.detach()

    return Response(
        parts(),
        mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={"Cache-Control": "no-store"},
    )


@preview.get("/snapshot.jpg")
def snapshot() -> Response:
    daemon = _daemon()
    seen, _ = daemon.hub.wait_newer(0, 0)
    daemon.request_snapshot()
    _, jpeg = daemon.hub.wait_newer(seen, 2.0)
    if jpeg is None:
        return Response("no picture yet\n", status=503, mimetype="text/plain")
    return Response(jpeg, mimetype="image/jpeg", headers={"Cache-Control": "no-store"})
