"""Serves the Flask app from a thread, stoppable (werkzeug's threaded server)."""

from __future__ import annotations

import logging
import socket
import threading

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

log = logging.getLogger(__name__)


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
