"""The committed factory bundles: they verify, reproduce, refuse tampering, meet gates.

Light dependencies only (NumPy + ONNX Runtime): no tensorflow, no shared data.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.runtime.bundle import (
    load_manifest,
    model_file,
    verify_bundle,
)
from engines import BUNDLES_DIR
from engines.models import MODELS

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = sorted(p for p in BUNDLES_DIR.iterdir() if p.is_dir() and not p.name.startswith("."))
IDS = [p.name for p in BUNDLES]
# Converted from MediaPipe (engines/models.py); the others are trained here (tests/engines/sr).
CONVERTED = [p for p in BUNDLES if p.name in MODELS]
CONVERTED_IDS = [p.name for p in CONVERTED]


def test_every_model_has_a_bundle() -> None:
    assert sorted(MODELS) == CONVERTED_IDS
    assert set(IDS) - set(CONVERTED_IDS) == {"sr_x2"}


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_shipped_bundle_verifies(bundle: Path) -> None:
    assert verify_bundle(bundle) == []


@pytest.mark.parametrize("bundle", CONVERTED, ids=CONVERTED_IDS)
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


@pytest.mark.parametrize("bundle", CONVERTED, ids=CONVERTED_IDS)
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


def test_every_bundle_is_installed_with_the_package() -> None:
    import tomllib

    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = {k for k in data_files["data-files"] if k.startswith("share/appliance/bundles/")}
    assert shipped == {f"share/appliance/bundles/{name}" for name in IDS}
