"""The face tracker for the end-to-end align tests: loaded once, FP32, one thread."""

from __future__ import annotations

import pytest

from appliance.runtime.onnx import OnnxRuntimeBackend
from appliance.vision.stage import FaceTrackingStage


@pytest.fixture(scope="session")
def tracking() -> FaceTrackingStage:
    """Shared between tests: call ``tracking.tracker.reset()`` before a new sequence."""
    return FaceTrackingStage(OnnxRuntimeBackend(threads=1), precision="fp32")
