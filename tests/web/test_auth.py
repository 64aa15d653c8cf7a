"""The page's account: no default password, first-boot setup, hashes, sessions, limits."""

from __future__ import annotations

import json
import logging
import stat
import time
from pathlib import Path

import pytest

from appliance.web.auth import SCRYPT_N, AuthStore, check_password, hash_password
from appliance.web.ratelimit import LoginLimiter
from tests.web.conftest import TEST_SCRYPT_N, Served, serve
from tests.web.helpers import PASSWORD, Client, form_token


def test_hashes_are_salted_slow_scrypt_and_never_the_password(tmp_path: Path) -> None:
    one, two = hash_password(PASSWORD), hash_password(PASSWORD, n=TEST_SCRYPT_N)
    assert one["scheme"] == "scrypt" and one["n"] == SCRYPT_N >= 2**15
    assert one["salt"] != two["salt"] and one["hash"] != two["hash"]
    assert check_password(PASSWORD, one) and check_password(PASSWORD, two)
    assert not check_password(PASSWORD + "x", one)
    store = AuthStore(tmp_path / "config.auth.json", scrypt_n=TEST_SCRYPT_N)
    store.set_password(PASSWORD)
    text = (tmp_path / "config.auth.json").read_text()
    assert PASSWORD not in text
    assert stat.S_IMODE((tmp_path / "config.auth.json").stat().st_mode) == 0o600
    again = AuthStore(tmp_path / "config.auth.json")
    assert again.provisioned and again.verify(PASSWORD) and not again.verify("wrong one!!")
    assert again.setup_code is None


def test_first_boot_logs_a_one_time_code_and_there_is_no_default_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="appliance.web.auth"):
        store = AuthStore(tmp_path / "c.auth.json", scrypt_n=TEST_SCRYPT_N)
    assert not store.provisioned and store.setup_code is not None
    assert store.setup_code in caplog.text  # on the console, for whoever has the device
    for guess in ("", "admin", "password", "appliance", store.setup_code):
        assert not store.verify(guess)
    assert store.check_setup_code(store.setup_code.lower().replace("-", " "))
    assert not store.check_setup_code(store.setup_code[:-1])
    with pytest.raises(ValueError, match="at least 10"):
        store.set_password("short")
    code = store.setup_code
    store.set_password(PASSWORD)
    assert not store.check_setup_code(code)  # used up


def test_an_unreadable_auth_file_refuses_logins_instead_of_reopening_setup(
    tmp_path: Path,
) -> None:
    (tmp_path / "c.auth.json").write_text("{garbage")
    store = AuthStore(tmp_path / "c.auth.json")
    assert store.provisioned and store.setup_code is None
    assert not store.verify(PASSWORD)


def test_setup_page_needs_the_code_and_a_good_password_then_logs_in(
    unprovisioned: Served, tmp_path: Path
) -> None:
    client = Client(unprovisioned.base)
    code, _, headers = client.raw("/")
    assert code == 302 and headers["Location"].endswith("/setup")
    assert client.raw("/login")[2]["Location"].endswith("/setup")
    code, body = client.send("/api/status", "GET", b"")
    assert code == 401 and "set the password first" in body["errors"][0]
    code, page, _ = client.raw("/setup")
    token = form_token(page)

    def post(**fields: str) -> tuple[int, str, dict[str, str]]:
        form = "&".join(f"{k}={v}" for k, v in {"csrf_token": token, **fields}.items())
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        code, body, got = client.raw("/setup", "POST", form.encode(), headers)
        return code, body.decode(), got

    setup_code = unprovisioned.auth.setup_code
    assert setup_code is not None
    assert post(code="AAAA-BBBB-CCCC", password="x" * 12, confirm="x" * 12)[0] == 401
    status, page_text, _ = post(code=setup_code, password="short", confirm="short")
    assert status == 400 and "at least 10 characters" in page_text
    assert post(code=setup_code, password="y" * 12, confirm="z" * 12)[0] == 400
    assert not unprovisioned.auth.provisioned and not (tmp_path / "config.auth.json").exists()

    status, _, headers = post(code=setup_code, password="a" * 12, confirm="a" * 12)
    assert status == 302 and headers["Location"] == "/"
    assert unprovisioned.auth.verify("a" * 12)
    assert json.loads((tmp_path / "config.auth.json").read_text())["password"]["hash"]
    assert client.get("/api/status")[0] == 200  # setting the password logged us in
    assert client.raw("/setup")[2]["Location"].endswith("/login")  # setup is closed now


