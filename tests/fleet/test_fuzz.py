"""Fuzzing the MQTT payload handlers, both sides: nothing a payload holds escapes as an
exception (which would reach paho's network thread), and the running state only
changes through a valid document."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.config import Config, ConfigManager
from appliance.fleet.client import FleetClient, FleetSettings
from appliance.fleet.operator import Operator
from appliance.fleet.payloads import MAX_DEPTH, MAX_PAYLOAD
from appliance.untrusted import UntrustedInputError, load_json, nesting_depth
from tests.conftest import scaled
from tests.fuzz import corpus

pytestmark = pytest.mark.fuzz

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
config_keys = st.sampled_from(["web", "device", "codec", "source", "fleet", "ota", "x"])
desired_documents = st.fixed_dictionaries(
    {
        "version": st.integers(-2, 10) | st.booleans() | st.text(max_size=3),
        "config": st.dictionaries(config_keys, json_values, max_size=3) | json_values,
    }
)


def mutated(document: bytes, data: st.DataObject) -> bytes:
    """``document`` with a few bytes flipped, cut or repeated."""
    raw = bytearray(document)
    for _ in range(data.draw(st.integers(0, 3))):
        if not raw:
            break
        at = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "repeat"]))
        if action == "flip":
            raw[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del raw[at:]
        else:
            raw[at:at] = raw[at : at + 8] * data.draw(st.integers(1, 50))
    return bytes(raw)


payloads = st.binary(max_size=300) | desired_documents.map(lambda d: json.dumps(d).encode())


class RecordingMqtt:
    """Stands in for paho's client inside a callback: keeps what would be published."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, *_args: Any) -> None:
        self.published.append((topic, payload))


def camera(state_file: Path | None = None) -> FleetClient:
    """A camera's MQTT side, never connected: its callbacks are called as paho would."""
    settings = FleetSettings("mqtt://127.0.0.1:1", "cam1")
    client = FleetClient(ConfigManager(Config()), settings, state_file=state_file)
    client.handle("web-password", lambda document: {"ok": isinstance(document, dict)})
    return client


def message(topic: str, payload: bytes) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, payload=payload, properties=SimpleNamespace())


@given(data=st.data(), payload=payloads)
def test_the_camera_answers_every_desired_payload_and_changes_only_through_the_schema(
    data, payload
):
    cam = camera()
    payload = mutated(payload, data)
    before = cam.shadow.manager.config
    recorder = RecordingMqtt()
    guarded_desired = cam._guarded(cam._on_desired)
    guarded_desired(recorder, None, message("appliance/cam1/config/desired", payload))
    assert cam.errors == 0, cam.last_error  # nothing was left to the guard
    [(topic, answer)] = recorder.published
    report = json.loads(answer)
    assert topic == "appliance/cam1/config/reported"
    if not report["accepted"]:
        assert cam.shadow.manager.config == before


@given(data=st.data(), payload=payloads, name=st.sampled_from(["update", "web-password", "x"]))
def test_every_command_payload_gets_an_answer(data, payload, name):
    cam = camera()
    cam.updater = lambda source, job: {"state": "idle"}
    answer = cam._command(name, mutated(payload, data))
    assert isinstance(answer, dict) and isinstance(answer.get("ok"), bool)


@given(
    data=st.data(),
    payload=payloads | json_values.map(lambda v: json.dumps(v).encode()),
    kind=st.sampled_from(["status", "telemetry", "ota", "config/reported", "config/desired"]),
)
def test_the_operator_reads_any_document_a_camera_publishes(data, payload, kind):
    op = Operator("mqtt://127.0.0.1:1", "", "")
    op._on_message(None, None, message(f"appliance/cam1/{kind}", mutated(payload, data)))
    assert op.devices() in ([], ["cam1"])
    op.set_config("cam1", {"web": {"overlay": True}})  # whatever cam1 sent, this works
    assert op.wait_job("cam1", "none", 0)["state"] == "timeout"


@pytest.mark.parametrize("path", corpus("mqtt"), ids=lambda p: p.name)
def test_the_kept_payloads_are_refused_or_handled(tmp_path, path):
    payload = path.read_bytes()
    cam = camera(tmp_path / "cam1.json")
    recorder = RecordingMqtt()
    cam._guarded(cam._on_desired)(recorder, None, message("x/cam1/config/desired", payload))
    assert cam.errors == 0 and len(recorder.published) == 1
    assert isinstance(cam._command("web-password", payload)["ok"], bool)
    op = Operator("mqtt://127.0.0.1:1", "", "")
    for kind in ("status", "telemetry", "ota", "config/reported", "config/desired"):
        op._on_message(None, None, message(f"appliance/cam1/{kind}", payload))
    assert op.devices() == ["cam1"]


@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_the_bounded_reader_parses_what_json_parses_or_refuses_it(raw):
    try:
        expected: Any = json.loads(raw)
    except (ValueError, RecursionError):
        expected = UntrustedInputError
    try:
        got: Any = load_json(raw, max_bytes=10**6, max_depth=MAX_DEPTH, what="x")
    except UntrustedInputError:
        got = UntrustedInputError
    if nesting_depth(raw) <= MAX_DEPTH:
        assert got == expected or (got != got and expected != expected)  # NaN
    else:
        assert got is UntrustedInputError


def test_the_depth_scan_is_never_fooled_by_strings_or_escapes():
    assert nesting_depth(b'{"a": "[[[[\\"[[[", "b": [[1]]}') == 3
    assert nesting_depth(b"]]]][[[[") == 4  # stray closers never hide what follows
    assert nesting_depth(b'[[ "unterminated [[[[') == 2  # JSON stops at the string
    with pytest.raises(UntrustedInputError, match="nests 200000 deep"):
        load_json(b"[" * 200_000 + b"]" * 200_000, max_bytes=10**6, max_depth=MAX_DEPTH)
    with pytest.raises(UntrustedInputError, match="at most 10 are read"):
        load_json(b"[1, 2, 3, 4]", max_bytes=10, max_depth=MAX_DEPTH)


def test_the_depth_scan_is_linear_on_quotes_that_never_close():
    # Requiring a closing quote made each of these rescan to the end: 15 s for 64 KiB,
    # with the GIL held (the whole daemon frozen), before any login.
    hostile = b'"' + b'\\"' * 32_000
    start = time.monotonic()
    with pytest.raises(UntrustedInputError, match="not JSON"):
        load_json(hostile, max_bytes=MAX_PAYLOAD, max_depth=MAX_DEPTH)
    assert time.monotonic() - start < scaled(0.2)
