"""Attacks the daemon's web page on loopback and prints one line per attack.

    .venv/bin/python -m tools.hostile.web            # starts a daemon, runs all three
    .venv/bin/python -m tools.hostile.web flood URL  # only the guessing flood, on URL

The daemon is the real one (``python -m appliance run`` on a still picture, with a
password set in its auth file at the production scrypt cost). The attacks:

1. a login-guessing flood from 200 loopback addresses (Linux routes all of 127/8 to
   lo, so a client can bind 127.1.x.y), while the owner's browser, which logged in
   before, logs in again: its time to log in;
2. 40 idle connections (and then 4× the server's connection cap), then a page load;
3. the MJPEG stream opened and dropped 8 times, then the time until a new viewer is in.

After each, the daemon's peak RSS over its idle RSS (VmHWM after resetting it with
``echo 5 > /proc/PID/clear_refs``).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PASSWORD = "the owner's long passphrase"
ADDRESSES = 200
FLOOD_S = 10.0


# -- a tiny HTTP/1.1 client on asyncio, for the flood ------------------------------------


@dataclass
class Tally:
    codes: dict[int, int] = field(default_factory=dict)
    errors: int = 0

    def add(self, code: int) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1

    def __str__(self) -> str:
        shown = ", ".join(f"{code}: {n}" for code, n in sorted(self.codes.items()))
        return f"{shown}; connection errors: {self.errors}"


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, dict[str, str], bytes]:
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    code = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers.setdefault(name.strip().lower(), value.strip())
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    if headers.get("connection", "").lower() == "close":
        raise ConnectionResetError("server closed")
    return code, headers, body


def _request(method: str, path: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _guesser(host: str, port: int, source: str, until: float, tally: Tally) -> None:
    """One stranger: a session from its own address, then wrong passwords, keep-alive."""
    hostport = f"{host}:{port}"
    while time.monotonic() < until:
        writer = None
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
            code, headers, body = await _exchange(
                reader, writer, _request("GET", "/api/session", hostport, {}, b"")
            )
            cookie = headers.get("set-cookie", "").split(";", 1)[0]
            token = json.loads(body)["csrf"]
            guess = json.dumps({"password": f"guess from {source}"}).encode()
            send = {"Content-Type": "application/json", "X-CSRF-Token": token, "Cookie": cookie}
            while time.monotonic() < until:
                code, _, _ = await _exchange(
                    reader, writer, _request("POST", "/api/session", hostport, send, guess)
                )
                tally.add(code)
        except (OSError, asyncio.IncompleteReadError, ValueError, KeyError, IndexError):
            tally.errors += 1
            await asyncio.sleep(0.05)
        finally:
            if writer is not None:
                writer.close()


def source_addresses(count: int) -> list[str]:
    """``count`` distinct loopback addresses, none of them 127.0.0.1 (the owner's)."""
    return [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(count)]


async def _flood(url: str, addresses: int, seconds: float) -> Tally:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tally = Tally()
    until = time.monotonic() + seconds
    await asyncio.gather(
        *(_guesser(host, port, source, until, tally) for source in source_addresses(addresses))
    )
    return tally


def flood(url: str, addresses: int = ADDRESSES, seconds: float = FLOOD_S) -> Tally:
    return asyncio.run(_flood(url, addresses, seconds))


def start_flood(url: str, addresses: int = ADDRESSES, seconds: float = FLOOD_S) -> Any:
    """The flood in a process of its own (its own GIL: the daemon is what we measure)."""
    command = [sys.executable, "-m", "tools.hostile.web", "flood", url]
    command += ["--addresses", str(addresses), "--seconds", str(seconds)]
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)


# -- the owner: a browser with a cookie jar ------------------------------------------------


