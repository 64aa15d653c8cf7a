"""Bundle verification: every kind of damage is refused, naming the file at fault."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.runtime.bundle import BundleError, factory_bundle_dir, load_manifest, verify_bundle


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "face_mesh"
    shutil.copytree(factory_bundle_dir() / "face_mesh", target)
    return target


def test_flipped_byte_is_named(copy: Path) -> None:
    path = copy / "face_mesh.int8.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = verify_bundle(copy)
    assert len(problems) == 1
    assert "face_mesh.int8.onnx: sha256 mismatch" in problems[0]


def test_truncated_file_is_named(copy: Path) -> None:
    path = copy / "reference.npz"
    path.write_bytes(path.read_bytes()[:-10])
    problems = verify_bundle(copy)
    assert any("reference.npz: size" in p for p in problems)


def test_missing_file_is_named(copy: Path) -> None:
    (copy / "face_mesh.fp32.onnx").unlink()
    assert verify_bundle(copy) == [
        "face_mesh: face_mesh.fp32.onnx: missing (listed in manifest.json)"
    ]


def test_unlisted_file_is_named(copy: Path) -> None:
    (copy / "extra.onnx").write_bytes(b"not a model")
    assert verify_bundle(copy) == ["face_mesh: extra.onnx: not listed in manifest.json"]


def test_corrupt_json_is_named(copy: Path) -> None:
    path = copy / "manifest.json"
    path.write_text(path.read_text()[:-20])
    problems = verify_bundle(copy)
    assert len(problems) == 1 and "manifest.json is not valid JSON" in problems[0]
    with pytest.raises(BundleError, match=r"manifest\.json is not valid JSON"):
        load_manifest(copy)


def test_missing_manifest_is_named(copy: Path) -> None:
    (copy / "manifest.json").unlink()
    assert "manifest.json is missing" in verify_bundle(copy)[0]


def _edit(bundle: Path, change: Callable[[dict[str, Any]], object]) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_unknown_keys_are_named(copy: Path) -> None:
    _edit(copy, lambda m: m.update(colour="blue"))
    assert "manifest.json: unknown key 'colour'" in verify_bundle(copy)[0]
    _edit(copy, lambda m: (m.pop("colour"), m["files"]["reference.npz"].update(mode="x")))
    assert "files['reference.npz']: unknown key 'mode'" in verify_bundle(copy)[0]


def test_other_format_and_path_names_are_refused(copy: Path) -> None:
    _edit(copy, lambda m: m.update(format=2))
    assert "format 2 is not supported" in verify_bundle(copy)[0]
    _edit(copy, lambda m: (m.update(format=1), m["files"].update({"../x": {"size": 1}})))
    assert "'../x' is not a plain file name" in verify_bundle(copy)[0]


def test_int8_that_failed_its_gate_is_refused(copy: Path) -> None:
    _edit(copy, lambda m: m["accuracy"]["int8"].update(passed=False))
    problems = verify_bundle(copy)
    assert problems == [
        "face_mesh: manifest.json: INT8 model shipped although its accuracy gate failed"
    ]
