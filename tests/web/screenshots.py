"""Screenshots of every page for docs/web.md, taken in headless Chromium against a daemon
on the synthetic camera: ``python -m tests.web.screenshots docs/images``."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from appliance.logs import setup_logging
from tests.web.conftest import CHROMIUM, Signer, serve
from tests.web.helpers import PASSWORD


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    from ota.signing import keygen

    setup_logging("info")  # as the daemon logs: the logs page shows what it would
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="web-shots-"))
    root = tmp / "ota"
    (root / "keys").mkdir(parents=True)
    key, public = keygen(tmp / "signer", "signer")
    shutil.copy(public, root / "keys" / "signer.pub")
    config = {
        "device": {"name": "Meeting room camera"},
        "source": {"uri": "synthetic://", "width": 640, "height": 360, "fallback": []},
        "ota": {"enabled": True, "root": str(root), "health_s": 1.0},
        "web": {"overlay": True},
    }
    app, server, served = serve(config, tmp / "config.yaml")
    app.start()
    server.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(served.base + "/")
            page.fill("input[name=code]", served.auth.setup_code or "")
            page.screenshot(path=out / "web-setup.png")
            page.fill("input[name=password]", PASSWORD)
            page.fill("input[name=confirm]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("#stages tr")
            time.sleep(20)  # some seconds of history in the plots
            page.screenshot(path=out / "web-dashboard.png")
            page.goto(served.base + "/settings")
            page.fill("[name='web.jpeg_quality']", "5")
            page.click("text=Apply")
            page.locator("[id='error-web.jpeg_quality']").scroll_into_view_if_needed()
            page.screenshot(path=out / "web-settings.png")
            page.goto(served.base + "/models")
            update = Signer(key, tmp).update("0.10.21-12", 2)
            page.set_input_files("#bundle", str(update))
            page.click("#upload-button")
            page.wait_for_selector("#upload-result[data-done]", timeout=60_000)
            page.wait_for_function("document.getElementById('bundles').textContent.includes('-2')")
            page.screenshot(path=out / "web-models.png")
            page.goto(served.base + "/logs")
            page.wait_for_selector("#log div")
            page.screenshot(path=out / "web-logs.png")
            page.goto(served.base + "/actions")
            page.screenshot(path=out / "web-actions.png")
            page.click("text=Log out")
            page.fill("input[name=password]", "a wrong guess")
            page.click("button[type=submit]")
            page.screenshot(path=out / "web-login.png")
            browser.close()
    finally:
        server.stop(1.0)
        app.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images"))
