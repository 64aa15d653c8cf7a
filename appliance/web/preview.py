"""The live picture: an MJPEG stream and single snapshots (behind the login, like all)."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, abort, request

from appliance.output.preview import JpegHub
from appliance.web.common import daemon, optional

preview = Blueprint("preview", __name__)

BOUNDARY = "frame"
# A streaming client wakes this often with no new frame, so it notices shutdown.
POLL_S = 0.5
# Each stream holds a thread and an encoder's attention: a handful of viewers at most.
MAX_STREAMS = 8


def _hub() -> JpegHub:
    """``?view=before``: the picture as captured, when the daemon publishes it."""
    if request.args.get("view", "after") == "after":
        return daemon().hub
    before = optional("before_hub")
    if request.args["view"] != "before" or before is None:
        abort(404, description="no such view")
    return before


@preview.get("/stream.mjpg")
def stream() -> Response:
    hub = _hub()
    if not hub.attach(MAX_STREAMS):  # counted now, not when the stream starts sending
        return Response("too many viewers\n", status=503, mimetype="text/plain")

    def parts() -> Iterator[bytes]:
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

    response = Response(
        parts(),
        mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={"Cache-Control": "no-store"},
    )
    response.call_on_close(hub.detach)  # also when the stream never started
    return response


@preview.get("/snapshot.jpg")
def snapshot() -> Response:
    hub = _hub()
    seen, _ = hub.wait_newer(0, 0)
    daemon().request_snapshot()
    _, jpeg = hub.wait_newer(seen, 2.0)
    if jpeg is None:
        return Response("no picture yet\n", status=503, mimetype="text/plain")
    return Response(jpeg, mimetype="image/jpeg", headers={"Cache-Control": "no-store"})
