"""The live picture: an MJPEG stream and single snapshots (behind the login, like all).

A viewer's slot is given back the moment its client goes: the generator checks
``waitress.client_disconnected`` at each wake-up (twice a second, frame or not), a
write to a closed socket ends it too, and its ``finally`` (or the response's close,
when it never started) releases the slot, once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from flask import Blueprint, Response, abort, request

from appliance.output.preview import JpegHub
from appliance.web.common import daemon, optional

preview = Blueprint("preview", __name__)

BOUNDARY = "frame"
# A streaming client wakes this often with no new frame, so it notices shutdown.
POLL_S = 0.5
# Each stream holds a server thread (server.py sizes its pool from this) and an
# encoder's attention: a handful of viewers at most, both views together.
MAX_STREAMS = 8


class _Viewer:
    """One counted viewer of ``hub``; ``release`` is safe to call more than once."""

    def __init__(self, hub: JpegHub) -> None:
        self.hub = hub
        self._released = threading.Event()

    def release(self) -> None:
        with _viewers_lock:
            if self._released.is_set():
                return
            self._released.set()
        self.hub.detach()


_viewers_lock = threading.Lock()


def _admit(hub: JpegHub) -> _Viewer | None:
    """Count a viewer now (not when the stream starts sending), or None when full."""
    with _viewers_lock:
        hubs = {id(h): h for h in (daemon().hub, optional("before_hub"), hub) if h is not None}
        if sum(h.clients for h in hubs.values()) >= MAX_STREAMS:
            return None
        hub.attach()
    return _Viewer(hub)


def _gone() -> Callable[[], bool]:
    """Whether the client has hung up; waitress tells (the test client never does)."""
    check = request.environ.get("waitress.client_disconnected")
    return check if callable(check) else lambda: False


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
    viewer = _admit(hub)
    if viewer is None:
        return Response("too many viewers\n", status=503, mimetype="text/plain")
    gone = _gone()

    def parts() -> Iterator[bytes]:
        # The newest picture at once: the viewer sees something (and gets the headers,
        # which the server sends with the first bytes) even while the camera is slow.
        seen, jpeg = hub.wait_newer(0, 0)
        try:
            while not hub.closed and not gone():
                if jpeg is not None:
                    yield _part(jpeg)
                seen, jpeg = hub.wait_newer(seen, POLL_S)
        finally:  # the client went, the hub closed, or the server closed us
            viewer.release()

    response = Response(
        parts(),
        mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={"Cache-Control": "no-store"},
    )
    response.call_on_close(viewer.release)  # also when the stream never started
    return response


def _part(jpeg: bytes) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode() + jpeg + b"\r\n"


@preview.get("/snapshot.jpg")
def snapshot() -> Response:
    hub = _hub()
    seen, _ = hub.wait_newer(0, 0)
    daemon().request_snapshot()
    _, jpeg = hub.wait_newer(seen, 2.0)
    if jpeg is None:
        return Response("no picture yet\n", status=503, mimetype="text/plain")
    return Response(jpeg, mimetype="image/jpeg", headers={"Cache-Control": "no-store"})
