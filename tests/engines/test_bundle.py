"""The committed factory bundles: they verify, reproduce, refuse tampering, meet gates.

Light dependencies only (NumPy + ONNX Runtime): no tensorflow, no shared data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.runtime.bundle import (
    BundleError,
    load_manifest,
    model_file,
    verify_bundle,
)
from appliance.vision import anchors
from engines import BUNDLES_DIR
from engines.models import MODELS

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = sorted(p for p in BUNDLES_DIR.iterdir() if p.is_dir() and not p.name.startswith("."))
IDS = [p.name for p in BUNDLES]


def test_every_model_has_a_bundle() -> None:
    assert sorted(MODELS) == IDS


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_shipped_bundle_verifies(bundle: Path) -> None:
    assert verify_bundle(bundle) == []


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_accuracy_figures_satisfy_gates(bundle: Path) -> None:
    m = load_manifest(bundle)
    spec = MODELS[m["name"]]
    conversion = m["accuracy"]["conversion"]
    assert conversion["passed"]
    for name, figures in conversion["outputs"].items():
        assert figures["max_abs"] <= figures["tolerance"], name
    gate = m["accuracy"]["int8"]
    assert gate["metric"] == spec.gate.metric
    assert gate["threshold"] == spec.gate.threshold
    if spec.gate.higher_is_better:
        meets = gate["value"] >= gate["threshold"]
    else:
        meets = gate["value"] < gate["threshold"]
    assert gate["passed"] == meets
    # An INT8 model ships exactly when it passed its gate.
    assert (model_file(m, "int8") is not None) == gate["passed"]
    if m["name"] == "face_mesh":  # the issue's own acceptance figure
        assert gate["passed"] and gate["value"] < 0.01


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_manifest_tells_the_runtime_how_to_feed_the_model(bundle: Path) -> None:
    m = load_manifest(bundle)
    assert m["format"] == 1 and m["created"].endswith("Z")
    assert m["provenance"]["source"]["licence"] == "Apache-2.0"
    assert len(m["provenance"]["source"]["wheel_sha256"]) == 64
    (inp,) = m["inputs"]
    spec = MODELS[m["name"]].input
    assert inp["layout"] == "NCHW" and inp["shape"] == [1, 3, spec.height, spec.width]
    assert inp["range"] == pytest.approx([inp["offset"], inp["offset"] + 255 * inp["scale"]])
    assert m["compatibility"]["onnx_opset"] == 17


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_reference_file_is_small(bundle: Path) -> None:
    assert (bundle / "reference.npz").stat().st_size < 1_000_000


def test_factory_bundles_stay_small() -> None:
    total = sum(f.stat().st_size for f in BUNDLES_DIR.rglob("*") if f.is_file())
    assert total < 20_000_000


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "face_mesh"
    shutil.copytree(BUNDLES_DIR / "face_mesh", target)
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


def test_anchors_match_the_short_range_detector() -> None:
    a = anchors.ANCHORS
    assert a.shape == (896, 2)
    assert a[0].tolist() == pytest.approx([0.5 / 16, 0.5 / 16])
    assert a[511].tolist() == pytest.approx([15.5 / 16, 15.5 / 16])
    assert a[512].tolist() == a[517].tolist() == pytest.approx([0.5 / 8, 0.5 / 8])
    assert a[-1].tolist() == pytest.approx([7.5 / 8, 7.5 / 8])


def test_decoder_puts_a_box_around_its_anchor() -> None:
    import numpy as np

    raw = np.zeros((1, 896, 16), np.float32)
    raw[0, 700, 2:4] = 32.0  # 32 px wide and high in the 128-px input
    logits = np.full((1, 896, 1), -10.0, np.float32)
    logits[0, 700, 0] = 5.0
    row, score = anchors.top_detection(raw, logits)
    cx, cy = anchors.ANCHORS[700]
    assert row[:4].tolist() == pytest.approx([cx - 0.125, cy - 0.125, cx + 0.125, cy + 0.125])
    assert score == pytest.approx(1 / (1 + np.exp(-5.0)))
    assert anchors.box_iou(row[:4], row[:4]) == pytest.approx(1.0)


def test_light_commands_do_not_import_the_converters() -> None:
    code = (
        "import sys, engines.cli, appliance.runtime.bundle;"
        "from engines.cli import list, verify;"
        "sys.exit(verify([]) or list([]) or "
        "any(m in sys.modules for m in ('tensorflow', 'tf2onnx', 'onnx', 'ai_edge_litert')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "INT8 gate nme_iod" in done.stdout and "face_mesh" in done.stdout


def test_cli_parser_wires_into_a_main_parser() -> None:
    import argparse

    from engines.cli import add_engines_parser

    parser = argparse.ArgumentParser(prog="appliance")
    add_engines_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["engines", "list", str(BUNDLES_DIR / "iris")])
    assert args.engines_func(args) == 0
    args = parser.parse_args(["engines", "build", "face_mesh", "--allow-fp32-only"])
    assert args.names == ["face_mesh"] and args.allow_fp32_only
