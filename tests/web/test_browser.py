"""End to end in real headless Chromium (Debian's, driven by Playwright): what a person
at the camera's page does, against a running daemon."""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np
import pytest

from tests.conftest import wait_until
from tests.ota.helpers import rewrite
from tests.web.conftest import Served, Signer
from tests.web.helpers import PASSWORD


def log_in(page: Any, served: Served) -> None:
    page.goto(served.base + "/settings")
    assert page.url.startswith(served.base + "/login")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(served.base + "/settings")  # back where it wanted to go


@pytest.fixture
def logged_in(ota_served: tuple[Served, Signer], page: Any) -> Served:
    """A daemon with updates on, and the browser logged in to its page."""
    served, _ = ota_served
    log_in(page, served)
    return served


def test_first_boot_setup_then_login_and_logout(unprovisioned: Served, page: Any) -> None:
    base = unprovisioned.base
    page.goto(base + "/")
    assert page.url == base + "/setup"
    code = unprovisioned.auth.setup_code  # what the daemon printed on its console
    assert code is not None
    page.fill("input[name=code]", code)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=confirm]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    page.wait_for_selector("#stages tr")  # the dashboard polls the API: logged in
    page.click("text=Log out")
    page.wait_for_url(base + "/login")
    page.goto(base + "/")
    assert page.url == base + "/login"
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert page.inner_text("#login-error") == "wrong password"
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    assert unprovisioned.auth.setup_code is None


def _grab(page: Any) -> np.ndarray:
    png = page.locator("#live").screenshot()
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE).astype(np.float32)


def test_the_preview_shows_moving_frames_and_live_plots(logged_in: Served, page: Any) -> None:
    served = logged_in
    page.goto(served.base + "/")
    page.wait_for_function("document.getElementById('live').naturalWidth > 0")
    assert page.evaluate("document.getElementById('live').naturalWidth") == 320
    first = _grab(page)
    time.sleep(1.0)
    second = _grab(page)
    assert first.std() > 10  # a picture, not a blank
    assert np.abs(first - second).mean() > 0.5  # and it moves
    page.wait_for_function("document.getElementById('fps').textContent !== '–'")
    assert float(page.inner_text("#fps")) > 0
    stages = page.locator("#stages tr td:first-child").all_inner_texts()
    assert "vision" in stages and "preview" in stages
    # The plots are drawn: the canvas is not blank.
    painted = page.evaluate(
        """() => { const c = document.getElementById('plot-latency');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
    )
    assert painted > 100
    page.check("#overlay")  # the landmark overlay, switched live from the dashboard
    assert wait_until(lambda: served.app.preview.overlay, 5.0)

    page.click("#view-before")  # the picture as captured: not framed, not levelled
    page.wait_for_function("document.getElementById('live').src.includes('view=before')")
    assert wait_until(lambda: served.app.before_hub.clients > 0, 5.0)
    time.sleep(1.0)
    before = _grab(page)
    assert before.std() > 10
    assert np.abs(before - second).mean() > 2, "the before view shows the processed picture"
    page.click("#view-after")
    assert wait_until(lambda: served.app.before_hub.clients == 0, 5.0)  # it stops encoding


def test_a_setting_changed_in_the_form_changes_the_running_pipeline(
    logged_in: Served, page: Any
) -> None:
    served = logged_in
    page.fill("[name='web.jpeg_quality']", "22")
    page.select_option("[name='align.lock']", "active")
    page.click("text=Apply")
    page.wait_for_selector("#notice.ok")
    assert wait_until(lambda: served.app.preview.quality == 22, 5.0)
    align: Any = next(s for s in served.app.pipeline.stages if s.name == "align")
    assert wait_until(lambda: align.settings.lock == "active", 5.0)  # the stage itself
    assert page.input_value("[name='web.jpeg_quality']") == "22"


def test_a_bad_value_shows_its_error_and_changes_nothing(
    logged_in: Served, page: Any, tmp_path: Any
) -> None:
    served = logged_in
    before = served.app.config.config
    page.fill("[name='web.jpeg_quality']", "500")
    page.fill("[name='align.max_zoom']", "2")
    page.click("text=Apply")
    error = page.locator("[id='error-web.jpeg_quality']")
    assert "less than or equal to 100" in error.inner_text()
    assert page.inner_text("#notice") == "nothing was changed"
    assert page.input_value("[name='web.jpeg_quality']") == "500"
    assert served.app.config.config == before and served.app.preview.quality == 80
    assert not (tmp_path / "config.yaml").exists()


def test_a_signed_bundle_upload_installs_and_a_tampered_one_is_refused(
    ota_served: tuple[Served, Signer], page: Any
) -> None:
    served, signer = ota_served
    update = signer.update("0.10.21-12", 2)

    def change_version(members: list[Any]) -> list[Any]:
        out = []
        for info, data in members:
            if info.name.endswith("manifest.json") and data is not None:
                data = data.replace(b'"0.10.21-12"', b'"0.10.21-13"')
            out.append((info, data))
        return out

    tampered = rewrite(update, signer.tmp / "tampered.bundle", change_version)
    log_in(page, served)
    page.goto(served.base + "/models")
    page.wait_for_selector("#bundles tr")
    assert "0.10.21-2" in page.inner_text("#bundles")

    page.set_input_files("#bundle", str(tampered))
    page.click("#upload-button")
    result = page.locator("#upload-result[data-done]")
    result.wait_for(timeout=60_000)
    assert result.get_attribute("data-done") == "refused"
    assert "refused: update failed" in result.inner_text()
    assert served.app.status()["models"]["versions"]["face_detection"] == "0.10.21-2"

    page.set_input_files("#bundle", str(update))
    page.click("#upload-button")
    page.wait_for_selector("#upload-result[data-done='ok']", timeout=60_000)
    assert page.inner_text("#upload-result") == "installed: installed"
    assert page.evaluate("document.getElementById('progress').value") == 100
    assert served.app.status()["models"]["versions"]["face_detection"] == "0.10.21-12"
    page.wait_for_function("document.getElementById('bundles').textContent.includes('-2')")
    slots = page.inner_text("#slots")
    assert "active slot\tb" in slots and "face_detection 0.10.21-12" in slots


def test_device_actions_need_the_confirmation_box(logged_in: Served, page: Any) -> None:
    served = logged_in
    page.goto(served.base + "/actions")
    page.click("#restart")
    assert "tick the confirmation box" in page.inner_text("#action-error")
    assert served.app.restart_reason is None
    page.check("#confirm-restart")
    page.click("#restart")
    page.wait_for_selector("#done")
    assert served.app.restart_reason == "asked from the web page"
