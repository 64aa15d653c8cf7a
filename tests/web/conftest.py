"""Fixtures for the web tests: a daemon serving the page on loopback, and Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from appliance.app import Appliance
from appliance.config import ConfigManager, parse_config
from appliance.web import WebServer, create_app
from appliance.web.auth import AuthStore, auth_path
from appliance.web.ratelimit import LoginLimiter
from tests.web.helpers import PASSWORD, Client

# Fast hashes in tests (a login costs ~1 ms instead of ~0.1 s); the format is the same.
TEST_SCRYPT_N = 2**10
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def still(tmp_path: Path) -> Path:
    path = tmp_path / "still.png"
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, 80:] = (0, 0, 255)
    cv2.imwrite(str(path), image)
    return path


@dataclass
class Served:
    app: Appliance
    base: str
    auth: AuthStore
    flask: Any

    def client(self, log_in: bool = True) -> Client:
        client = Client(self.base)
        if log_in:
            assert client.log_in() == 200
        return client


def serve(
    config: dict[str, Any], config_path: Path | None, limiter: LoginLimiter | None = None
) -> tuple[Appliance, WebServer, Served]:
    manager = ConfigManager(parse_config(config), config_path)
    app = Appliance(manager, web=False)
    auth = AuthStore(auth_path(config_path), scrypt_n=TEST_SCRYPT_N)
    flask = create_app(app, auth=auth, limiter=limiter or LoginLimiter(free=50))
    server = WebServer(flask, "127.0.0.1", 0)
    return app, server, Served(app, f"http://127.0.0.1:{server.port}", auth, flask)


@pytest.fixture
def unprovisioned(tmp_path: Path, still: Path) -> Iterator[Served]:
    """A daemon whose page has no password yet (first boot)."""
    app, server, served = serve(
        {"source": {"uri": f"file://{still}", "fallback": []}}, tmp_path / "config.yaml"
    )
    app.start()
    server.start()
    yield served
    assert server.stop(1.0)
    assert app.stop() == []


@pytest.fixture
def served(unprovisioned: Served) -> Served:
    """The same after first-boot setup (as if done through /setup)."""
    unprovisioned.auth.set_password(PASSWORD)
    return unprovisioned


def chromium_or_skip() -> Any:
    """Playwright's sync API driving Debian's chromium (never a downloaded browser).
    Missing either: a skip on a dev box, a failure under CI=true."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "playwright is not installed (pip install -e .[test])"
    if problem is None and not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        problem = f"{CHROMIUM} missing (apt-get install chromium; tests/system-deps.sh)"
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    return sync_playwright


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (starting it costs ~1 s)."""
    sync_playwright = chromium_or_skip()
    with sync_playwright() as playwright:
        # --no-sandbox: tests may run as root in a container, where Chromium's sandbox
        # cannot start; the pages are our own.
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@dataclass
class Signer:
    key: Path
    tmp: Path

    def update(self, version: str, generation: int) -> Path:
        """A signed face_detection update at ``version`` (the OTA tests' material)."""
        from ota.signing import load_private_key, sign
        from tests.ota.helpers import make_bundle

        bundle = make_bundle(self.tmp / f"src-{version}", version, generation)
        return sign(bundle, load_private_key(self.key), self.tmp / f"{version}.bundle")


@pytest.fixture
def ota_served(tmp_path: Path) -> Iterator[tuple[Served, Signer]]:
    """A provisioned daemon on the synthetic camera (a moving face) with model updates
    on, trusting one signing key."""
    from ota.signing import keygen

    root = tmp_path / "ota"
    (root / "keys").mkdir(parents=True)
    key, public = keygen(tmp_path / "signer", "signer")
    shutil.copy(public, root / "keys" / "signer.pub")
    config = {
        "source": {"uri": "synthetic://", "width": 320, "height": 180, "fallback": []},
        "ota": {"enabled": True, "root": str(root), "health_s": 1.0},
    }
    app, server, served = serve(config, tmp_path / "config.yaml")
    served.auth.set_password(PASSWORD)
    app.start()
    server.start()
    yield served, Signer(key, tmp_path)
    assert server.stop(1.0)
    assert app.stop() == []
