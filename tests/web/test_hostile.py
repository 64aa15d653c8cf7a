"""Issue 19 on the web page: hostile input on loopback never takes the page down, and
never locks the owner out. Real waitress on a loopback port, real sockets; the login
flood runs in a process of its own (tools/hostile/web.py) from 200 addresses."""

from __future__ import annotations

import errno
import http.client
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.web import WebServer, auth, create_app
from appliance.web.auth import SCRYPT_N, AuthStore, checked_record, hash_password
from appliance.web.ratelimit import LoginLimiter
from appliance.web.server import MAX_CONNECTIONS
from tests.conftest import scaled
from tests.web.conftest import Served
from tests.web.helpers import PASSWORD, Client
from tools.hostile import web as hostile


@pytest.fixture
def production(served: Served, tmp_path: Path) -> Iterator[tuple[Served, WebServer]]:
    """The served daemon's page again, with the production scrypt cost (a guess takes
    ~0.1 s and 32 MiB, so a flood really fills the hashing slots) and the default
    limiter, on a server of its own."""
    store = AuthStore(tmp_path / "production.auth.json", scrypt_n=SCRYPT_N)
    store.set_password(PASSWORD)
    flask = create_app(served.app, auth=store, limiter=LoginLimiter())
    server = WebServer(flask, "127.0.0.1", 0)
    server.start()
    yield Served(served.app, f"http://127.0.0.1:{server.port}", store, flask), server
    assert server.stop(2.0)


@pytest.mark.slow
def test_the_owner_logs_in_within_2_s_during_a_200_address_guessing_flood(
    production: tuple[Served, WebServer],
) -> None:
    page, _ = production
    owner = Client(page.base)
    assert owner.log_in() == 200  # this browser is known from now on
    assert owner.send("/api/session", "DELETE", b"")[0] == 200
    flooder = hostile.start_flood(page.base, addresses=200, seconds=8.0)
    try:
        time.sleep(2.0)  # the flood under way
        start = time.monotonic()
        code = owner.log_in()
        took = time.monotonic() - start
    finally:
        out, _ = flooder.communicate(timeout=60)
    assert "401" in out or "429" in out, out  # the strangers were heard, and refused
    assert code == 200 and took < scaled(2.0), (code, took, out)  # 2 s: the figure


def test_strangers_share_one_guessing_budget_and_never_spend_a_known_devices() -> None:
    limiter = LoginLimiter(free=3, stranger_rate=0.01, stranger_burst=5)
    wrong = 0
    for i in range(40):  # an address sweep: each address has free tries, all share one bucket
        try:
            limiter.check(f"127.1.0.{i + 1}", lambda: False)
            wrong += 1
        except Exception as refused:
            assert "busy" in str(refused)
    assert wrong == 5
    assert limiter.check("127.0.0.1", lambda: True, known="device-1")  # the owner's path
    # IPv6: a host picks any address in its /64; the /64 is one source.
    sweep = LoginLimiter(free=2, base_s=60.0)
    for i in range(2):
        sweep.check(f"2001:db8::{i + 1}", lambda: False)
    assert sweep.wait_s("2001:db8::99") > 0


def test_a_right_password_gives_its_guessing_token_back() -> None:
    limiter = LoginLimiter(stranger_rate=0.01, stranger_burst=2)
    for _ in range(20):  # a script logging in over and over is not a guesser
        assert limiter.check("127.0.0.1", lambda: True)


def test_a_known_device_cookie_is_signed_and_dies_with_the_password(served: Served) -> None:
    client = served.client()
    device = str({c.name: c.value for c in client.jar}["appliance_device"])
    devices = served.flask.config["DEVICES"]
    assert devices.recognise(device) is not None
    assert devices.recognise(device[:-2] + "xx") is None  # forged
    served.auth.set_password("a brand new passphrase")
    assert devices.recognise(device) is None


def test_forty_idle_connections_leave_the_page_reachable(served: Served) -> None:
    sockets = hostile.idle_connections(served.base, 40)
    try:
        assert len(sockets) == 40
        time.sleep(0.3)
        assert hostile.page_load_s(served.base, timeout=5.0) < 1.0
    finally:
        for sock in sockets:
            sock.close()


def test_past_the_connection_cap_the_idlest_are_closed_to_make_room(served: Served) -> None:
    sockets = hostile.idle_connections(served.base, MAX_CONNECTIONS + 40)
    try:
        time.sleep(0.3)
        assert hostile.page_load_s(served.base, timeout=5.0) < 1.0
        closed = 0
        for sock in sockets[:40]:  # the oldest: closed without an answer
            sock.settimeout(2.0)
            try:
                closed += sock.recv(1) == b""
            except OSError:
                closed += 1
        assert closed >= 20
    finally:
        for sock in sockets:
            sock.close()


