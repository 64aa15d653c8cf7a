"""Feeding a bundle's network: the manifest's normalization, outputs found by size.

The vision modules take a loaded :class:`~appliance.runtime.base.Model` (any backend)
plus the input normalization of its bundle. Outputs are picked by element count, not
by tensor name: tf2onnx names them after TFLite layers (``conv2d_21``), which a rebuilt
bundle may rename, while the sizes are the model's contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.runtime.base import Backend, Model, ModelError
from appliance.runtime.bundle import load_manifest, prepare_input


@dataclass(frozen=True)
class Normalization:
    """``x = u8 * scale + offset``, as the bundle's ``inputs[0]`` says."""

    scale: float
    offset: float
    layout: str = "NCHW"


class Network:
    """A model with a square RGB input: ``run(rgb_u8) -> outputs`` in the model's order."""

    def __init__(self, model: Model, norm: Normalization) -> None:
        if len(model.inputs) != 1:
            raise ModelError(f"{model.name}: expected one input, got {len(model.inputs)}")
        self.model = model
        self.norm = norm
        self.input = model.inputs[0]
        shape = self.input.shape
        self.size = int(shape[2] if norm.layout == "NCHW" else shape[1])

    def output(self, elements: int) -> str:
        """The name of the output with ``elements`` values (the contract is the size)."""
        for spec in self.model.outputs:
            if int(np.prod(spec.shape)) == elements:
                return spec.name
        sizes = [int(np.prod(s.shape)) for s in self.model.outputs]
        raise ModelError(f"{self.model.name}: no output with {elements} values ({sizes})")

    def run(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        """One HxWx3 uint8 RGB image of the input's size."""
        x = prepare_input(rgb[None], self.norm.scale, self.norm.offset, self.norm.layout)
        return self.model.run({self.input.name: x})


def normalization(bundle_dir: Path) -> Normalization:
    spec = load_manifest(bundle_dir)["inputs"][0]
    return Normalization(float(spec["scale"]), float(spec["offset"]), str(spec["layout"]))


def load_network(backend: Backend, bundle_dir: Path, precision: str = "auto") -> Network:
    """Load a verified bundle's model with the normalization its manifest states."""
    return Network(backend.load(bundle_dir, precision), normalization(bundle_dir))
