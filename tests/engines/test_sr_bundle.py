"""The trained super-resolution bundle: what its manifest promises. Hashes and reference
outputs are checked with every other bundle (tests/engines/test_bundle.py,
tests/runtime/test_backends.py)."""

from __future__ import annotations

import numpy as np

from appliance.runtime.bundle import load_manifest, model_file
from engines import BUNDLES_DIR
from engines.sr.bundle import MAX_INT8_LOSS_DB, TRAINING_DATA
from engines.sr.spec import MARGIN, OFFSET, PHASE_FIELDS, TILE, deployed_parameters

BUNDLE = BUNDLES_DIR / "sr_x2"


def test_manifest_describes_the_trained_model() -> None:
    m = load_manifest(BUNDLE)  # verified with every bundle in test_bundle.py
    assert m["created"].endswith("Z")
    (inp,) = m["inputs"]
    assert inp["shape"] == [1, 1, TILE, TILE] and inp["offset"] == OFFSET
    assert inp["color"] == "Y" and inp["layout"] == "NCHW"
    assert m["outputs"][0]["shape"] == [1, 1, 2 * TILE, 2 * TILE]
    assert m["postprocess"] == {"scale": 2, "tile": TILE, "margin": MARGIN}
    source = m["provenance"]["source"]
    assert source["training_data"] == TRAINING_DATA  # licences travel with the weights
    training = source["training"]
    assert training["parameters"] == deployed_parameters(training["channels"], training["blocks"])
    assert training["parameters"] <= 30_000  # the budget
    # tiles overlap by MARGIN: enough only if it covers every 3x3 layer's reach (no seams)
    assert training["blocks"] + 2 <= MARGIN  # head + blocks + tail


def test_int8_ships_exactly_when_it_passes_its_gate() -> None:
    m = load_manifest(BUNDLE)
    gate = m["accuracy"]["int8"]
    figures = gate["set5_psnr_db"]
    assert gate["threshold"] == MAX_INT8_LOSS_DB
    assert np.isclose(gate["value"], figures["fp32"] - figures["int8"], atol=2e-3)
    assert gate["passed"] == (gate["value"] <= MAX_INT8_LOSS_DB)
    assert (model_file(m, "int8") is not None) == gate["passed"]
    assert m["accuracy"]["conversion"]["passed"]


def test_phases_read_by_name_and_end_with_the_shipped_settings() -> None:
    source = load_manifest(BUNDLE)["provenance"]["source"]
    phases, training = source["phases"], source["training"]
    assert phases and all(tuple(phase) == PHASE_FIELDS for phase in phases)
    starts = [phase["from_step"] for phase in phases]
    assert starts == sorted(starts) and starts[-1] < training["steps_done"]
    last = phases[-1]
    assert all(last[field] == training[field] for field in PHASE_FIELDS[1:])
