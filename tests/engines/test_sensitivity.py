"""Mixed precision chosen on the selection split: the split, the layers, the search.

Light: no onnx, no tensorflow, no shared data (fake graphs and fake scores), plus
checks of what the shipped segmentation bundle records.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from appliance.runtime.bundle import load_manifest, model_file
from engines import BUNDLES_DIR, calibration, sensitivity
from engines.models import MODELS


def _node(name: str, op: str, inputs: list[str]) -> SimpleNamespace:
    return SimpleNamespace(name=name, op_type=op, input=inputs, output=[name])


def _graph(*nodes: SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(graph=SimpleNamespace(node=list(nodes)))


OPS = {"Conv", "ConvTranspose", "Relu", "Sigmoid", "Add"}


def test_selection_frames_avoid_the_other_splits_and_their_neighbours() -> None:
    picked = [0, 3, 10, 11, 40, 77]
    chosen = calibration.selection_indices(78, picked, 0, calibration.SEED, 8)
    assert len(chosen) == 8 == len(set(chosen)) and chosen == sorted(chosen)
    assert not {i + d for i in picked for d in (-1, 0, 1)} & set(chosen)
    assert all(0 <= i < 78 for i in chosen)
    # seeded: the same clip gives the same frames, another clip other ones
    assert chosen == calibration.selection_indices(78, picked, 0, calibration.SEED, 8)
    assert chosen != calibration.selection_indices(78, picked, 1, calibration.SEED, 8)


def test_a_convolution_and_its_fused_activation_are_one_layer() -> None:
    model = _graph(
        _node("c1", "Conv", ["x"]),
        _node("r1", "Relu", ["c1"]),
        _node("c2", "Conv", ["r1"]),  # two consumers: its activation is not fused
        _node("r2", "Relu", ["c2"]),
        _node("add", "Add", ["c2", "r2"]),
        _node("hs", "HardSwish", ["add"]),  # not quantized: no layer
        _node("up", "ConvTranspose", ["hs"]),
        _node("sig", "Sigmoid", ["up"]),
    )
    assert sensitivity.layers(model, OPS) == [
        ["c1", "r1"],
        ["c2"],
        ["r2"],
        ["add"],
        ["up", "sig"],
    ]
    assert sensitivity.conv_layers(model) == 3


def _quiet(line: str) -> None:
    del line


def _fake(
    gains: dict[str, float], base: float = 0.90
) -> tuple[sensitivity.Quantizer, sensitivity.Score]:
    """A quantizer that remembers what stays float, a score that adds up the gains."""
    state: dict[str, list[str]] = {}

    def quantize(nodes: list[str], out: Path) -> None:
        state["float"] = list(nodes)

    def score(path: Path) -> float:
        return base + sum(gains.get(n, 0.0) for n in state["float"])

    return quantize, score


def test_search_keeps_the_most_sensitive_layers_until_the_target(tmp_path: Path) -> None:
    candidates = [["a"], ["b", "b_act"], ["c"], ["d"]]
    quantize, score = _fake({"a": 0.01, "b": 0.03, "c": 0.02, "d": 0.0})
    found = sensitivity.search("x", candidates, quantize, score, 0.945, 3, True, tmp_path, _quiet)
    assert found.baseline == pytest.approx(0.90)
    assert [layer for layer, _ in found.ranking] == [["b", "b_act"], ["c"], ["a"], ["d"]]
    assert found.nodes() == ["b", "b_act", "c"]
    assert found.reached and found.value == pytest.approx(0.95)


def test_search_stops_at_the_cap(tmp_path: Path) -> None:
    quantize, score = _fake({"a": 0.01, "b": 0.01, "c": 0.01})
    found = sensitivity.search(
        "x", [["a"], ["b"], ["c"]], quantize, score, 0.99, 2, True, tmp_path, str
    )
    assert found.nodes() == ["a", "b"] and not found.reached


def test_search_leaves_nothing_float_when_int8_already_meets_the_target(tmp_path: Path) -> None:
    quantize, score = _fake({"a": 0.05}, base=0.97)
    found = sensitivity.search("x", [["a"]], quantize, score, 0.96, 5, True, tmp_path, _quiet)
    assert found.chosen == [] and found.reached


def test_lower_is_better_metrics_are_searched_the_other_way(tmp_path: Path) -> None:
    quantize, score = _fake({"a": -0.004, "b": 0.002}, base=0.012)
    found = sensitivity.search(
        "x", [["a"], ["b"]], quantize, score, 0.01, 2, False, tmp_path, _quiet
    )
    assert found.nodes() == ["a"] and found.reached


def test_best_calibration_needs_the_fewest_float_layers() -> None:
    two = sensitivity.Search("minmax", 0.92, chosen=[(["a"], 0.0, 0.0)] * 2, value=0.97)
    one = sensitivity.Search("p", 0.94, chosen=[(["a"], 0.0, 0.0)], value=0.965, reached=True)
    two.reached = True
    missed = sensitivity.Search("q", 0.93, value=0.99)
    assert sensitivity.best([two, one, missed], True) is one
    assert sensitivity.best([missed, sensitivity.Search("r", 0.9, value=0.95)], True) is missed


def test_shipped_segmentation_int8_was_chosen_on_the_selection_split() -> None:
    spec = MODELS["selfie_segmentation"]
    assert spec.mixed_precision is not None
    m = load_manifest(BUNDLES_DIR / spec.name)
    assert m["version"] == spec.version
    gate = m["accuracy"]["int8"]
    assert gate["passed"] and model_file(m, "int8") is not None
    mixed = gate["settings"]["mixed_precision"]
    chosen = mixed["chosen"]
    assert chosen["target_met"] and chosen["value"] >= spec.mixed_precision.target
    assert mixed["max_float_layers"] == int(0.10 * mixed["convolution_layers"])
    assert 0 < len(chosen["float_layers"]) <= mixed["max_float_layers"]
    floats = [n for layer in chosen["float_layers"] for n in layer["nodes"]]
    assert gate["settings"]["float_nodes"] == floats
    calib = m["provenance"]["calibration"]
    assert calib["selection_inputs"] == mixed["selection_inputs"] > 0
    assert any("selection frames" in n and "FP16" in n for n in m["provenance"]["notes"])


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if s.mixed_precision is None])
def test_other_bundles_keep_their_recipe(name: str) -> None:
    m = load_manifest(BUNDLES_DIR / name)
    assert m["version"] == MODELS[name].version
    assert "mixed_precision" not in m["accuracy"]["int8"]["settings"]
    assert "selection" not in m["provenance"]["calibration"]
