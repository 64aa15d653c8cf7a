"""The login wall covers every route, state changes need the CSRF token, and the
headers keep the page from being framed or fed foreign scripts."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from appliance.web.security import PUBLIC
from tests.web.conftest import Served
from tests.web.helpers import PASSWORD


def _requests(flask: Any) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every route and method the app answers."""
    out = []
    for rule in flask.url_map.iter_rules():
        url = re.sub(r"<[^>]+>", "x", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((rule.endpoint, method, url))
    return out


def test_every_route_but_login_setup_and_static_refuses_anonymous_requests(
    served: Served, tmp_path: Any
) -> None:
    client = served.flask.test_client()
    requests = _requests(served.flask)
    guarded = [r for r in requests if r[0] not in PUBLIC]
    assert len(guarded) >= 15  # the walk really covers the app (pages, API, actions, stream)
    assert {e for e, _, _ in requests} >= {
        "dashboard.index",
        "settings.settings",
        "models.upload",
        "logs.lines",
        "actions.run",
        "preview.stream",
        "api.change_config",
    }
    before = served.app.config.config
    for endpoint, method, url in guarded:
        response = client.open(url, method=method, data=b"{}", content_type="application/json")
        where = f"{method} {url} ({endpoint})"
        if url.startswith("/api/"):
            assert response.status_code == 401, where
            assert response.get_json()["errors"] == ["log in first"], where
        else:
            assert response.status_code == 302, where
            assert response.headers["Location"].startswith("/login"), where
    # Nothing the anonymous requests asked for happened.
    assert served.app.config.config == before and served.app.restart_reason is None
    assert served.auth.provisioned and not (tmp_path / "config.yaml").exists()


def test_public_routes_are_only_login_setup_and_static(served: Served) -> None:
    assert {"auth.login", "auth.setup", "auth.api_session", "static"} == PUBLIC
    client = served.flask.test_client()
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/login").status_code == 200
    # Where a page wanted to go survives the login, but only as a path on this site.
    assert client.get("/settings").headers["Location"] == "/login?next=/settings"
    page = client.get("/login?next=//evil.example/x").get_data(as_text=True)
    assert 'name="next" value="/"' in page


def _logged_in(served: Served) -> tuple[Any, str]:
    client = served.flask.test_client()
    token = client.get("/api/session").get_json()["csrf"]
    response = client.post(
        "/api/session", json={"password": PASSWORD}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 200
    return client, response.get_json()["csrf"]


def test_state_changes_without_the_csrf_token_are_refused(served: Served) -> None:
    client, token = _logged_in(served)
    before = served.app.config.config
    patch = {"web": {"jpeg_quality": 33}}
    for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": ""}):
        response = client.patch("/api/config", json=patch, headers=headers)
        assert response.status_code == 403, headers
        assert "CSRF" in response.get_json()["errors"][0]
    form = {"web.jpeg_quality": "33"}
    assert client.post("/settings", data=form).status_code == 403
    assert client.post("/settings", data={**form, "csrf_token": "x"}).status_code == 403
    assert client.post("/actions/restart", data={"confirm": "yes"}).status_code == 403
    assert client.post("/logout").status_code == 403  # logging someone out is a change too
    # The right token but another site's Origin: refused as well.
    evil = {"X-CSRF-Token": token, "Origin": "http://evil.example"}
    assert client.patch("/api/config", json=patch, headers=evil).status_code == 403
    assert served.app.config.config == before and served.app.restart_reason is None
    ok = client.patch("/api/config", json=patch, headers={"X-CSRF-Token": token})
    assert ok.status_code == 200 and served.app.config.config.web.jpeg_quality == 33


def test_login_itself_needs_the_form_token(served: Served) -> None:
    client = served.flask.test_client()
    client.get("/login")
    assert client.post("/login", data={"password": PASSWORD}).status_code == 403
    response = client.post("/api/session", json={"password": PASSWORD})
    assert response.status_code == 403


def test_pages_forbid_framing_inline_scripts_and_caching(served: Served) -> None:
    client, _ = _logged_in(served)
    for url in ("/", "/settings", "/models", "/logs", "/actions", "/api/status"):
        headers = client.get(url).headers
        csp = headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, url
        assert "unsafe-inline" not in csp
        assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"
        assert headers["X-Content-Type-Options"] == "nosniff"
    html = client.get("/").get_data(as_text=True)
    assert "<script>" not in html and "http://" not in html and "https://" not in html  # no CDN


def test_a_cross_site_form_in_a_real_browser_changes_nothing(served: Served, page: Any) -> None:
    """Another page on the same machine (same site, another port: SameSite lets the
    cookie through) posts the settings form: the missing token and its Origin stop it."""
    page.goto(served.base + "/login")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(served.base + "/")
    target = served.base + "/settings"
    evil_page = (
        f'<form id="f" method="post" action="{target}">'
        '<input name="web.jpeg_quality" value="11"></form>'
        "<script>document.getElementById('f').submit()</script>"
    ).encode()

    class Evil(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(evil_page)

        def log_message(self, *args: Any) -> None:
            pass

    evil = ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        with page.expect_response(target) as answer:
            page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
        assert answer.value.status == 403
    finally:
        evil.shutdown()
        evil.server_close()
    assert served.app.config.config.web.jpeg_quality == 80
