"""UDP for the keypoint codec: one datagram per packet (spec §1), the sender's socket also
receives the far end's REQUESTs."""

from __future__ import annotations

import errno
import socket
from urllib.parse import urlsplit

MAX_DATAGRAM = 65535


def parse_udp_uri(uri: str, listen: bool = False) -> tuple[str, int]:
    """``udp://HOST:PORT`` -> (host, port); ValueError saying what is accepted. A port to
    ``listen`` on may be 0: any free one."""
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "udp" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ValueError(f"{uri!r} is not udp://HOST:PORT (for example udp://192.0.2.7:5004)")
    if not (0 if listen else 1) <= port <= 65535:
        raise ValueError(f"{uri!r}: port must be 1..65535")
    return parts.hostname, port


def open_udp(bind: tuple[str, int] | None = None) -> socket.socket:
    """A non-blocking UDP socket, bound when ``bind`` is given (the receiver's port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    if bind is not None:
        sock.bind(bind)
    return sock


def drain(sock: socket.socket) -> list[tuple[bytes, tuple[str, int]]]:
    """Every datagram waiting on a non-blocking socket, with its sender."""
    out: list[tuple[bytes, tuple[str, int]]] = []
    while True:
        try:
            data, address = sock.recvfrom(MAX_DATAGRAM)
        except BlockingIOError:
            return out
        except OSError as exc:  # an ICMP error from an earlier send: not data
            if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                continue
            raise
        out.append((data, address))
