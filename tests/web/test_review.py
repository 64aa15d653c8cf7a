"""Findings of the security review, each kept fixed: parallel guesses cannot pass the
limiter, nobody can lock the owner out, no open redirect, a flood of page loads cannot
break the owner's login form, unknown Host names are refused on a LAN bind, viewers
are capped and idle connections cannot crowd the page out."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from appliance.web import WebServer, create_app
from appliance.web import server as web_server
from appliance.web.ratelimit import LoginLimiter
from appliance.web.security import safe_next
from tests.web.conftest import Served
from tests.web.helpers import PASSWORD


def _client(served: Served, limiter: LoginLimiter | None = None, **app: Any) -> Any:
    flask = create_app(served.app, auth=served.auth, limiter=limiter or LoginLimiter(), **app)
    return flask, flask.test_client()


def _token(client: Any, **kw: Any) -> str:
    return str(client.get("/api/session", **kw).get_json()["csrf"])


def _log_in(client: Any, password: str, token: str, **kw: Any) -> int:
    response = client.post(
        "/api/session", json={"password": password}, headers={"X-CSRF-Token": token}, **kw
    )
    return int(response.status_code)


def test_parallel_guesses_from_one_client_get_no_more_than_the_free_tries(served: Served) -> None:
    flask, _ = _client(served, LoginLimiter(free=3, base_s=60.0))
    codes: list[int] = []
    start = threading.Barrier(24)

    def guess() -> None:
        client = flask.test_client()
        token = _token(client)
        start.wait()
        codes.append(_log_in(client, "not the password", token))

    threads = [threading.Thread(target=guess) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(codes) == 24
    assert codes.count(401) <= 3  # hashed and refused: the free tries only
    assert codes.count(429) >= 21  # the rest: too soon, or the camera busy hashing


def test_failures_from_many_addresses_do_not_lock_the_owner_out(served: Served) -> None:
    flask, client = _client(served, LoginLimiter(free=3, base_s=60.0))
    owner = {"environ_base": {"REMOTE_ADDR": "192.168.1.50"}}
    assert _log_in(client, PASSWORD, _token(client, **owner), **owner) == 200  # known now
    client.delete("/api/session", headers={"X-CSRF-Token": _token(client, **owner)}, **owner)
    for i in range(40):  # strangers: one budget between them all, never the owner's
        where = {"environ_base": {"REMOTE_ADDR": f"10.0.0.{i + 1}"}}
        stranger = flask.test_client()  # a cookie jar of its own
        assert _log_in(stranger, "guess", _token(stranger, **where), **where) in (401, 429)
    assert _log_in(client, PASSWORD, _token(client, **owner), **owner) == 200


@pytest.mark.parametrize(
    "target",
    ["/\t/evil.example", "/\n/evil.example", "//evil.example", "https://evil.example",
     "/\\evil.example", "evil.example", "", None, "/\x7f/x"],
)  # fmt: skip
def test_next_never_leaves_the_site(target: str | None) -> None:
    assert safe_next(target) == "/"


def test_next_keeps_paths_on_the_site() -> None:
    assert safe_next("/settings?tab=web") == "/settings?tab=web"


def test_a_flood_of_page_loads_does_not_break_the_owners_login_form(served: Served) -> None:
    flask, owner = _client(served)
    token = _token(owner)  # the owner opened the login page
    for _ in range(300):  # another page makes the browser load it over and over
        flask.test_client().get("/login")
    assert _log_in(owner, PASSWORD, token) == 200


def test_on_a_lan_bind_only_the_cameras_addresses_and_names_are_served(served: Served) -> None:
    _, client = _client(served, loopback_only=False)
    assert client.get("/login", headers={"Host": "attacker.example"}).status_code == 403
    assert client.get("/login", headers={"Host": "attacker.example:8080"}).status_code == 403
    for host in ("192.168.1.20:8080", "[fe80::1]:8080", f"{socket.gethostname()}:8080",
                 f"{socket.gethostname().split('.')[0]}.local"):  # fmt: skip
        assert client.get("/login", headers={"Host": host}).status_code == 200, host


def test_a_viewer_is_counted_when_the_stream_is_opened(served: Served) -> None:
    client = served.flask.test_client()
    assert _log_in(client, PASSWORD, _token(client)) == 200
    streams = [client.get("/stream.mjpg", buffered=False) for _ in range(8)]
    assert served.app.hub.clients == 8  # none of them has sent a byte yet
    assert client.get("/stream.mjpg", buffered=False).status_code == 503
    for response in streams:
        response.close()
    assert served.app.hub.clients == 0


def test_connections_past_the_cap_are_closed_least_active_first(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_server, "MAX_CONNECTIONS", 4)
    monkeypatch.setattr(web_server, "NEWCOMER_S", 0.0)
    server = WebServer(served.flask, "127.0.0.1", 0)
    server.start()
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
    try:
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as extra:
            extra.sendall(b"GET /login HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            assert extra.recv(100).startswith(b"HTTP/1.")  # the newcomer is served
        idle[0].settimeout(5)
        assert idle[0].recv(100) == b""  # the least active one was closed for it
    finally:
        for sock in idle:
            sock.close()
        assert server.stop(1.0)
