"""Run a model on uint8 RGB crops: the TFLite original (LiteRT) or an ONNX file.

Both take the same uint8 HxWx3 image and apply the manifest's normalization
(``x * scale + offset``), so a difference between them is the conversion's alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from appliance.runtime.bundle import prepare_input
from engines.models import ModelSpec


class TfliteRunner:
    def __init__(self, path: Path, spec: ModelSpec) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.spec = spec
        self.interpreter = Interpreter(model_path=str(path), num_threads=1)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}

    def __call__(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        x = prepare_input(rgb[None], self.spec.input.scale, self.spec.input.offset, "NHWC")
        self.interpreter.set_tensor(self.input_index, x)
        self.interpreter.invoke()
        out = {name: self.interpreter.get_tensor(i).copy() for name, i in self.outputs.items()}
        for name in self.spec.nchw_outputs:  # match the ONNX model's layout
            out[name] = out[name].transpose(0, 3, 1, 2)
        return out


class OnnxRunner:
    def __init__(self, path: Path, spec: ModelSpec, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.spec = spec
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.session.get_outputs()]

    def __call__(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        x = prepare_input(rgb[None], self.spec.input.scale, self.spec.input.offset, "NCHW")
        values = self.session.run(self.names, {self.spec.input.name: x})
        return dict(zip(self.names, values, strict=True))

    def tensor(self, rgb: np.ndarray) -> np.ndarray:
        """The exact input tensor fed to the model (for calibration)."""
        return prepare_input(rgb[None], self.spec.input.scale, self.spec.input.offset, "NCHW")
