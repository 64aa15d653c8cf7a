"""Fuzzing configuration documents: from a file (YAML text), the web page and MQTT
(decoded documents). Only ConfigError comes out, with short messages, and a refused
change changes nothing."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from appliance.config import Config, ConfigError, ConfigManager, load_config
from appliance.config.schema import restart_fields
from appliance.config.store import read_yaml
from tests.fuzz import corpus

pytestmark = pytest.mark.fuzz

SECTIONS = list(Config.model_fields)
FIELDS = {name: list(field.annotation.model_fields) for name, field in Config.model_fields.items()
          if hasattr(field.annotation, "model_fields")}  # fmt: skip

leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["auto", "synthetic://", "file:///etc/shadow", "/dev/video0", "#00ff00"])
)
values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)  # fmt: skip


@st.composite
def patches(draw: st.DrawFn) -> dict:
    """Mostly-plausible partial configs: real section and field names, any values."""
    patch: dict = {}
    for section in draw(st.lists(st.sampled_from([*SECTIONS, "bogus"]), max_size=3)):
        names = FIELDS.get(section, ["x"])
        fields = draw(st.lists(st.sampled_from([*names, "typo"]), max_size=3))
        patch[section] = {name: draw(values) for name in fields}
        if draw(st.booleans()):
            patch[section] = draw(values)
    return patch


@given(patch=patches(), origin=st.sampled_from(["web", "mqtt", "api"]))
def test_any_patch_is_applied_whole_or_refused_with_nothing_changed(patch, origin):
    manager = ConfigManager(Config())
    before = manager.config
    try:
        config, restart = manager.update(patch, origin=origin)
    except ConfigError as exc:
        assert manager.config is before
        assert all(len(line) < 700 for line in exc.errors), "an error echoes too much"
    else:
        assert isinstance(config, Config) and restart <= set(restart_fields()) | restart
        assert Config.model_validate(config.model_dump(mode="json")) == config


@given(text=st.text(max_size=400) | patches().map(lambda p: yaml.safe_dump(p)))
def test_any_config_file_is_read_or_refused_with_its_reasons(tmp_path_factory, text):
    path = tmp_path_factory.getbasetemp() / "fuzzed.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.errors and all(len(line) < 700 for line in exc.errors)


@pytest.mark.parametrize("path", corpus("config"), ids=lambda p: p.name)
def test_the_kept_documents_are_refused_briefly(path):
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert all(len(line) < 700 for line in refused.value.errors)
    try:  # the same document as the web page or MQTT would send it
        document = read_yaml(path.read_bytes().decode("utf-8"))
    except (ConfigError, UnicodeDecodeError):
        return  # refused as YAML: nothing to send
    manager = ConfigManager(Config())
    with pytest.raises(ConfigError):
        manager.update(json.loads(json.dumps(document)) if isinstance(document, dict) else document)
    assert manager.config == Config()
