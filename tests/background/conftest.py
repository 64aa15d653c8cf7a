"""The segmentation model and the synthetic camera, loaded once for the background tests.

The model runs FP32 on purpose: ``auto`` picks the faster precision of the machine, and
the figures asserted here should not change with the CPU the tests run on.
"""

from __future__ import annotations

import pytest

from appliance.background.segment import PersonSegmenter
from appliance.capture.synthetic import SyntheticSource
from appliance.runtime.onnx import OnnxRuntimeBackend


@pytest.fixture(scope="session")
def segmenter() -> PersonSegmenter:
    return PersonSegmenter.load(OnnxRuntimeBackend(threads=1), precision="fp32")


@pytest.fixture(scope="session")
def synthetic() -> SyntheticSource:
    return SyntheticSource(1280, 720)