def test_a_trickling_client_does_not_hold_a_thread(served: Served) -> None:
    """Slow loris: many half-sent requests; the page still answers at once."""
    sockets = hostile.idle_connections(served.base, 60)
    try:
        for sock in sockets:
            sock.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        time.sleep(0.3)
        assert hostile.page_load_s(served.base, timeout=5.0) < 1.0
    finally:
        for sock in sockets:
            sock.close()


def _browser(served: Served) -> hostile.Browser:
    owner = hostile.Browser(served.base)
    assert owner.log_in(PASSWORD) == 200
    return owner


def test_eight_stream_reloads_then_a_new_viewer_gets_in_within_2_s(served: Served) -> None:
    owner = _browser(served)
    took = hostile.reloads_then_admitted_s(served.base, owner, reloads=8)
    assert took < scaled(2.0)
    assert served.app.hub.clients <= 1


def test_a_viewer_that_hangs_up_is_let_go_even_without_new_frames(served: Served) -> None:
    """The camera stalled (no frame comes): the closed socket is still noticed."""
    hub = served.app.hub
    hub.publish(b"\xff\xd8a last picture\xff\xd9")
    hub.publish = lambda jpeg: None  # type: ignore[method-assign]
    owner = _browser(served)
    code, sock = hostile.open_stream(served.base, owner)
    assert code == 200 and hub.clients == 1
    sock.close()
    assert _wait(lambda: hub.clients == 0, 2.0)


def test_a_slow_reader_is_buffered_a_few_frames_not_without_bound(served: Served) -> None:
    from appliance.web.server import OUTBUF_HIGH_WATERMARK

    owner = _browser(served)
    code, sock = hostile.open_stream(served.base, owner)
    assert code == 200
    try:
        frame = bytes(200_000)  # big frames, as fast as they come
        for _ in range(100):
            served.app.hub.publish(frame)
            time.sleep(0.01)
        server = _server_of(served)
        pending = [c.total_outbufs_len for c in server._server.active_channels.values()]
        assert max(pending) <= OUTBUF_HIGH_WATERMARK + 2 * len(frame)
    finally:
        sock.close()


def _server_of(served: Served) -> Any:
    import gc

    servers = [o for o in gc.get_objects() if isinstance(o, WebServer)]
    return next(s for s in servers if s.port == int(served.base.rsplit(":", 1)[1]))


