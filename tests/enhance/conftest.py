"""The super-resolution model, loaded once for the enhance tests (FP32: the figures
asserted must not depend on which precision this CPU runs faster)."""

from __future__ import annotations

import pytest

from appliance.enhance.upscale import Upscaler
from appliance.runtime.onnx import OnnxRuntimeBackend


@pytest.fixture(scope="session")
def upscaler() -> Upscaler:
    return Upscaler.load(OnnxRuntimeBackend(threads=1), precision="fp32")