class Browser:
    """Cookies and the CSRF token, over http.client (one connection per request, as a
    browser's first request after a while would be)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def request(
        self, method: str, path: str, body: Any = None, timeout: float = 10.0
    ) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        headers = {"X-CSRF-Token": self.csrf}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path, data, headers)
            response = connection.getresponse()
            for header in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = header.partition("=")
                value = rest.split(";", 1)[0]
                if "Max-Age=0" in header or "expires=Thu, 01 Jan 1970" in header:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
            return response.status, response.read()
        finally:
            connection.close()

    def log_in(self, password: str = PASSWORD) -> int:
        code, body = self.request("GET", "/api/session")
        if code != 200:
            return code
        self.csrf = json.loads(body)["csrf"]
        code, body = self.request("POST", "/api/session", {"password": password})
        if code == 200:
            self.csrf = json.loads(body)["csrf"]
        return code

    def log_out(self) -> int:
        return self.request("DELETE", "/api/session")[0]


def owner_login_s(url: str, owner: Browser, deadline_s: float = 30.0) -> tuple[float, int]:
    """Seconds until the owner is logged in (retrying as a person would), and tries."""
    start = time.monotonic()
    tries = 0
    while time.monotonic() - start < deadline_s:
        tries += 1
        with suppress(OSError, http.client.HTTPException):  # refused or dropped: again
            if owner.log_in() == 200:
                return time.monotonic() - start, tries
        time.sleep(0.2)
    return float("inf"), tries


# -- idle connections and the stream -------------------------------------------------------


def idle_connections(url: str, count: int) -> list[socket.socket]:
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    opened = []
    for source in source_addresses(count):
        with suppress(OSError):
            opened.append(socket.create_connection(address, timeout=5, source_address=(source, 0)))
    return opened


def page_load_s(url: str, timeout: float = 30.0) -> float:
    start = time.monotonic()
    try:
        code, _ = Browser(url).request("GET", "/login", timeout=timeout)
    except (OSError, http.client.HTTPException):  # refused, dropped or timed out
        return float("inf")
    took = time.monotonic() - start
    return took if code == 200 else float("inf")


def open_stream(url: str, owner: Browser, timeout: float = 5.0) -> tuple[int, socket.socket]:
    """GET /stream.mjpg as the owner; the status and the socket, left open."""
    sock = socket.create_connection((owner.host, owner.port), timeout=timeout)
    cookie = "; ".join(f"{k}={v}" for k, v in owner.cookies.items())
    host = f"{owner.host}:{owner.port}"
    sock.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return (int(match.group(1)) if match else 0), sock


def reloads_then_admitted_s(url: str, owner: Browser, reloads: int = 8) -> float:
    """Open and drop the stream ``reloads`` times at once, then the seconds until a new
    viewer is let in."""
    streams = [open_stream(url, owner)[1] for _ in range(reloads)]
    for sock in streams:
        sock.close()
    start = time.monotonic()
    while time.monotonic() - start < 60:
        with suppress(OSError):
            code, sock = open_stream(url, owner)
            sock.close()
            if code == 200:
                return time.monotonic() - start
        time.sleep(0.05)
    return float("inf")


# -- the daemon ----------------------------------------------------------------------------


class Daemon:
    """``python -m appliance run`` on a still picture, its password already set."""

    def __init__(self, work: Path) -> None:
        import cv2
        import numpy as np

        from appliance.web.auth import hash_password

        still = work / "still.png"
        cv2.imwrite(str(still), np.full((360, 640, 3), 120, np.uint8))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = work / "config.yaml"
        config.write_text(
            f"source:\n  uri: file://{still}\n  fallback: []\n"
            f"web:\n  bind: 127.0.0.1\n  port: {self.port}\n"
        )
        record = {"version": 1, "password": hash_password(PASSWORD)}  # production cost
        (work / "config.auth.json").write_text(json.dumps(record))
        root = Path(__file__).resolve().parents[2]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance", "run", "--config", str(config)],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_up()

    def _wait_up(self) -> None:
        for _ in range(600):
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited with {self.process.returncode}")
            with suppress(OSError):
                if Browser(self.url).request("GET", "/login", timeout=1)[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("the daemon's page did not come up in 60 s")

    def _status(self, field: str) -> int:
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
        return int(match.group(1)) * 1024 if match else 0

    def reset_peak(self) -> int:
        """Reset the peak RSS to the current one; the idle RSS, in bytes."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")
        return self._status("VmRSS")

    def peak_over(self, idle: int) -> str:
        return f"peak RSS {(self._status('VmHWM') - idle) / 2**20:+.1f} MiB over idle"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run_all() -> int:
    with tempfile.TemporaryDirectory(prefix="hostile-web-") as work:
        daemon = Daemon(Path(work))
        try:
            _attacks(daemon)
        finally:
            daemon.stop()
    return 0


def _attacks(daemon: Daemon) -> None:
    url = daemon.url
    owner = Browser(url)
    assert owner.log_in() == 200, "the owner cannot log in at all"
    owner.log_out()  # a known device now, logged out

    idle = daemon.reset_peak()
    flooder = start_flood(url, ADDRESSES, FLOOD_S)
    time.sleep(2.0)  # the flood well under way
    took, tries = owner_login_s(url, owner)
    out, _ = flooder.communicate(FLOOD_S + 30)
    print(
        f"login flood from {ADDRESSES} addresses: owner logged in after {took:.2f} s "
        f"({tries} tries); strangers' answers {out.strip()}; {daemon.peak_over(idle)}",
        flush=True,
    )

    from appliance.web.server import MAX_CONNECTIONS

    for count in (40, 4 * MAX_CONNECTIONS):
        idle = daemon.reset_peak()
        sockets = idle_connections(url, count)
        time.sleep(0.5)
        took = page_load_s(url)
        print(
            f"{len(sockets)} idle connections: page loaded in {took:.3f} s; "
            f"{daemon.peak_over(idle)}",
            flush=True,
        )
        for sock in sockets:
            sock.close()

    idle = daemon.reset_peak()
    took = reloads_then_admitted_s(url, owner)
    print(
        f"8 MJPEG reloads: a new viewer admitted after {took:.2f} s; {daemon.peak_over(idle)}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.hostile.web", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("flood", help="only the login-guessing flood, against URL")
    one.add_argument("url")
    one.add_argument("--addresses", type=int, default=ADDRESSES)
    one.add_argument("--seconds", type=float, default=FLOOD_S)
    args = parser.parse_args(argv)
    if args.command == "flood":
        print(flood(args.url, args.addresses, args.seconds), flush=True)
        return 0
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return run_all()


if __name__ == "__main__":
    sys.exit(main())
