"""Serves the Flask app with waitress from a thread, stoppable.

Why waitress and not werkzeug's server: werkzeug gives each connection a thread from
accept to close, so 40 clients that connect and say nothing hold 40 threads (or, capped,
lock everyone else out). Waitress reads and writes on one asyncore loop and hands a
worker thread only a request that has fully arrived: an idle or trickling connection
costs a socket and a small buffer, never a thread.

On top of waitress, three choices of ours (see docs/security.md, the web boundary):
- at the connection cap the connection idle longest is closed to make room, rather than
  new ones refused: a crowd of idle sockets cannot keep the owner out;
- the body a request may send is decided from its first line and cookie before a byte
  of it is buffered (``admission.body_limit``): only a logged-in upload may be large;
- a request from a logged-in session or a known device goes to the head of the queue,
  so a flood of strangers' requests delays the owner by one request, not by the flood.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from contextlib import suppress
from typing import Any

from flask import Flask
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from appliance.web.admission import Admission
from appliance.web.preview import MAX_STREAMS

log = logging.getLogger(__name__)

# Sockets open at once. An idle one costs a file descriptor and a few KiB (no thread),
# so the cap is about descriptors, not memory; past it the longest-idle one is closed.
MAX_CONNECTIONS = 128
# Worker threads. Each MJPEG viewer holds one for as long as it watches (preview.py caps
# viewers at MAX_STREAMS), the rest serve pages, the API and logins; a thread costs
# ~100 KiB of RSS. Login hashing is capped separately (ratelimit.py), not by threads.
SPARE_THREADS = 6
# A connection with nothing in flight for this long is closed (keep-alive sockets left
# by browsers, slow-loris clients that stopped), checked every CLEANUP_S.
IDLE_TIMEOUT_S = 30
CLEANUP_S = 5
# Request line plus headers: our cookies are two short tokens; browsers send ~2 KiB.
MAX_HEADER = 16 * 1024
# What a streaming response (the MJPEG preview) may have waiting for a slow reader
# before its generator blocks: a few frames, not waitress's default 16 MiB per viewer.
OUTBUF_HIGH_WATERMARK = 512 * 1024
# A viewer whose socket has not taken a byte for this long, with data waiting, is
# closed: a reader that stopped reading must not hold its viewer slot and thread.
STALLED_S = 30.0

# Connections taken from the kernel's backlog per loop turn.
ACCEPT_BURST = 16
# A new connection is not closed to make room before it was answered once or this many
# seconds passed (unless the sockets open reach twice MAX_CONNECTIONS).
NEWCOMER_S = 5.0

# Request bodies up to this stay in memory; anything bigger (only an upload may be)
# goes to a temporary file as it arrives.
BODY_IN_MEMORY = 64 * 1024


class _Request(HTTPRequestParser):
    """Waitress's parser, with the body limit chosen per request once its headers are in
    (waitress checks ``adj.max_request_body_size`` against Content-Length right after
    ``parse_header``, before it buffers any of the body)."""

    admission: Admission
    adj: Any  # waitress's Adjustments, then ours with this request's body limit
    owner = False  # set from the cookies: a logged-in session or a known device

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        cookie = self.headers.get("COOKIE", "")
        self.owner = self.admission.is_owner(cookie)
        limit = self.admission.body_limit(self.command, self.path, cookie)
        self.adj = _WithBodyLimit(self.adj, limit)


class _WithBodyLimit:
    """The server's Adjustments, but for one request's body limit."""

    def __init__(self, adj: Adjustments, max_request_body_size: int) -> None:
        self._adj = adj
        # waitress refuses a body of exactly the limit: one more byte is what we mean.
        self.max_request_body_size = max_request_body_size + 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adj, name)


class _Channel(HTTPChannel):
    def __init__(self, server: _Server, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.parser_class = server.request_class

    def owner_waiting(self) -> bool:
        """Whether the request this channel is about to serve came from the owner."""
        requests = self.requests
        return bool(requests) and bool(getattr(requests[0], "owner", False))

    def service(self) -> None:
        self.answered = True
        super().service()

    def newcomer(self, now: float) -> bool:
        """Connected a moment ago and not answered yet: it has not had its chance."""
        return not getattr(self, "answered", False) and now - self.creation_time < NEWCOMER_S

    def owners(self) -> bool:
        """Whether the owner is using this connection now (a request on its way in,
        waiting or being served: an upload, the preview stream)."""
        partial = [self.request] if self.request is not None else []
        return any(getattr(r, "owner", False) for r in [*self.requests, *partial])


class _OwnerFirst(ThreadedTaskDispatcher):
    """FIFO, except that the owner's requests go to the head of the queue."""

    def add_task(self, task: Any) -> None:
        try:
            urgent = bool(task.owner_waiting())
        except Exception:  # never let a bookkeeping error take the I/O loop down
            urgent = False
        if not urgent:
            super().add_task(task)
            return
        with self.lock:
            self.queue.appendleft(task)
            self.queue_cv.notify()