def _wait(condition: Any, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


@pytest.mark.parametrize(("n", "r", "p"), [(2**20, 8, 1), (2**20, 7, 1), (2**17, 8, 1),
                                           (2**15, 8, 16), (2**15, 16, 4)])  # fmt: skip
def test_scrypt_records_the_camera_cannot_afford_are_refused(n: int, r: int, p: int) -> None:
    record = {**hash_password(PASSWORD, n=2**10), "n": n, "r": r, "p": p}
    with pytest.raises(ValueError, match="scrypt record"):
        checked_record(record)


def test_a_refused_record_keeps_the_old_password(tmp_path: Path) -> None:
    store = AuthStore(tmp_path / "c.auth.json", scrypt_n=2**10)
    store.set_password(PASSWORD)
    costly = {**hash_password("another password", n=2**10), "n": 2**20, "r": 8}
    with pytest.raises(ValueError, match="MiB"):
        store.set_record(costly)
    assert store.verify(PASSWORD)
    assert checked_record(hash_password(PASSWORD))["n"] == SCRYPT_N  # the default passes


def test_a_costly_record_in_the_file_refuses_logins_without_spending_a_gigabyte(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.auth.json"
    record = {**hash_password(PASSWORD, n=2**10), "n": 2**20, "r": 7}  # ~1 GB, 4 s a try
    path.write_text(json.dumps({"version": 1, "password": record}))
    store = AuthStore(path)
    start = time.monotonic()
    assert store.provisioned and not store.verify(PASSWORD)
    assert time.monotonic() - start < scaled(0.5)  # a scrypt of 1 GB takes seconds


def _disk_full(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_a_password_change_is_a_clear_error(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.parse import urlencode

    me, other = served.client(), served.client()
    monkeypatch.setattr(auth, "write_atomic", _disk_full)
    new = "another long passphrase"
    data = urlencode({"csrf_token": me.csrf, "current": PASSWORD, "password": new, "confirm": new})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    code, body, _ = me.raw("/password", "POST", data.encode(), headers)
    page = body.decode()
    assert code == 500 and "disk is full" in page and "old one still works" in page
    assert "Traceback" not in page
    assert served.auth.verify(PASSWORD) and not served.auth.verify(new)
    assert other.get("/api/status")[0] == 200  # nobody was logged out either


def test_a_full_disk_at_first_boot_setup_is_a_clear_error(
    unprovisioned: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.web.helpers import form_token

    client = Client(unprovisioned.base)
    token = form_token(client.get("/setup")[1])
    monkeypatch.setattr(auth, "write_atomic", _disk_full)
    code = unprovisioned.auth.setup_code or ""
    data = {"csrf_token": token, "code": code, "password": PASSWORD, "confirm": PASSWORD}
    from urllib.parse import urlencode

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body, _ = client.raw("/setup", "POST", urlencode(data).encode(), headers)
    assert status == 500 and "disk is full" in body.decode()
    assert not unprovisioned.auth.provisioned  # setup stays open, with the same code
    assert unprovisioned.auth.setup_code == code


def test_config_errors_show_a_short_preview_of_a_huge_value(served: Served) -> None:
    client = served.client()
    code, body = client.send("/api/config", "PATCH", {"device": {"name": "x" * 60_000}})
    assert code == 400
    assert all(len(error) <= 300 for error in body["errors"]), body
    code, body = client.send("/api/config", "PATCH", {"web": {"k" * 60_000: 1}})
    assert code == 400 and all(len(error) <= 300 for error in body["errors"])


def test_config_errors_on_the_settings_page_are_short_too(served: Served) -> None:
    from urllib.parse import urlencode

    from tests.web.helpers import form_token

    client = served.client()
    token = form_token(client.get("/settings")[1])
    form = {"csrf_token": token, "device.name": "y" * 60_000}
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    code, body, _ = client.raw("/settings", "POST", urlencode(form).encode(), headers)
    assert code == 400
    errors = re.findall(r'<p class="error[^>]*>(.*?)</p>', body.decode(), re.DOTALL)
    assert errors and all(len(error) < 300 for error in errors), errors


def test_behind_the_tls_proxy_the_cookies_are_secure(served: Served) -> None:
    # The proxy in front speaks TLS to the browser and tells us so; the browser sends
    # its https origin. (urllib keeps Secure cookies to itself over http: by hand.)
    host = served.base.removeprefix("http://")
    proxied = {"X-Forwarded-Proto": "https", "Origin": f"https://{host}"}
    client = Client(served.base)
    _, body, headers = client.raw("/api/session", headers=proxied)
    cookie = headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    send = {**proxied, "Cookie": cookie.split(";", 1)[0], "Content-Type": "application/json",
            "X-CSRF-Token": json.loads(body)["csrf"]}  # fmt: skip
    password = json.dumps({"password": PASSWORD}).encode()
    code, _, _ = client.raw("/api/session", "POST", password, send)
    assert code == 200  # the Origin check knows the scheme is https
    connection = http.client.HTTPConnection("127.0.0.1", int(host.rsplit(":", 1)[1]))
    connection.request("POST", "/api/session", password, send)
    cookies = connection.getresponse().headers.get_all("Set-Cookie") or []
    connection.close()
    assert len(cookies) == 2 and all("Secure" in c and "HttpOnly" in c for c in cookies)
    # Plain HTTP (no proxy): no Secure flag, or the cookie would never come back.
    assert "Secure" not in Client(served.base).raw("/api/session")[2]["Set-Cookie"]


def _post_headers_only(base: str, path: str, length: int, cookie: str = "") -> bytes:
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
        if cookie:
            head += f"Cookie: {cookie}\r\n"
        sock.sendall((head + "\r\n").encode())
        return sock.recv(200)  # answered before a byte of the body was sent


def test_a_stranger_cannot_start_a_big_upload(served: Served) -> None:
    answer = _post_headers_only(served.base, "/api/models", 512 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 413")
    answer = _post_headers_only(served.base, "/login", 10 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 413")


def test_only_a_logged_in_upload_may_be_big(served: Served) -> None:
    client = served.client()
    cookie = "; ".join(f"{c.name}={c.value}" for c in client.jar)
    # Logged in, the server takes the body (it waits for it instead of refusing).
    port = int(served.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        head = (f"POST /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
                f"Content-Length: {512 * 1024 * 1024}\r\n\r\n")  # fmt: skip
        sock.sendall(head.encode())
        with pytest.raises(TimeoutError):
            sock.recv(100)
    answer = _post_headers_only(served.base, "/api/config", 10 * 1024 * 1024, cookie)
    assert answer.startswith(b"HTTP/1.1 413")  # the API's bodies stay small


def test_api_bodies_go_through_the_bounded_parser(served: Served) -> None:
    client = served.client()
    code, body = client.send("/api/config", "PATCH", b"[" * 20 + b"]" * 20)
    assert code == 400 and "deep" in body["errors"][0]


def test_known_device_cookies_are_signed_with_a_random_key_replaced_with_the_password(
    tmp_path: Path,
) -> None:
    record = hash_password(PASSWORD, n=2**10)
    first, second = AuthStore(tmp_path / "a.auth.json"), AuthStore(tmp_path / "b.auth.json")
    first.set_record(record)
    second.set_record(record)  # the same hash (it crosses the broker): not the same key
    key = first.device_key()
    assert key is not None and len(key) == 32 and key != second.device_key()
    assert AuthStore(tmp_path / "a.auth.json").device_key() == key  # kept across restarts
    first.set_record(hash_password(PASSWORD + "2", n=2**10))
    assert first.device_key() != key  # a new password voids every earlier cookie
