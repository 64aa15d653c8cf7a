"""The settings form comes from the config schema; bad values change nothing; a change
that fails to apply is taken back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.config import Config, ConfigError, ConfigManager
from appliance.web import forms
from appliance.web.apply import apply_change
from tests.conftest import wait_until
from tests.web.conftest import Served
from tests.web.helpers import Client, form_token


class Form(dict[str, Any]):
    """What a browser posts: ``getlist`` like werkzeug's MultiDict."""

    def getlist(self, key: str) -> list[Any]:
        value = self.get(key, [])
        return value if isinstance(value, list) else [value]


def test_every_schema_field_is_on_the_form_with_its_constraints() -> None:
    schema = Config.model_json_schema()
    expected = {
        f"{section}.{key}"
        for section, node in schema["properties"].items()
        if "$ref" in node
        for key in schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]["properties"]
    }
    fields = {f.path: f for s in forms.sections(Config()) for f in s.fields}
    assert set(fields) == expected
    quality = fields["web.jpeg_quality"]
    assert quality.kind == "number" and quality.attrs == {"step": "1", "min": "10", "max": "100"}
    assert fields["web.port"].restart and not quality.restart
    assert fields["background.mode"].choices == ["off", "blur", "replace"]
    assert fields["web.overlay"].kind == "checkbox" and fields["source.fallback"].kind == "lines"


def test_form_values_become_a_typed_patch() -> None:
    form = Form(
        {
            "web.jpeg_quality": "33",
            "web.preview_fps": "7.5",
            "source.fallback": "synthetic://\n\n file:///a.png ",
            "source.width": "wide",
            forms.CHECKBOXES: ["web.overlay", "vision.iris"],
            "web.overlay": "on",
        }
    )
    patch = forms.patch_from_form(form, Config())
    assert patch["web"] == {"jpeg_quality": 33, "preview_fps": 7.5, "overlay": True}
    assert patch["vision"] == {"iris": False}  # on the form, unticked
    assert "enabled" not in patch["vision"]  # not on the form: left alone
    assert patch["source"] == {"fallback": ["synthetic://", "file:///a.png"], "width": "wide"}


def test_a_change_that_fails_to_apply_is_reverted(tmp_path: Path) -> None:
    manager = ConfigManager(Config(), tmp_path / "config.yaml")

    def fragile(old: Config, new: Config) -> None:
        if new.web.jpeg_quality == 13:
            raise RuntimeError("encoder refused quality 13")

    manager.subscribe(fragile)
    with pytest.raises(ConfigError) as info:
        apply_change(manager, {"web": {"jpeg_quality": 13}})
    assert "encoder refused quality 13" in info.value.errors[0]
    assert manager.config.web.jpeg_quality == 80
    assert "jpeg_quality: 80" in (tmp_path / "config.yaml").read_text()
    assert apply_change(manager, {"web": {"jpeg_quality": 14}}).web.jpeg_quality == 14


def _settings_form(client: Client) -> str:
    code, page, _ = client.raw("/settings")
    assert code == 200
    return form_token(page)


def _post(client: Client, fields: dict[str, str]) -> tuple[int, str]:
    from urllib.parse import urlencode

    data = urlencode({"csrf_token": _settings_form(client), **fields}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    code, body, _ = client.raw("/settings", "POST", data, headers)
    return code, body.decode()


def test_the_form_applies_a_change_to_the_running_pipeline(served: Served) -> None:
    client = served.client()
    code, page = _post(client, {"web.jpeg_quality": "21", "align.max_zoom": "2.5"})
    assert code == 200 and "saved and applied" in page
    assert wait_until(lambda: served.app.preview.quality == 21)
    assert served.app.config.config.align.max_zoom == 2.5
    assert 'name="web.jpeg_quality" value="21"' in page


def test_a_bad_value_shows_its_error_on_the_field_and_changes_nothing(
    served: Served, tmp_path: Path
) -> None:
    client = served.client()
    before = served.app.config.config
    code, page = _post(
        client, {"web.jpeg_quality": "5", "source.width": "abc", "align.dwell_s": "2"}
    )
    assert code == 400 and "nothing was changed" in page
    assert 'id="error-web.jpeg_quality">Input should be greater than or equal to 10' in page
    assert 'id="error-source.width"' in page
    assert 'name="web.jpeg_quality" value="5"' in page  # what was typed stays, to be fixed
    assert served.app.config.config == before  # the good dwell_s was not applied either
    assert not (tmp_path / "config.yaml").exists()
