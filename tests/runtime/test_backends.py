"""The contract every inference backend keeps, run against each one importable here.

On a Jetson this runs against TensorRT too; on the development machines only ONNX
Runtime is importable (TensorRT is reported, not silently passed).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from appliance.runtime.base import Backend, Model, ModelError
from appliance.runtime.bundle import (
    PRECISIONS,
    BundleError,
    check_reference,
    factory_bundle_dir,
    load_manifest,
    model_file,
)
from appliance.runtime.onnx import OnnxRuntimeBackend
from appliance.runtime.select import CANDIDATES, available_backends
from tests.ota.helpers import rehash

BACKENDS, UNAVAILABLE = available_backends()
MODELS = sorted(p.name for p in factory_bundle_dir().iterdir() if p.is_dir())


def test_onnxruntime_is_available_here() -> None:
    # The daemon's dependencies include it: every machine has at least this backend.
    assert "onnxruntime" in [b.name for b in BACKENDS], UNAVAILABLE


def test_unavailable_backends_say_why() -> None:
    for name in CANDIDATES:
        assert name in [b.name for b in BACKENDS] or UNAVAILABLE[name]


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=MODELS)
def loaded(request: pytest.FixtureRequest, backend: Backend) -> Iterator[tuple[Path, Model]]:
    bundle = factory_bundle_dir() / request.param
    model = backend.load(bundle)
    yield bundle, model
    model.close()
    model.close()  # twice is fine


def test_reference_outputs_reproduce(loaded: tuple[Path, Model]) -> None:
    bundle, model = loaded
    checks = check_reference(bundle, model)
    manifest = load_manifest(bundle)
    tolerance = manifest["reference"]["tolerance"][model.precision]
    judged = (
        {tolerance["metric"]} if "metric" in tolerance else {o["name"] for o in manifest["outputs"]}
    )
    assert {c.output for c in checks} == judged
    bad = [c for c in checks if not c.ok]
    assert not bad, [f"{c.precision}: {c.describe()}" for c in bad]


@pytest.mark.parametrize("name", MODELS)
def test_every_shipped_precision_reproduces_on_onnxruntime(name: str) -> None:
    bundle = factory_bundle_dir() / name
    backend = OnnxRuntimeBackend()
    for precision in PRECISIONS:
        if model_file(load_manifest(bundle), precision):
            checks = check_reference(bundle, backend.load(bundle, precision))
            assert all(c.ok and c.precision == precision for c in checks), checks


def test_specs_match_the_manifest(loaded: tuple[Path, Model]) -> None:
    bundle, model = loaded
    manifest = load_manifest(bundle)
    assert [(s.name, list(s.shape)) for s in model.inputs] == [
        (i["name"], i["shape"]) for i in manifest["inputs"]
    ]
    assert {s.name for s in model.outputs} == {o["name"] for o in manifest["outputs"]}


def test_wrong_inputs_are_refused_clearly(loaded: tuple[Path, Model]) -> None:
    _, model = loaded
    spec = model.inputs[0]
    with pytest.raises(ModelError, match="missing input"):
        model.run({})
    with pytest.raises(ModelError, match=r"must be float32\["):
        model.run({spec.name: np.zeros((1, 3, 7, 7), np.float32)})
    with pytest.raises(ModelError, match="must be float32"):
        model.run({spec.name: np.zeros(spec.shape, np.float64)})


def test_explicit_precisions(backend: Backend) -> None:
    bundle = factory_bundle_dir() / "face_mesh"
    for precision in ("fp32", "int8"):
        if model_file(load_manifest(bundle), precision) and backend.name == "onnxruntime":
            assert backend.load(bundle, precision).precision == precision
    with pytest.raises(ModelError):
        backend.load(bundle, "fp8")


def test_a_tampered_bundle_is_never_loaded(backend: Backend, tmp_path: Path) -> None:
    bundle = tmp_path / "face_detection"
    shutil.copytree(factory_bundle_dir() / "face_detection", bundle)
    onnx = bundle / str(model_file(load_manifest(bundle), "fp32"))
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 mismatch"):
        backend.load(bundle)


def _int8_failing_its_gate_here(tmp_path: Path, name: str) -> Path:
    """A copy of a bundle whose INT8 model misses its gate on this machine, as one whose
    integer kernels saturate would: the reference check's threshold made unreachable
    (and the hashes made good)."""
    bundle = tmp_path / name
    shutil.copytree(factory_bundle_dir() / name, bundle)
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    tolerance = manifest["reference"]["tolerance"]["int8"]
    tolerance["threshold"] = 2.0 if tolerance["higher_is_better"] else -1.0
    path.write_text(json.dumps(manifest, indent=2))
    rehash(bundle)
    return bundle


def test_auto_keeps_the_fastest_precision_that_reproduces_here() -> None:
    backend = OnnxRuntimeBackend()
    model = backend.load(factory_bundle_dir() / "face_mesh")
    choice = backend.choices["face_mesh"]
    assert choice["refused"] == {}
    assert set(choice["ms"]) == {"fp32", "int8"}
    assert model.precision == min(choice["ms"], key=choice["ms"].get)


def test_auto_falls_back_to_fp32_when_int8_computes_something_else_here(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = _int8_failing_its_gate_here(tmp_path, "face_mesh")
    backend = OnnxRuntimeBackend()
    with caplog.at_level(logging.WARNING, logger="appliance.runtime.onnx"):
        model = backend.load(bundle)
    assert model.precision == "fp32"
    choice = backend.choices["face_mesh"]
    assert choice["precision"] == "fp32"
    assert set(choice["ms"]) == {"fp32"}
    assert "reference outputs differ here: nme_iod" in choice["refused"]["int8"]
    assert "int8 refused on this CPU" in caplog.text
    # asked for by name, it still loads: the choice is auto's, not a ban
    assert backend.load(bundle, "int8").precision == "int8"
