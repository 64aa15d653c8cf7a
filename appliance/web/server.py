"""Serves the Flask app from a thread, stoppable (werkzeug's threaded server)."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

log = logging.getLogger(__name__)


MAX_CONNECTIONS = 32  # the camera's page serves a handful of people, not a crowd


class _Handler(WSGIRequestHandler):
    # A client that connects and then says nothing must not hold a thread forever.
    timeout = 10


class WebServer:
    def __init__(self, app: Flask, host: str, port: int) -> None:
        # Bind here, ourselves: a busy port must raise OSError at start-up (werkzeug
        # would print and call sys.exit, skipping the daemon's orderly shutdown).
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.create_server((host, port), family=family)
        except OSError as exc:
            raise OSError(f"web server on {host}:{port}: {exc.strerror}") from None
        with sock:
            self._server: BaseWSGIServer = make_server(
                host, port, app, threaded=True, fd=sock.fileno(), request_handler=_Handler
            )
        _cap_connections(self._server, MAX_CONNECTIONS)
        self._thread = threading.Thread(target=self._server.serve_forever, name="web", daemon=True)

    @property
    def url(self) -> str:
        host, port = (str(part) for part in self._server.server_address[:2])
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::", "::1") else host
        return f"http://{shown}:{port}/"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> bool:
        if self._thread.is_alive():  # shutdown() waits for serve_forever, forever if never run
            self._server.shutdown()
        self._server.server_close()
        if self._thread.ident is not None:  # a thread never started cannot be joined
            self._thread.join(timeout)
        return not self._thread.is_alive()


def _cap_connections(server: BaseWSGIServer, limit: int) -> None:
    """At most ``limit`` connections at once, each on its thread: past it a new one is
    closed at once, so slow-trickle clients cannot pile up threads (and memory)."""
    slots = threading.BoundedSemaphore(limit)
    handle = server.process_request
    finish = server.shutdown_request

    def process_request(request: Any, client_address: Any) -> None:
        if not slots.acquire(blocking=False):
            log.warning("web: %d connections open; refusing %s", limit, client_address[0])
            finish(request)  # the unwrapped one: this connection took no slot
            return
        try:
            handle(request, client_address)
        except BaseException:
            slots.release()
            raise

    def shutdown_request(request: Any) -> None:
        try:
            finish(request)
        finally:
            slots.release()

    server.process_request = process_request  # type: ignore[method-assign]
    server.shutdown_request = shutdown_request  # type: ignore[method-assign]