class _Server(TcpWSGIServer):
    channel_class = _Channel
    request_class: type[_Request] = _Request
    next_channel_cleanup: float = 0.0
    last_eviction_log = 0.0

    def readable(self) -> bool:
        # Unlike waitress's own readable(), never stop accepting at the cap: a newcomer
        # left in the kernel's backlog waits behind every reconnecting flooder. We
        # accept, then close the least recently active strangers' connections.
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return bool(self.accepting)

    def handle_accept(self) -> None:
        # What escapes here reaches wasyncore's handle_error, which closes the listening
        # socket: the page would be gone while its thread looks alive.
        try:
            self._accept_burst()
        except Exception:
            log.exception("web: accepting connections failed; still listening")

    def _accept_burst(self) -> None:
        for _ in range(ACCEPT_BURST):
            before = len(self._map)
            super().handle_accept()
            if len(self._map) == before:  # nothing more waiting (or a failed accept)
                break
        excess = len(self._map) - self.adj.connection_limit
        if excess > 0:
            self._evict(excess)

    def _evict(self, count: int) -> None:
        """Close up to ``count`` of the least recently active connections that are not
        the owner's. Newcomers are spared for NEWCOMER_S (up to twice the cap): under a
        flood the owner's fresh connection must live until its request shows whose it
        is. A trickling slow-loris client is as old as its last byte."""
        now = time.time()
        spare_newcomers = len(self._map) <= 2 * self.adj.connection_limit
        strangers = [
            c
            for c in self.active_channels.values()
            if not c.will_close and not c.owners() and not (spare_newcomers and c.newcomer(now))
        ]
        strangers.sort(key=lambda c: c.last_activity)
        for channel in strangers[:count]:
            channel.will_close = True  # writable now: the loop closes it on its next turn
        if now - self.last_eviction_log > 60:
            self.last_eviction_log = now
            log.warning("web: %d connections open; closing the least active", len(self._map))

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # idle past channel_timeout
        for channel in list(self.active_channels.values()):
            stalled = channel.total_outbufs_len and now - channel.last_activity > STALLED_S
            if channel.requests and stalled:
                # The reader stopped reading: closing wakes its task's blocked write,
                # which raises ClientDisconnected into the app (the viewer slot is freed).
                channel.will_close = True


class WebServer:
    def __init__(self, app: Flask, host: str, port: int) -> None:
        # Bind here, ourselves: a busy port raises OSError at start-up, as the daemon's
        # orderly shutdown expects, and port 0 picks a free one the tests can ask for.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.create_server((host, port), family=family, backlog=128)
        except OSError as exc:
            raise OSError(f"web server on {host}:{port}: {exc.strerror}") from None
        self._address = sock.getsockname()[:2]
        admission = app.config.get("ADMISSION") or Admission()
        adj = Adjustments(
            sockets=[sock],
            threads=MAX_STREAMS + SPARE_THREADS,
            connection_limit=MAX_CONNECTIONS,
            channel_timeout=IDLE_TIMEOUT_S,
            cleanup_interval=CLEANUP_S,
            max_request_header_size=MAX_HEADER,
            # The largest body any route takes; each request's own limit is set from
            # its path and cookie in _Request (admission.body_limit).
            max_request_body_size=admission.largest_body,
            inbuf_overflow=BODY_IN_MEMORY,
            outbuf_high_watermark=OUTBUF_HIGH_WATERMARK,
            # Reading on while a request runs is how a closed viewer is noticed
            # (environ["waitress.client_disconnected"]) even when no frame is sent.
            channel_request_lookahead=1,
            # poll(), not select(): select fails outright on descriptors past 1023.
            asyncore_use_poll=True,
            # Behind a TLS proxy only the scheme is taken from its header (for the
            # Secure cookie and the Origin check): never the client address or Host,
            # which anyone on loopback could then forge.
            trusted_proxy="*",
            trusted_proxy_headers={"x-forwarded-proto"},
            clear_untrusted_proxy_headers=True,
            # A hostile client's resets are not worth a traceback each in the log.
            log_socket_errors=False,
            expose_tracebacks=False,
            ident="appliance",
        )
        self._map: dict[int, Any] = {}
        self._dispatcher = _OwnerFirst()
        self._dispatcher.set_thread_count(adj.threads)
        self._server = _Server(
            app, map=self._map, _sock=sock, dispatcher=self._dispatcher, adj=adj,
            bind_socket=False, sockinfo=(sock.family, sock.type, sock.proto, self._address),
        )  # fmt: skip
        self._server.request_class = type("_AdmittedRequest", (_Request,), {"admission": admission})
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        _quiet_waitress_queue_warnings()

    @property
    def url(self) -> str:
        host, port = (str(part) for part in self._address)
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::", "::1") else host
        return f"http://{shown}:{port}/"

    @property
    def port(self) -> int:
        return int(self._address[1])

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        from waitress import wasyncore

        while not self._stopping.is_set() and self._map:
            wasyncore.loop(timeout=0.2, map=self._map, use_poll=True, count=1)

    def stop(self, timeout: float = 1.0) -> bool:
        deadline = time.monotonic() + timeout
        self._stopping.set()
        if self._thread.ident is not None:  # a thread never started cannot be joined
            self._thread.join(timeout)
        for channel in list(self._map.values()):
            with suppress(OSError):
                channel.close()
        left = max(0.05, deadline - time.monotonic())
        self._dispatcher.shutdown(cancel_pending=True, timeout=left)
        return not self._thread.is_alive()


def _quiet_waitress_queue_warnings() -> None:
    # waitress warns on every request queued behind busy threads: under a flood that is
    # thousands of lines a second in the journal and the page's log view.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