def test_session_cookie_is_httponly_samesite_strict_and_secure_only_over_https(
    served: Served,
) -> None:
    client = Client(served.base)
    _, _, headers = client.raw("/api/session")
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on the LAN: a Secure cookie would never return
    from appliance.web import create_app

    https = create_app(served.app, auth=served.auth, https=True).test_client()
    cookie = https.get("/api/session").headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_login_gives_a_new_session_and_logout_ends_it(served: Served) -> None:
    client = Client(served.base)
    assert client.log_in("wrong password") == 401
    before = {c.name: c.value for c in client.jar}
    assert client.log_in() == 200
    after = {c.name: c.value for c in client.jar}
    assert after["appliance_sid"] != before["appliance_sid"]  # no session fixation
    assert client.get("/api/status")[0] == 200
    stolen = after["appliance_sid"]
    code, body = client.send("/api/session", "DELETE", b"")
    assert code == 200 and body == {"logged_in": False}
    replay = Client(served.base)
    code, _, _ = replay.raw("/api/status", headers={"Cookie": f"appliance_sid={stolen}"})
    assert code == 401  # the old cookie is worthless once logged out


def test_password_guessing_is_slowed_down_exponentially(tmp_path: Path, still: Path) -> None:
    limiter = LoginLimiter(free=2, base_s=0.4, max_s=10.0)
    _, server, served = serve({"source": {"uri": f"file://{still}", "fallback": []}}, None, limiter)
    served.auth.set_password(PASSWORD)
    server.start()
    try:
        client = Client(served.base)
        assert client.log_in("guess one!!") == 401
        assert client.log_in("guess two!!") == 401
        # Locked out now: even the right password is not even checked.
        assert client.log_in() == 429
        code, body = client.send("/api/session", "POST", {"password": PASSWORD})
        assert code == 429 and "try again in" in body["errors"][0]
        time.sleep(0.45)
        assert client.log_in("guess three") == 401  # the third failure doubles the wait
        time.sleep(0.45)
        assert client.log_in() == 429
        time.sleep(0.4)
        assert client.log_in() == 200
        assert limiter.wait_s("127.0.0.1") == 0  # success clears the record
    finally:
        assert server.stop(1.0)


def test_the_login_form_is_rate_limited_too(tmp_path: Path, still: Path) -> None:
    limiter = LoginLimiter(free=1, base_s=30.0)
    _, server, served = serve({"source": {"uri": f"file://{still}", "fallback": []}}, None, limiter)
    served.auth.set_password(PASSWORD)
    client = served.flask.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = form_token(page)
    form = {"csrf_token": token, "password": "nope nope nope"}
    assert client.post("/login", data=form).status_code == 401
    response = client.post("/login", data={**form, "password": PASSWORD})
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 29
    assert "too many failed attempts" in response.get_data(as_text=True)
    assert server.stop(1.0)


def test_changing_the_password_needs_the_current_one_and_logs_out_everyone_else(
    served: Served,
) -> None:
    from urllib.parse import urlencode

    me, other = served.client(), served.client()

    def change(**fields: str) -> tuple[int, str]:
        data = urlencode({"csrf_token": me.csrf, **fields}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        code, body, _ = me.raw("/password", "POST", data, headers)
        return code, body.decode()

    new = "another long passphrase"
    assert change(current="wrong guess!", password=new, confirm=new)[0] == 401
    code, page = change(current=PASSWORD, password="short", confirm="short")
    assert code == 400 and "at least 10 characters" in page
    assert served.auth.verify(PASSWORD)
    code, page = change(current=PASSWORD, password=new, confirm=new)
    assert code == 200 and "Password changed" in page
    assert served.auth.verify(new) and not served.auth.verify(PASSWORD)
    assert me.get("/api/status")[0] == 200  # this browser goes on
    assert other.get("/api/status")[0] == 401  # the others are out
